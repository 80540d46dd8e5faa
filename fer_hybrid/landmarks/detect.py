"""Face detection (dlib HOG) and 68-point landmarks (dlib shape predictor from face-recognition-models).

Boxes are int (k, 4) arrays ``[x0, y0, x1, y1]`` in pixels; landmarks float32 (k, 68, 2) as (x, y).
For pre-registered 48x48 datasets (FER2013) :func:`full_image_box` replaces detection.
"""
from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

import numpy as np

from ..images import to_gray  # noqa: F401  (re-exported: detect.to_gray)

PREDICTOR_FILE = "shape_predictor_68_face_landmarks.dat"


class LandmarkModelMissing(FileNotFoundError):
    pass


def face_model_path(filename: str, what: str, error: type[FileNotFoundError] = FileNotFoundError) -> Path:
    """Path of one of dlib's model files shipped by the ``face-recognition-models`` package; ``error`` naming
    ``what`` and the fix when the package or the file is missing."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise error(f"{what} is missing: pip install face-recognition-models")
    path = Path(list(spec.submodule_search_locations)[0]) / "models" / filename
    if not path.exists():
        raise error(f"{path} not found; reinstall face-recognition-models")
    return path


def shape_predictor_path() -> Path:
    """Path of dlib's 68-point model shipped by the ``face-recognition-models`` package."""
    return face_model_path(PREDICTOR_FILE, "the 68-point landmark model", LandmarkModelMissing)


@functools.lru_cache(maxsize=1)
def _hog():
    import dlib

    return dlib.get_frontal_face_detector()


@functools.lru_cache(maxsize=1)
def _shape_predictor():
    import dlib

    return dlib.shape_predictor(str(shape_predictor_path()))


def load_shape_predictor() -> None:
    """Load dlib's 68-point model now (about 0.5 s, once per process) instead of on the first face."""
    _shape_predictor()


def load_models() -> None:
    """Load dlib's face detector and 68-point model now (e.g. in a worker process before timed work)."""
    _shape_predictor()
    _hog()


def detect_faces(image: np.ndarray, upsample: int = 0) -> np.ndarray:
    """dlib HOG frontal faces in a gray/BGR image -> int (k, 4) boxes [x0, y0, x1, y1], clipped to the image."""
    return detect_faces_scored(image, upsample)[0]


def detect_faces_scored(image: np.ndarray, upsample: int = 0, threshold: float = 0.0,
                        rescue_threshold: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(int (k, 4) boxes [x0, y0, x1, y1] clipped to the image, float (k,) HOG detection scores) for a
    gray/BGR image; ``upsample`` doubles the image that many times first (finds smaller faces, slower).

    ``threshold``: dlib's score threshold (0 = dlib's own). ``rescue_threshold`` (< threshold): when no
    candidate clears ``threshold``, keep the single best one scoring above this instead of none (photo mode:
    a photo handed to us usually shows a face). One detector run either way: dlib's non-maximum suppression
    keeps higher-scoring windows first, so the faces above ``threshold`` are the same as without rescue.
    """
    gray = to_gray(image)
    floor = threshold if rescue_threshold is None else min(float(threshold), float(rescue_threshold))
    rects, scores, _ = _hog().run(gray, int(upsample), float(floor))
    h, w = gray.shape
    boxes = np.array([[r.left(), r.top(), r.right(), r.bottom()] for r in rects], dtype=np.int64).reshape(-1, 4)
    boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, w - 1)
    boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, h - 1)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    keep = keep_detections(scores, threshold, rescue_threshold)
    return boxes[keep], scores[keep]


def keep_detections(scores: np.ndarray, threshold: float = 0.0, rescue_threshold: float | None = None) -> np.ndarray:
    """bool (k,) mask over candidate scores (k,): those >= ``threshold``; if there are none, the single best
    candidate > ``rescue_threshold`` (None: no rescue)."""
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    keep = scores >= threshold
    if rescue_threshold is not None and not keep.any() and len(scores):
        best = int(np.argmax(scores))
        keep[best] = scores[best] > rescue_threshold
    return keep


def full_image_box(shape: tuple[int, ...]) -> np.ndarray:
    """The whole image as one box (1, 4), for pre-registered face crops."""
    h, w = shape[:2]
    return np.array([[0, 0, w - 1, h - 1]], dtype=np.int64)


def landmarks(image: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """68 (x, y) points per box -> float32 (k, 68, 2) in the image's pixel coordinates."""
    import dlib

    gray = to_gray(image)
    pred = _shape_predictor()
    out = np.empty((len(boxes), 68, 2), np.float32)
    for i, (x0, y0, x1, y1) in enumerate(np.asarray(boxes, dtype=np.int64)):
        shape = pred(gray, dlib.rectangle(int(x0), int(y0), int(x1), int(y1)))
        out[i] = [(p.x, p.y) for p in shape.parts()]
    return out
