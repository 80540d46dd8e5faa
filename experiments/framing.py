"""Framing calibration: where FER2013 puts a face, measured with the Analyzer's own detector and landmarks.

    python experiments/framing.py [--n 6000] [--seed 0] [--data PATH] [--out DIR]

Method (library: fer_hybrid.evaluation.geometry).
1. Faces: a seeded subset of FER2013-5 training images (``--n``, default 6000; 0 = all).
2. Measure: each face upscaled 4x to 192 px (bicubic) and run through dlib's HOG detector (upsample 0) and its
   68-point shape predictor on the largest box, as the Analyzer does on a photo. Over the faces where dlib
   finds one we record the box centre and size and the two eye centres in 48 px frame coordinates, overall
   and per class.
3. Derive (derive_framing, mean statistic; the median one is reported too) the crop that maps a HOG box to
   FER2013's framing (side and offset in box widths) and the eye target for alignment.
4. Report: framing.json, framing.md and mean_face.png (the mean FER2013 face of the found faces with its mean
   box and mean landmarks) in experiments/reports/framing/.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from fer_hybrid.data import load_fer2013  # noqa: E402
from fer_hybrid.evaluate import environment  # noqa: E402
from fer_hybrid.evaluation import geometry as geo  # noqa: E402
from fer_hybrid.evaluation.detector_report import loadavg_text  # noqa: E402
from fer_hybrid.reports import json_ready, write_study  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=6000, help="training faces measured (seeded subset; 0 = all)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--data", default=None, help="FER2013 source (default $FER2013_PATH)")
    ap.add_argument("--out", default=str(ROOT / "experiments" / "reports" / "framing"))
    return ap.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    load_start = loadavg_text()
    data = load_fer2013(args.data)

    # 1. The seeded subset of training faces.
    idx = geo.seeded_subset(len(data.train), args.n, args.seed)
    x, y = data.train.x[idx], data.train.y[idx]

    # 2. HOG box and 68 landmarks on each face upscaled, summarised overall and per class.
    m = geo.measure(x, progress=True)
    summary = geo.summarize(m, y, data.classes)

    # 3. The framing (crop per box width, eye target) that reproduces FER2013's.
    framing = geo.derive_framing(summary, "mean")

    # 4. Report.
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    geo.mean_face_png(x, m, summary, framing, out / "mean_face.png")
    report = {"name": "framing", "n": int(len(idx)), "seed": args.seed, "upscale": geo.UPSCALE,
              "summary": summary, "framing": framing, "framing_median": geo.derive_framing(summary, "median"),
              "command": environment()["command"], "environment": environment(),
              "data": {"source": Path(data.source).name, "sha256": data.sha256},
              "loadavg_start": load_start, "loadavg_end": loadavg_text()}
    write_study(report, geo.framing_markdown(report), out, "framing")
    print(json.dumps(json_ready(framing), indent=1))
    return 0

if __name__ == "__main__":
    sys.exit(main())
