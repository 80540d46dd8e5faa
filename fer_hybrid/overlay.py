"""Drawing on BGR frames (in place): face box, label, probability bars, landmarks, FPS text."""
from __future__ import annotations

from typing import Sequence

import numpy as np

# BGR colour per study emotion; grey for "no answer"
COLORS = {"angry": (40, 40, 230), "fear": (180, 60, 160), "happy": (40, 200, 60), "sad": (200, 120, 30),
          "surprise": (0, 200, 230)}
GREY = (160, 160, 160)
FONT = 0  # cv2.FONT_HERSHEY_SIMPLEX


def _text(img, text, org, scale, color, thick=1):
    import cv2

    x, y = int(org[0]), int(org[1])
    cv2.putText(img, text, (x, y), FONT, scale, (0, 0, 0), thick + 2, cv2.LINE_AA)
    cv2.putText(img, text, (x, y), FONT, scale, color, thick, cv2.LINE_AA)


def draw_face(img: np.ndarray, box: Sequence[float], label: str | None, proba: np.ndarray | None,
              classes: Sequence[str], landmarks: np.ndarray | None = None, note: str | None = None) -> None:
    """Box + ``label`` (or ``note`` when label is None) + one bar per class from ``proba`` (k,) + points (68, 2)."""
    import cv2

    h, w = img.shape[:2]
    x0, y0, x1, y1 = (int(round(v)) for v in box)
    color = COLORS.get(label, GREY) if label else GREY
    scale = max(0.35, min(0.8, (x1 - x0) / 260))
    cv2.rectangle(img, (x0, y0), (x1, y1), color, 2)
    if landmarks is not None:
        for px, py in np.asarray(landmarks).reshape(-1, 2):
            if np.isfinite(px) and np.isfinite(py):
                cv2.circle(img, (int(px), int(py)), 1, (0, 255, 255), -1, cv2.LINE_AA)
    head = label if label else (note or "?")
    if label and proba is not None and np.all(np.isfinite(proba)):
        head = f"{label} {float(np.max(proba)):.2f}"
    _text(img, head, (x0, max(12, y0 - 6)), scale * 0.9, color, 1)
    if proba is None or not np.all(np.isfinite(proba)):
        return
    # bars beside the box (right, else left), inside it when there is no room
    line = max(9, int(14 * scale / 0.6))
    bar_w = max(30, int(60 * scale / 0.6))
    name_w = int(line * 4.2)
    if x1 + 4 + name_w + bar_w < w:
        bx = x1 + 4                                  # right of the box
    elif x0 - 4 - name_w - bar_w >= 0:
        bx = x0 - 4 - name_w - bar_w                 # left of it
    else:
        bx = max(0, x0 + 2)                          # inside it
    by = y0 + 2
    for k, (name, p) in enumerate(zip(classes, np.asarray(proba, dtype=float))):
        yy = by + k * line
        if yy + line > h:
            break
        _text(img, name[:5], (bx, yy + line - 3), scale * 0.6, (255, 255, 255), 1)
        cv2.rectangle(img, (bx + name_w, yy + 2), (bx + name_w + bar_w, yy + line - 2), (60, 60, 60), 1)
        cv2.rectangle(img, (bx + name_w, yy + 2), (bx + name_w + int(bar_w * p), yy + line - 2),
                      COLORS.get(name, GREY), -1)


def draw_fps(img: np.ndarray, fps: float, extra: str = "") -> None:
    """Frames-per-second counter (and an optional note) in the top-left corner."""
    scale = max(0.4, min(0.7, img.shape[1] / 900))
    _text(img, f"{fps:5.1f} FPS {extra}".rstrip(), (6, int(22 * scale / 0.6)), scale, (255, 255, 255), 1)


def draw_faces(image: np.ndarray, faces, classes: Sequence[str], draw_landmarks: bool) -> None:
    """Draw every :class:`fer_hybrid.inference.Face` of a frame in place: box, smoothed label and bars
    (or "no landmarks" for a face without an answer), and its landmarks when ``draw_landmarks``."""
    for f in faces:
        label = f.smoothed_label
        draw_face(image, f.box, label, f.smoothed if label else None, classes,
                  f.landmarks if draw_landmarks else None, None if label else "no landmarks")
