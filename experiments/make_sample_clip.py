"""Cut the bundled demo clip fer_hybrid/assets/sample.mp4 from the shared Pexels video.

    python experiments/make_sample_clip.py [--src ../shared/video/WolfgangLanger_Pexels.mp4]
        [--start 200 --frames 120 --width 320]

Frames 200..319 (5.0 s at 23.976 fps) go from crying/sad to a broad smile; dlib HOG finds the one face in
every frame at 320 px wide (checked by this script, which prints the detection rate). Written with
OpenCV's mp4v codec, atomically.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fer_hybrid.landmarks.detect import detect_faces  # noqa: E402
from fer_hybrid.video import AtomicVideoWriter  # noqa: E402

SRC = ROOT.parent / "shared" / "video" / "WolfgangLanger_Pexels.mp4"
DST = ROOT / "fer_hybrid" / "assets" / "sample.mp4"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--src", type=Path, default=SRC)
    ap.add_argument("--out", type=Path, default=DST)
    ap.add_argument("--start", type=int, default=200, help="first source frame")
    ap.add_argument("--frames", type=int, default=120, help="number of frames to keep")
    ap.add_argument("--width", type=int, default=320, help="output width in px (height keeps the aspect ratio)")
    args = ap.parse_args(argv)

    cap = cv2.VideoCapture(str(args.src))
    if not cap.isOpened():
        print(f"error: cannot open {args.src}", file=sys.stderr)
        return 2
    fps = cap.get(cv2.CAP_PROP_FPS) or 24.0
    cap.set(cv2.CAP_PROP_POS_FRAMES, args.start)
    found = written = 0
    writer = None
    while written < args.frames:
        ok, frame = cap.read()
        if not ok:
            break
        h, w = frame.shape[:2]
        size = (args.width, int(round(h * args.width / w / 2)) * 2)
        small = cv2.resize(frame, size, interpolation=cv2.INTER_AREA)
        if writer is None:
            writer = AtomicVideoWriter(args.out, fps, size)
        writer.write(small)
        found += len(detect_faces(small)) > 0
        written += 1
    cap.release()
    if writer is None:
        print(f"error: no frames read from {args.src}", file=sys.stderr)
        return 2
    writer.close()
    print(f"{args.out}: {written} frames {size[0]}x{size[1]} @ {fps:.3f} fps ({written / fps:.1f} s), "
          f"{args.out.stat().st_size / 1024:.0f} KB; dlib HOG found a face in {found}/{written} frames")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
