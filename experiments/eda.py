"""FER2013 exploratory data analysis -> experiments/reports/eda/ (README.md, eda.json, PNGs).

    python experiments/eda.py [--data PATH] [--out experiments/reports/eda]

Data from --data or $FER2013_PATH (image folder, its .tar.gz, or fer2013.csv). Also runs on the
bundled fixture: --data tests/data/fer2013_sample.tar.gz --out /tmp/eda-sample
"""
import sys
from pathlib import Path

from fer_hybrid.eda import main

if __name__ == "__main__":
    sys.exit(main(default_out=Path(__file__).resolve().parent / "reports" / "eda"))
