"""Time the `fer` PyPI package (FER() defaults: OpenCV Haar cascade + mini-Xception) on saved frames.

Run by experiments/bench_realtime.py with the python of a venv where `fer` is installed (it does not
import fer_hybrid). Prints one JSON line of raw ``time.perf_counter()`` stamps: ``t0`` before the timed
loop, ``started``/``finished`` around each ``detect_emotions`` call, the faces found, and
``detection_s``, the ``find_faces`` (detection) time per frame from a second pass. bench_realtime turns
them into FPS and percentiles with the same function as its own runs
(:func:`fer_hybrid.evaluation.throughput.frame_stats`).

    /work/venv-fer/bin/python experiments/_bench_fer_worker.py frames.npy --warmup 10
"""
from __future__ import annotations

import argparse
import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("frames", help=".npy uint8 (n, h, w, 3) BGR frames")
    ap.add_argument("--warmup", type=int, default=10)
    args = ap.parse_args()
    try:
        from fer import FER
    except ImportError:
        from fer.fer import FER  # fer 25.x no longer re-exports FER at the top level
    import fer

    frames = np.load(args.frames)
    detector = FER()
    for f in frames[:args.warmup]:
        detector.detect_emotions(f)
    started, finished, faces = [], [], 0
    t0 = time.perf_counter()
    for f in frames[args.warmup:]:
        started.append(time.perf_counter())
        faces += len(detector.detect_emotions(f))
        finished.append(time.perf_counter())
    detection = []
    for f in frames[args.warmup:]:
        t = time.perf_counter()
        detector.find_faces(f)
        detection.append(time.perf_counter() - t)
    print(json.dumps({"model": "fer", "version": getattr(fer, "__version__", "?"), "t0": t0, "started": started,
                      "finished": finished, "faces": faces, "detection_s": detection}))


if __name__ == "__main__":
    main()
