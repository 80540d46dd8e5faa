"""Framing calibration: where FER2013 puts a face, measured with the Analyzer's own detector and landmarks.

Method. A seeded subset of FER2013-5 training images (``--n``, default 6000) is upscaled 4x to 192 px
(bicubic) and run through dlib's HOG detector (upsample 0) and its 68-point shape predictor on the largest
box, as the Analyzer does on a photo (fer_hybrid.evaluation.geometry). Over the faces where dlib finds one we
record the box centre and size and the two eye centres in 48 px frame coordinates, overall and per class, and
derive (fer_hybrid.evaluation.geometry.derive_framing, mean statistic) the crop that maps a HOG box to
FER2013's framing (side and offset in box widths) and the eye target for alignment. Writes framing.json,
framing.md and mean_face.png (the mean FER2013 face of the found faces with its mean box and mean
landmarks) to experiments/reports/framing/.

    python experiments/framing.py [--n 6000] [--seed 0] [--data PATH] [--out DIR]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from fer_hybrid import _atomic  # noqa: E402
from fer_hybrid.data import load_fer2013  # noqa: E402
from fer_hybrid.evaluate import environment  # noqa: E402
from fer_hybrid.evaluation import geometry as geo  # noqa: E402
from fer_hybrid.reports import json_ready, pyplot, save_figure  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=6000, help="training faces measured (seeded subset; 0 = all)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--data", default=None, help="FER2013 source (default $FER2013_PATH)")
    ap.add_argument("--out", default=str(ROOT / "experiments" / "reports" / "framing"))
    return ap.parse_args(argv)


def mean_face_png(x48, m, summary, framing, path) -> None:
    plt = pyplot()
    ok = m["found"]
    fig, axes = plt.subplots(1, 2, figsize=(9, 4.6))
    for ax, (title, faces) in zip(axes, [(f"mean of {ok.sum()} faces dlib found", x48[ok]),
                                         (f"mean of {(~ok).sum()} faces it missed", x48[~ok])]):
        ax.imshow(faces.mean(axis=0), cmap="gray", vmin=0, vmax=255, extent=(-0.5, 47.5, 47.5, -0.5))
        ax.set_title(title, fontsize=9)
        ax.set_xticks([0, 12, 24, 36, 47])
        ax.set_yticks([0, 12, 24, 36, 47])
    ax = axes[0]
    a = summary["all"]
    cx, cy, w, h = (a[k]["mean"] for k in ("box_cx", "box_cy", "box_w", "box_h"))
    ax.add_patch(plt.Rectangle((cx - w / 2, cy - h / 2), w, h, fill=False, color="#ff7f0e", linewidth=1.5,
                               label="mean HOG box"))
    pts = np.nanmean(m["points"][ok], axis=0)
    ax.plot(pts[:, 0], pts[:, 1], ".", color="#2ca02c", markersize=4, label="mean 68 landmarks")
    ex, ey = zip(framing["eye_left"], framing["eye_right"])
    ax.plot(ex, ey, "x", color="#d62728", markersize=8, label="eye target")
    ax.legend(fontsize=7, loc="lower center")
    ax.set_xlim(-0.5, 47.5)
    ax.set_ylim(47.5, -0.5)
    fig.tight_layout()
    save_figure(fig, path)


def to_markdown(report) -> str:
    s, f = report["summary"], report["framing"]
    keys = ["found_share", "box_cx", "box_cy", "box_w", "box_h", "left_eye_x", "left_eye_y", "right_eye_x",
            "right_eye_y", "eye_distance", "eye_angle_deg"]
    groups = {"all": s["all"], **s["per_class"]}
    lines = ["# Framing calibration: where FER2013 puts a face", "",
             f"- command: `{report['command']}`",
             f"- {report['n']} training faces (seeded subset, seed {report['seed']}) upscaled {geo.UPSCALE}x; dlib HOG "
             f"(upsample 0) found a face in {s['all']['found']} ({s['all']['found_share']:.4f}).",
             f"- load average at start: {report['loadavg_start']}; at end: {report['loadavg_end']}",
             "- coordinates: 48 px frame, pixel centres at integers (frame centre 23.5); box w/h in 48 px units;",
             "  eye angle in degrees (positive: the image-right eye lower). Values: mean (median) [p5, p95].", "",
             "| measure | " + " | ".join(groups) + " |", "|---|" + "---:|" * len(groups)]
    for k in keys:
        cells = []
        for g in groups.values():
            v = g[k]
            cells.append(f"{v:.4f}" if not isinstance(v, dict) else
                         f"{v['mean']:.2f} ({v['median']:.2f}) [{v['p5']:.2f}, {v['p95']:.2f}]" if v.get("n") else "–")
        lines.append(f"| {k} | " + " | ".join(cells) + " |")
    lines += ["", "## Derived framing (mean statistic)", "",
              f"- crop side = {f['side']:.4f} x box width (a symmetric margin of {(f['side'] - 1) / 2:.4f} per side), "
              f"crop centre = box centre + ({f['dx']:.4f}, {f['dy']:.4f}) box widths",
              f"- eye target in the 48 px frame: image-left eye ({f['eye_left'][0]:.4f}, {f['eye_left'][1]:.4f}), "
              f"image-right eye ({f['eye_right'][0]:.4f}, {f['eye_right'][1]:.4f}); mean eye distance "
              f"{f['eye_distance']:.4f} px", "",
              "![mean face](mean_face.png)", ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    args = parse_args(argv)
    load_start = Path("/proc/loadavg").read_text().split()[:3]
    data = load_fer2013(args.data)
    train = data.train
    idx = np.arange(len(train))
    if args.n and args.n < len(train):
        idx = np.sort(np.random.default_rng(args.seed).choice(len(train), args.n, replace=False))
    x, y = train.x[idx], train.y[idx]

    m = geo.measure(x, progress=True)
    summary = geo.summarize(m, y, data.classes)
    framing = geo.derive_framing(summary, "mean")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    mean_face_png(x, m, summary, framing, out / "mean_face.png")
    report = {"name": "framing", "n": int(len(idx)), "seed": args.seed, "upscale": geo.UPSCALE,
              "summary": summary, "framing": framing, "framing_median": geo.derive_framing(summary, "median"),
              "command": environment()["command"], "environment": environment(),
              "data": {"source": Path(data.source).name, "sha256": data.sha256},
              "loadavg_start": " ".join(load_start), "loadavg_end": " ".join(Path("/proc/loadavg").read_text().split()[:3])}
    _atomic.write_text(out / "framing.json", json.dumps(json_ready(report), indent=2) + "\n")
    _atomic.write_text(out / "framing.md", to_markdown(report))
    print(json.dumps(json_ready(framing), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
