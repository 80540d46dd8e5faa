"""Where FER2013 puts a face: dlib's HOG box and 68 landmarks measured on upscaled 48x48 faces.

Coordinates are in the 48 px frame with pixel centres at integers (the frame spans [-0.5, 47.5], its centre
is 23.5). A dlib box [x0, y0, x1, y1] (inclusive pixels of the ``upscale``-times image) covers
[x0 - 0.5, x1 + 0.5] there, i.e. centre ((x0 + x1 + 1) / (2 upscale) - 0.5) and width (x1 - x0 + 1) / upscale.
Boxes are dlib's raw rectangles (not clipped to the image), so a box reaching past the frame is measured as is.

>>> m = measure(x48)                  # found bool (n,), box float (n, 4) cx, cy, w, h; points (n, 68, 2)
>>> s = summarize(m, y, classes)      # medians/means/percentiles overall and per class
>>> derive_framing(s)                 # crop per box width + eye target (fer_hybrid.inference.framing.Framing)
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
