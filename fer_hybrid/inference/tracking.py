"""Face tracks across frames: dlib HOG detection every N frames, dlib correlation tracking in between.

Boxes are float (4,) ``[x0, y0, x1, y1]`` in full-frame pixels. Detection and tracking run on a gray
copy downscaled to at most ``detect_width`` px wide (faster), and boxes are mapped back. On a detection
frame, detections are matched to existing tracks by IoU (greedy), so a track keeps its id and its
smoothing state; unmatched tracks end, unmatched detections start new tracks.
"""
from __future__ import annotations

import dataclasses
import itertools

import numpy as np

from ..landmarks.detect import detect_faces_scored, to_gray
from .smoothing import ProbabilityEMA


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection over union of boxes a (n, 4) and b (m, 4) -> float (n, m)."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    x0 = np.maximum(a[:, None, 0], b[None, :, 0])
    y0 = np.maximum(a[:, None, 1], b[None, :, 1])
    x1 = np.minimum(a[:, None, 2], b[None, :, 2])
    y1 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area = lambda r: (r[:, 2] - r[:, 0]) * (r[:, 3] - r[:, 1])  # noqa: E731
    union = area(a)[:, None] + area(b)[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def greedy_match(scores: np.ndarray, threshold: float) -> list[tuple[int, int]]:
    """Pairs (i, j) of a (n, m) score matrix, best first, each row/column used once, score >= threshold."""
    pairs, used_i, used_j = [], set(), set()
    for flat in np.argsort(-scores, axis=None):
        i, j = np.unravel_index(flat, scores.shape)
        if scores[i, j] < threshold:
            break
        if i not in used_i and j not in used_j:
            pairs.append((int(i), int(j)))
            used_i.add(i)
            used_j.add(j)
    return pairs


@dataclasses.dataclass
class Track:
    id: int
    box: np.ndarray                 # float (4,) full-frame pixels
    smoother: ProbabilityEMA
    tracker: object | None = None   # dlib.correlation_tracker working on the downscaled frame
    detected: bool = True           # box comes from the detector on this frame (False: from the tracker)
    score: float | None = None      # dlib HOG detection score on a detection frame; None when tracked


class FaceTracker:
    """Keeps face tracks; :meth:`step` returns the tracks of the current frame.

    ``detect_every`` = 1 detects on every frame (no tracker); ``smoothing`` is the EMA alpha of
    :class:`~fer_hybrid.smoothing.ProbabilityEMA`; ``upsample`` is dlib's HOG upsampling count;
    ``rescue_threshold`` (image sequences): when no face clears dlib's threshold, keep the best candidate
    scoring above this (see :func:`fer_hybrid.landmarks.detect.detect_faces_scored`; None: never).
    """

    def __init__(self, detect_every: int = 3, detect_width: int | None = 480, smoothing: float = 0.5,
                 upsample: int = 0, match_iou: float = 0.3, rescue_threshold: float | None = None):
        if detect_every < 1:
            raise ValueError(f"detect_every must be >= 1, got {detect_every}")
        self.detect_every = int(detect_every)
        self.detect_width = detect_width
        self.smoothing = smoothing
        self.upsample = int(upsample)
        self.match_iou = match_iou
        self.rescue_threshold = rescue_threshold
        self.tracks: list[Track] = []
        self._ids = itertools.count()
        self._frame = 0
        ProbabilityEMA(smoothing)  # validates alpha now, not on the first face

    def _small(self, image: np.ndarray) -> tuple[np.ndarray, float]:
        import cv2

        gray = to_gray(image)
        w = gray.shape[1]
        if not self.detect_width or w <= self.detect_width:
            return gray, 1.0
        scale = self.detect_width / w
        size = (self.detect_width, max(1, int(round(gray.shape[0] * scale))))
        return cv2.resize(gray, size, interpolation=cv2.INTER_AREA), scale

    def step(self, image: np.ndarray) -> list[Track]:
        """Advance one frame (uint8 gray/BGR (h, w[, 3])) and return the current tracks."""
        small, scale = self._small(image)
        h, w = image.shape[:2]
        if self._frame % self.detect_every == 0:
            self._detect(small, scale)
        else:
            self._track(small, scale)
        self._frame += 1
        for t in self.tracks:
            t.box = np.clip(t.box, 0, [w - 1, h - 1, w - 1, h - 1])
        self.tracks = [t for t in self.tracks if t.box[2] - t.box[0] >= 2 and t.box[3] - t.box[1] >= 2]
        return self.tracks

    def _detect(self, small: np.ndarray, scale: float) -> None:
        boxes, scores = detect_faces_scored(small, self.upsample, rescue_threshold=self.rescue_threshold)
        boxes = boxes.astype(np.float64) / scale
        old = self.tracks
        pairs = greedy_match(iou([t.box for t in old], boxes), self.match_iou) if old and len(boxes) else []
        matched = {j: old[i] for i, j in pairs}
        tracks = []
        for j, box in enumerate(boxes):
            t = matched.get(j) or Track(next(self._ids), box, ProbabilityEMA(self.smoothing))
            t.box, t.detected, t.score = box, True, float(scores[j])
            if self.detect_every > 1:
                t.tracker = self._start_tracker(small, box * scale)
            tracks.append(t)
        self.tracks = tracks

    def _track(self, small: np.ndarray, scale: float) -> None:
        for t in self.tracks:
            t.detected, t.score = False, None
            if t.tracker is None:
                continue
            t.tracker.update(small)
            r = t.tracker.get_position()
            t.box = np.array([r.left(), r.top(), r.right(), r.bottom()], dtype=np.float64) / scale

    @staticmethod
    def _start_tracker(small: np.ndarray, box: np.ndarray):
        import dlib

        tr = dlib.correlation_tracker()
        tr.start_track(small, dlib.drectangle(*map(float, box)))
        return tr
