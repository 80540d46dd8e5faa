"""The study's baseline: a small CNN trained from scratch on FER2013-5 (same protocol as cnn_transfer.py).

    python experiments/cnn_baseline.py --epochs 30 --ship
"""
import sys

from cnn_transfer import main

if __name__ == "__main__":
    sys.exit(main(default_backbone="baseline", kind="baseline"))
