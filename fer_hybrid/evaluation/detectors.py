"""Face detectors to compare: dlib HOG at a detection width and upsampling level, and dlib's CNN (MMOD)
detector shipped by ``face-recognition-models`` (``mmod_human_face_detector.dat``).

A :class:`Detector` maps an image (gray or BGR uint8) to int (k, 4) boxes [x0, y0, x1, y1] in the image's own
pixels: it detects on a copy at most ``width`` px wide (None: full resolution), upsampled ``upsample`` times by
dlib, and scales the boxes back. Its HOG branch *is* the Analyzer's detector
(:func:`fer_hybrid.landmarks.detect.detect_faces_scored`, run on the resized copy with ``threshold``), so at full
width and threshold 0 the boxes are exactly the Analyzer's; on a resized copy that detector clips the boxes to
the copy before they are scaled back, so a box reaching past the image edge ends up to ~1/scale px short of it.
"""
from __future__ import annotations

import dataclasses
import functools
from pathlib import Path

import numpy as np

from ..landmarks.detect import detect_faces_scored, face_model_path

CNN_FILE = "mmod_human_face_detector.dat"


def cnn_model_path() -> Path:
    """Path of dlib's CNN face detector in the ``face-recognition-models`` package (FileNotFoundError if absent)."""
    return face_model_path(CNN_FILE, "dlib's CNN face detector")


@functools.lru_cache(maxsize=1)
def _cnn():
    import dlib

    return dlib.cnn_face_detection_model_v1(str(cnn_model_path()))


@dataclasses.dataclass(frozen=True)
class Detector:
    kind: str = "hog"            # "hog" | "cnn"
    width: int | None = None     # detect on a copy at most this wide (None: full resolution)
    upsample: int = 0
    threshold: float = 0.0       # HOG only: dlib's adjust_threshold (negative: more faces, more false positives)

    @property
    def name(self) -> str:
        thr = f" threshold {self.threshold:g}" if self.threshold else ""
        return f"{self.kind} width {self.width or 'full'} upsample {self.upsample}{thr}"

    def __call__(self, image: np.ndarray) -> np.ndarray:
        import cv2

        from ..images import to_gray

        gray = to_gray(image)
        h, w = gray.shape
        f = 1.0
        if self.width and w > self.width:
            f = self.width / w
            gray = cv2.resize(gray, (self.width, max(1, round(h * f))), interpolation=cv2.INTER_AREA)
        if self.kind == "hog":
            b = detect_faces_scored(gray, self.upsample, threshold=self.threshold)[0]
        elif self.kind == "cnn":
            rects = [d.rect for d in _cnn()(gray, self.upsample)]
            b = np.array([[r.left(), r.top(), r.right(), r.bottom()] for r in rects], np.float64).reshape(-1, 4)
        else:
            raise ValueError(f"unknown detector kind {self.kind!r}; valid: hog, cnn")
        b = np.round(np.asarray(b, np.float64) / f).astype(np.int64)
        b[:, [0, 2]] = b[:, [0, 2]].clip(0, w - 1)
        b[:, [1, 3]] = b[:, [1, 3]].clip(0, h - 1)
        return b


def centre_hits(boxes: np.ndarray, centres: np.ndarray) -> tuple[int, int]:
    """(true positives, false positives): each annotated face centre (m, 2) counts once if a box contains it;
    boxes containing no (unclaimed) centre are false positives."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    free = list(range(len(centres)))
    tp = 0
    for b in boxes:
        inside = [i for i in free if b[0] <= centres[i][0] <= b[2] and b[1] <= centres[i][1] <= b[3]]
        if inside:
            free.remove(inside[0])
            tp += 1
    return tp, len(boxes) - tp


def matches_face(boxes: np.ndarray, expected: np.ndarray) -> bool:
    """True when a box's centre lies inside the expected face box (4,) and its width is 0.4-2.5 x the expected
    width (so both HOG's and the CNN's box shapes count)."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    if not len(boxes):
        return False
    c = (boxes[:, :2] + boxes[:, 2:]) / 2
    inside = (c[:, 0] >= expected[0]) & (c[:, 0] <= expected[2]) & (c[:, 1] >= expected[1]) & (c[:, 1] <= expected[3])
    ratio = (boxes[:, 2] - boxes[:, 0] + 1) / (expected[2] - expected[0])
    return bool((inside & (ratio >= 0.4) & (ratio <= 2.5)).any())

