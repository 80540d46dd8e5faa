"""Time the `fer` PyPI package (FER() defaults: OpenCV Haar cascade + mini-Xception) on saved frames.

Run by experiments/bench_realtime.py with the python of a venv where `fer` is installed (it does not
import fer_hybrid). Prints one JSON line: fps, p50/p95 per-frame latency of ``detect_emotions`` and the
mean ``find_faces`` (detection) time from a second pass; classification = total - detection.

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
    per_frame, faces = [], 0
    for f in frames[args.warmup:]:
        t = time.perf_counter()
        faces += len(detector.detect_emotions(f))
        per_frame.append(time.perf_counter() - t)
    det = []
    for f in frames[args.warmup:]:
        t = time.perf_counter()
        detector.find_faces(f)
        det.append(time.perf_counter() - t)
    ms = np.asarray(per_frame) * 1000
    detection_ms = float(np.mean(det) * 1000)
    print(json.dumps({"model": "fer", "version": getattr(fer, "__version__", "?"), "fps": len(ms) / (ms.sum() / 1000),
                      "p50_ms": float(np.percentile(ms, 50)), "p95_ms": float(np.percentile(ms, 95)),
                      "mean_ms": float(ms.mean()), "frames": int(len(ms)), "faces_per_frame": faces / len(ms),
                      "detection_ms": detection_ms, "classification_ms": max(0.0, float(ms.mean()) - detection_ms)}))


if __name__ == "__main__":
    main()
