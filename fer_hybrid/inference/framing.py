"""Face box -> model input: the crop around a detector box.

Boxes are ``[x0, y0, x1, y1]`` frame pixels (inclusive corners, as dlib gives them), so a box covers
[x0 - 0.5, x1 + 0.5] with pixel centres at integers: centre ((x0 + x1) / 2, (y0 + y1) / 2), width x1 - x0 + 1.

Two framings:

- margin (the original): each box grown by ``margin`` x its width/height on every side, clipped to the frame
  (:func:`crop_faces` = :func:`fer_hybrid.images.crop_boxes`, shared with the hybrid's frame API);
- calibrated (:data:`FER2013_FRAMING`): the square that puts a dlib HOG box where FER2013's 48x48 frames put
  it, measured by ``experiments/framing.py`` (experiments/reports/framing/framing.json), cut out with
  :func:`warp_crops` (may be rotated; pixels past the frame edge repeat the edge instead of shrinking the crop).
"""
from __future__ import annotations

import dataclasses

import numpy as np

from ..images import check_margin, crop_boxes

DEFAULT_MARGIN = 0.1
crop_faces = crop_boxes  # (gray, boxes (k, 4), margin) -> (crops, int (k, 2) origins)
MAX_CROP = 192           # warped crops are at most this many pixels wide (the models resize to their input)


@dataclasses.dataclass(frozen=True)
class Framing:
    """Where a face sits in a model's square input frame.

    ``side``: frame side / HOG box width (box width = mean of its width and height); ``dx``, ``dy``: frame centre
    minus box centre, in box widths; ``eye_left`` / ``eye_right``: (x, y) eye centres (means of dlib points 36-41
    and 42-47) in a ``size`` px frame with pixel centres at integers, eyes level.
    """

    side: float
    dx: float
    dy: float
    eye_left: tuple[float, float]
    eye_right: tuple[float, float]
    size: int = 48

    @property
    def eye_distance(self) -> float:
        return float(np.hypot(self.eye_right[0] - self.eye_left[0], self.eye_right[1] - self.eye_left[1]))

    @property
    def eye_mid(self) -> np.ndarray:
        return (np.asarray(self.eye_left, float) + np.asarray(self.eye_right, float)) / 2


# Measured on 4,072 FER2013 training faces (of a 6,000 seeded subset) where dlib HOG found a face:
# experiments/reports/framing/framing.json, key "framing" (mean statistic).
FER2013_FRAMING = Framing(side=1.1906722873364362, dx=0.01505960793391649, dy=-0.04180550817515048,
                          eye_left=(14.74214145383104, 17.953370579567782),
                          eye_right=(31.95867100523903, 17.953370579567782))


def box_geometry(boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(float (k, 2) centres, float (k,) widths = mean of width and height) of inclusive boxes (k, 4)."""
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    return (b[:, :2] + b[:, 2:]) / 2, ((b[:, 2] - b[:, 0]) + (b[:, 3] - b[:, 1])) / 2 + 1


def framed_squares(boxes: np.ndarray, framing: Framing = FER2013_FRAMING) -> tuple[np.ndarray, np.ndarray]:
    """(float (k, 2) centres, float (k,) sides) of the calibrated square crop of each box, frame pixels."""
    c, w = box_geometry(boxes)
    return c + np.array([framing.dx, framing.dy]) * w[:, None], framing.side * w


def warp_crops(gray: np.ndarray, centres: np.ndarray, sides: np.ndarray, angles: np.ndarray | None = None,
               max_size: int = MAX_CROP) -> list[np.ndarray]:
    """Square crops of ``gray`` (uint8 (h, w)): crop i is centred on ``centres[i]`` (x, y), ``sides[i]`` frame
    pixels wide, its x axis turned ``angles[i]`` radians from the frame's (clockwise on screen; 0 = upright).
    Each crop is uint8 (n, n) with n = clip(round(side), 16, ``max_size``); bilinear, edge pixels repeated."""
    import cv2

    centres = np.asarray(centres, dtype=np.float64).reshape(-1, 2)
    sides = np.asarray(sides, dtype=np.float64).reshape(-1)
    angles = np.zeros(len(sides)) if angles is None else np.asarray(angles, dtype=np.float64).reshape(-1)
    out = []
    for (cx, cy), side, a in zip(centres, sides, angles):
        n = int(np.clip(round(side), 16, max_size))
        s = side / n                                   # frame pixels per output pixel
        cos, sin = np.cos(a) * s, np.sin(a) * s
        h = (n - 1) / 2
        # output (u, v) -> frame: c + R(a) s (u - h, v - h)
        m = np.array([[cos, -sin, cx - cos * h + sin * h], [sin, cos, cy - sin * h - cos * h]])
        out.append(cv2.warpAffine(gray, m, (n, n), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                                  borderMode=cv2.BORDER_REPLICATE))
    return out


def framed_crops(gray: np.ndarray, boxes: np.ndarray, framing: Framing = FER2013_FRAMING) -> list[np.ndarray]:
    """Upright calibrated crops of ``boxes`` (k, 4): each box placed as FER2013 places a HOG box."""
    centres, sides = framed_squares(boxes, framing)
    return warp_crops(gray, centres, sides)


__all__ = ["DEFAULT_MARGIN", "FER2013_FRAMING", "Framing", "box_geometry", "check_margin", "crop_faces",
           "framed_crops", "framed_squares", "warp_crops"]
