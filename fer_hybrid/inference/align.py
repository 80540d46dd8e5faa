"""Aligned face crops: level the eyes (dlib's 68 points) and scale/shift the face to FER2013's framing.

Modes (:data:`ALIGN_MODES`; ``align=True`` means ``"eyes"``; ``"auto"``, the Analyzer's default, means
``"level"`` for a crop model and nothing for a model that places its own landmarks: ``level`` won in the
frame on val for both CNNs measured, experiments/reports/inframe-vggbn*/):

- ``"box"``: the calibrated upright square of the HOG box (:func:`fer_hybrid.inference.framing.framed_crops`);
  no landmarks needed.
- ``"level"``: the same square, turned about the box centre so the eyes are level (rotation from the eye
  centres; size and offset from the box).
- ``"eyes"``: a similarity transform that puts the two eye centres exactly on the calibrated eye target
  (:attr:`Framing.eye_left` / ``eye_right``): rotation, scale and shift all from the eyes.

``points`` are dlib's 68 points (k, 68, 2) in frame pixels (:func:`fer_hybrid.landmarks.detect.landmarks`);
modes that need them compute them when not given.
"""
from __future__ import annotations

import numpy as np

from .framing import FER2013_FRAMING, Framing, box_geometry, framed_squares, warp_crops

ALIGN_MODES = ("box", "level", "eyes")
AUTO = "auto"
AUTO_FOR_CROP_MODELS = "level"   # chosen on val in the frame (experiments/inframe.py)
LEFT_EYE, RIGHT_EYE = slice(36, 42), slice(42, 48)


def check_align(align, input_kind: str = "crops") -> str | None:
    """None for False/None/"off", ``"eyes"`` for True, ``"auto"`` -> ``"level"`` for a crop model (input_kind
    "crops") and None otherwise, else the mode name; ValueError for anything else."""
    if align is None or align is False or align == "off":
        return None
    if align is True:
        return "eyes"
    if align == AUTO:
        return AUTO_FOR_CROP_MODELS if input_kind == "crops" else None
    if isinstance(align, str) and align in ALIGN_MODES:
        return align
    raise ValueError(f"align must be False, True, 'auto', 'off' or one of {', '.join(ALIGN_MODES)}; got {align!r}")


def needs_landmarks(mode: str | None) -> bool:
    return mode in ("level", "eyes")


def eye_centres(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(image-left eye (k, 2), image-right eye (k, 2)): means of dlib points 36-41 and 42-47."""
    p = np.asarray(points, dtype=np.float64).reshape(-1, 68, 2)
    return p[:, LEFT_EYE].mean(axis=1), p[:, RIGHT_EYE].mean(axis=1)


def eye_angles(points: np.ndarray) -> np.ndarray:
    """float (k,) radians of the line from the image-left to the image-right eye (0 = level)."""
    le, re = eye_centres(points)
    d = re - le
    return np.arctan2(d[:, 1], d[:, 0])


def _rotate(v: np.ndarray, a: np.ndarray) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.stack([c * v[..., 0] - s * v[..., 1], s * v[..., 0] + c * v[..., 1]], axis=-1)


def aligned_squares(boxes: np.ndarray, mode: str, points: np.ndarray | None = None,
                    framing: Framing = FER2013_FRAMING) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(centres (k, 2), sides (k,), angles (k,) radians) of each face's crop in frame pixels."""
    mode = check_align(mode)
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    k = len(boxes)
    if mode is None or mode == "box":
        c, s = framed_squares(boxes, framing)
        return c, s, np.zeros(k)
    if points is None or len(points) != k:
        raise ValueError(f"align={mode!r} needs 68 landmarks per box ({k} boxes)")
    a = eye_angles(points)
    if mode == "level":
        bc, w = box_geometry(boxes)
        off = _rotate(np.array([framing.dx, framing.dy]) * w[:, None], a)
        return bc + off, framing.side * w, a
    le, re = eye_centres(points)
    scale = np.hypot(*(re - le).T) / framing.eye_distance          # frame pixels per target pixel
    side = framing.size * scale
    mid = (le + re) / 2
    to_centre = (framing.size - 1) / 2 - framing.eye_mid          # target: eye midpoint -> frame centre
    return mid + _rotate(to_centre[None, :] * scale[:, None], a), side, a


def aligned_crops(gray: np.ndarray, boxes: np.ndarray, mode, points: np.ndarray | None = None,
                  framing: Framing = FER2013_FRAMING) -> tuple[list[np.ndarray], np.ndarray | None]:
    """(square uint8 crops, the 68 points used or None) for ``boxes`` (k, 4) of ``gray`` (uint8 (h, w)).

    Landmarks are computed (dlib, on the boxes) when the mode needs them and ``points`` is None. A face whose
    eyes coincide (degenerate points) falls back to the ``"box"`` crop.
    """
    mode = check_align(mode) or "box"
    if needs_landmarks(mode) and points is None:
        from ..landmarks.detect import landmarks

        points = landmarks(gray, boxes)
    c, s, a = aligned_squares(boxes, mode, points, framing)
    bad = ~(np.isfinite(c).all(axis=1) & np.isfinite(s) & (s >= 4) & np.isfinite(a))
    if bad.any():
        c[bad], s[bad] = (v[bad] for v in framed_squares(np.asarray(boxes)[bad], framing))
        a[bad] = 0.0
    return warp_crops(gray, c, s, a), points
