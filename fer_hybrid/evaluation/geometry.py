"""Where FER2013 puts a face: dlib's HOG box and 68 landmarks measured on upscaled 48x48 faces.

Coordinates are in the 48 px frame with pixel centres at integers (the frame spans [-0.5, 47.5], its centre
is 23.5). A dlib box [x0, y0, x1, y1] (inclusive pixels of the ``upscale``-times image) covers
[x0 - 0.5, x1 + 0.5] there, i.e. centre ((x0 + x1 + 1) / (2 upscale) - 0.5) and width (x1 - x0 + 1) / upscale.
Boxes are dlib's raw rectangles (not clipped to the image), so a box reaching past the frame is measured as is.

>>> m = measure(x48)                  # found bool (n,), box float (n, 4) cx, cy, w, h; points (n, 68, 2)
>>> s = summarize(m, y, classes)      # medians/means/percentiles overall and per class
>>> derive_framing(s)                 # crop per box width + eye target (fer_hybrid.inference.framing.Framing)
>>> framing_markdown(report); mean_face_png(x48, m, s, derive_framing(s, "mean"), "mean_face.png")
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ..landmarks.extract import upscale_image

UPSCALE = 4
LEFT_EYE = slice(36, 42)   # dlib points 36-41: the eye on the image's left (the subject's right eye)
RIGHT_EYE = slice(42, 48)  # dlib points 42-47: the eye on the image's right
FRAME = 48
CENTRE = (FRAME - 1) / 2   # 23.5


def measure(x48: np.ndarray, upscale: int = UPSCALE, progress: bool = False) -> dict:
    """HOG (upsample 0) on each face upscaled ``upscale`` times (bicubic); the largest box and its landmarks.

    ``x48`` uint8 (n, 48, 48). Returns {"found" bool (n,), "box" float (n, 4) [cx, cy, w, h] 48-frame units
    (NaN when not found), "points" float (n, 68, 2) 48-frame pixel coordinates (NaN when not found),
    "score" float (n,)}.
    """
    import dlib
    from tqdm import tqdm

    detector = dlib.get_frontal_face_detector()
    from ..landmarks.detect import shape_predictor_path

    shape = dlib.shape_predictor(str(shape_predictor_path()))
    n = len(x48)
    found = np.zeros(n, bool)
    box = np.full((n, 4), np.nan)
    points = np.full((n, 68, 2), np.nan, np.float32)
    score = np.full(n, np.nan)
    for i in tqdm(range(n), disable=not progress, desc="HOG + landmarks", unit="face"):
        big = upscale_image(x48[i], upscale)
        rects, scores, _ = detector.run(big, 0, 0.0)
        if not len(rects):
            continue
        j = int(np.argmax([r.width() * r.height() for r in rects]))
        r = rects[j]
        found[i], score[i] = True, scores[j]
        box[i] = [(r.left() + r.right() + 1) / (2 * upscale) - 0.5, (r.top() + r.bottom() + 1) / (2 * upscale) - 0.5,
                  (r.right() - r.left() + 1) / upscale, (r.bottom() - r.top() + 1) / upscale]
        pts = np.array([(p.x, p.y) for p in shape(big, r).parts()], np.float64)
        points[i] = (pts + 0.5) / upscale - 0.5
    return {"found": found, "box": box, "points": points, "score": score}


def eye_centres(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(image-left eye (n, 2), image-right eye (n, 2)) as the means of dlib's six points per eye."""
    points = np.asarray(points, dtype=np.float64)
    return points[:, LEFT_EYE].mean(axis=1), points[:, RIGHT_EYE].mean(axis=1)


def _stats(v: np.ndarray) -> dict:
    v = np.asarray(v, dtype=np.float64)
    v = v[np.isfinite(v)]
    if not len(v):
        return {"n": 0}
    p5, p25, p50, p75, p95 = np.percentile(v, [5, 25, 50, 75, 95])
    return {"n": int(len(v)), "mean": float(v.mean()), "std": float(v.std()), "median": float(p50),
            "p5": float(p5), "p25": float(p25), "p75": float(p75), "p95": float(p95)}


def _group(m: dict, mask: np.ndarray) -> dict:
    ok = mask & m["found"]
    box, pts = m["box"][ok], m["points"][ok]
    le, re = eye_centres(pts) if len(pts) else (np.zeros((0, 2)), np.zeros((0, 2)))
    d = re - le
    return {"n": int(mask.sum()), "found": int(ok.sum()),
            "found_share": float(ok.sum() / mask.sum()) if mask.sum() else None,
            "box_cx": _stats(box[:, 0]), "box_cy": _stats(box[:, 1]),
            "box_w": _stats(box[:, 2]), "box_h": _stats(box[:, 3]),
            "left_eye_x": _stats(le[:, 0]), "left_eye_y": _stats(le[:, 1]),
            "right_eye_x": _stats(re[:, 0]), "right_eye_y": _stats(re[:, 1]),
            "eye_distance": _stats(np.hypot(d[:, 0], d[:, 1])),
            "eye_angle_deg": _stats(np.degrees(np.arctan2(d[:, 1], d[:, 0])))}


def summarize(m: dict, y: np.ndarray, classes: Sequence[str]) -> dict:
    """{"all": stats, "per_class": {class: stats}} of a :func:`measure` result (stats of found faces)."""
    y = np.asarray(y)
    return {"all": _group(m, np.ones(len(y), bool)),
            "per_class": {c: _group(m, y == i) for i, c in enumerate(classes)}}


def derive_framing(summary: dict, stat: str = "median") -> dict:
    """The crop that maps a HOG box to FER2013's framing, and the eye target, from :func:`summarize`.

    ``side`` = frame side / box width; ``dx``, ``dy`` = frame centre minus box centre, in box widths;
    ``eye_left`` / ``eye_right`` (x, y) and ``eye_distance`` in the 48 frame (eyes levelled at their mean height).
    Box width is the mean of the box's width and height.
    """
    a = summary["all"]
    w = (a["box_w"][stat] + a["box_h"][stat]) / 2
    eye_y = (a["left_eye_y"][stat] + a["right_eye_y"][stat]) / 2
    return {"side": FRAME / w, "dx": (CENTRE - a["box_cx"][stat]) / w, "dy": (CENTRE - a["box_cy"][stat]) / w,
            "eye_left": [a["left_eye_x"][stat], eye_y], "eye_right": [a["right_eye_x"][stat], eye_y],
            "eye_distance": a["eye_distance"][stat], "statistic": stat}


# ---------------------------------------------------------------------------------------------
# The report of experiments/framing.py
# ---------------------------------------------------------------------------------------------
MARKDOWN_MEASURES = ("found_share", "box_cx", "box_cy", "box_w", "box_h", "left_eye_x", "left_eye_y",
                     "right_eye_x", "right_eye_y", "eye_distance", "eye_angle_deg")


def seeded_subset(n_total: int, n: int, seed: int) -> np.ndarray:
    """Sorted indices of ``n`` of ``n_total`` faces drawn without replacement (all when n is 0 or >= n_total)."""
    if not n or n >= n_total:
        return np.arange(n_total)
    if n < 0:
        raise ValueError(f"subset size must be >= 0, got {n}")
    return np.sort(np.random.default_rng(seed).choice(n_total, n, replace=False))


def mean_face_png(x48: np.ndarray, m: dict, summary: dict, framing: dict, path) -> None:
    """Two panels: the mean of the faces dlib found, with the mean HOG box, the mean 68 landmarks and the eye
    target of ``framing`` (:func:`derive_framing`); and the mean of the faces it missed."""
    from ..reports import pyplot, save_figure

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


def _cell(v) -> str:
    if v is None:
        return "–"
    if not isinstance(v, dict):
        return f"{v:.4f}"
    return f"{v['mean']:.2f} ({v['median']:.2f}) [{v['p5']:.2f}, {v['p95']:.2f}]" if v.get("n") else "–"


def framing_markdown(report: dict) -> str:
    """framing.md of a report {n, seed, summary (:func:`summarize`), framing (:func:`derive_framing`), command,
    loadavg_start, loadavg_end}: every measure overall and per class, then the derived framing."""
    s, f = report["summary"], report["framing"]
    groups = {"all": s["all"], **s["per_class"]}
    lines = ["# Framing calibration: where FER2013 puts a face", "",
             f"- command: `{report['command']}`",
             f"- {report['n']} training faces (seeded subset, seed {report['seed']}) upscaled {UPSCALE}x; dlib HOG "
             f"(upsample 0) found a face in {s['all']['found']} ({s['all']['found_share']:.4f}).",
             f"- load average at start: {report['loadavg_start']}; at end: {report['loadavg_end']}",
             "- coordinates: 48 px frame, pixel centres at integers (frame centre 23.5); box w/h in 48 px units;",
             "  eye angle in degrees (positive: the image-right eye lower). Values: mean (median) [p5, p95].", "",
             "| measure | " + " | ".join(groups) + " |", "|---|" + "---:|" * len(groups)]
    lines += [f"| {k} | " + " | ".join(_cell(g[k]) for g in groups.values()) + " |" for k in MARKDOWN_MEASURES]
    lines += ["", "## Derived framing (mean statistic)", "",
              f"- crop side = {f['side']:.4f} x box width (a symmetric margin of {(f['side'] - 1) / 2:.4f} per side), "
              f"crop centre = box centre + ({f['dx']:.4f}, {f['dy']:.4f}) box widths",
              f"- eye target in the 48 px frame: image-left eye ({f['eye_left'][0]:.4f}, {f['eye_left'][1]:.4f}), "
              f"image-right eye ({f['eye_right'][0]:.4f}, {f['eye_right'][1]:.4f}); mean eye distance "
              f"{f['eye_distance']:.4f} px", "",
              "![mean face](mean_face.png)", ""]
    return "\n".join(lines)
