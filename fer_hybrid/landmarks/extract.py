"""68-point landmarks for many small face images, in parallel, cached per dataset.

Three methods (:data:`METHODS`), all on the image upscaled ``upscale`` times (dlib's models expect
faces larger than 48 px):

- ``"fixed"``: the whole (upscaled) image is the face box. FER2013 crops are pre-registered, so this
  gives landmarks for every image.
- ``"fixed-mirror"``: as ``"fixed"``, and also on the horizontally flipped image; the flipped image's
  points are mirrored back (:func:`~.features.mirror_points`) and the two sets averaged. Halves dlib's
  left/right bias and its integer-pixel quantisation, at twice the cost; the result is exactly
  mirror-equivariant (the landmarks of a flipped face are the mirrored landmarks of the face).
- ``"hog"``: dlib's HOG detector finds the face first (largest box); images without a detection get
  NaN landmarks.

Points are float32 (n, 68, 2) as (x, y) in the *input* image's pixel coordinates (upscaling undone).

>>> pts = landmarks_batch(x48)                            # (n, 68, 2), one process
>>> ext = extract_fer2013("fer2013_images.tar.gz")        # all 35,887 images, cached .npz
>>> ext.points_for(data.test.keys)                        # (n_test, 68, 2) by image key
>>> app = extract_appearance_fer2013("fer2013_images.tar.gz", LandmarkAppearance("hog"))  # raw descriptors,
>>> app.rows_for(data.test.keys), app.rows_for(keys, mirror=True)   # of the faces / flipped faces, cached .npz
"""
from __future__ import annotations

import dataclasses
import multiprocessing as mp
import os
import time
from pathlib import Path
from typing import Sequence

import numpy as np

from ..data import cache_dir, load_fer2013
from ..labels import FER2013_EMOTIONS
from ..npz_cache import load_or_compute
from . import detect
from .features import mirror_points

METHODS = ("fixed", "fixed-mirror", "hog")
UPSCALE = 4
CACHE_VERSION = 1


def _check_method(method: str) -> None:
    if method not in METHODS:
        raise ValueError(f"unknown landmark method {method!r}; valid: {', '.join(METHODS)}")


def upscale_image(image: np.ndarray, upscale: int = UPSCALE) -> np.ndarray:
    """uint8 gray (h*upscale, w*upscale) via bicubic interpolation (gray/BGR input)."""
    import cv2

    gray = detect.to_gray(image)
    if upscale == 1:
        return gray
    h, w = gray.shape
    return cv2.resize(gray, (w * upscale, h * upscale), interpolation=cv2.INTER_CUBIC)


def landmarks_one(image: np.ndarray, method: str = "fixed", upscale: int = UPSCALE) -> np.ndarray:
    """float32 (68, 2) landmarks of one face image in its own pixel coordinates; NaN if none found.

    Pixel centres are aligned: a point at upscaled pixel ``u`` maps to ``(u + 0.5) / upscale - 0.5``.
    """
    _check_method(method)
    big = upscale_image(image, upscale)
    if method in ("fixed", "fixed-mirror"):
        box = detect.full_image_box(big.shape)
    else:
        boxes = detect.detect_faces(big)
        if len(boxes) == 0:
            return np.full((68, 2), np.nan, np.float32)
        areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
        box = boxes[[int(np.argmax(areas))]]
    pts = detect.landmarks(big, box)[0]
    if method == "fixed-mirror":  # the full-image box is its own mirror image
        flipped = detect.landmarks(np.ascontiguousarray(big[:, ::-1]), box)[0]
        pts = (pts + mirror_points(flipped[None], width=big.shape[1] - 1)[0]) / 2
    return ((pts + 0.5) / upscale - 0.5).astype(np.float32)


def landmarks_batch(images: Sequence[np.ndarray], method: str = "fixed", upscale: int = UPSCALE) -> np.ndarray:
    """float32 (n, 68, 2) for a sequence of face images, in this process."""
    _check_method(method)
    out = np.empty((len(images), 68, 2), np.float32)
    for i, img in enumerate(images):
        out[i] = landmarks_one(img, method, upscale)
    return out


def _work(args) -> np.ndarray:
    images, method, upscale = args
    return landmarks_batch(images, method, upscale)


def _warm() -> None:
    """Pool initializer: load dlib's models once per worker, before the clock-relevant work."""
    detect.load_models()


def extract(images: np.ndarray, method: str = "fixed", upscale: int = UPSCALE, n_jobs: int = 2,
            chunk: int = 256, progress: bool = True) -> np.ndarray:
    """float32 (n, 68, 2) landmarks of uint8 images (n, h, w) using ``n_jobs`` processes (fork).

    ``n_jobs <= 0`` means all cores. A tqdm bar counts images.
    """
    from tqdm.auto import tqdm

    _check_method(method)
    images = np.asarray(images)
    n = len(images)
    if n_jobs <= 0:
        n_jobs = os.cpu_count() or 1
    starts = range(0, n, chunk)
    tasks = [(images[s:s + chunk], method, upscale) for s in starts]
    out = np.empty((n, 68, 2), np.float32)
    bar = tqdm(total=n, unit="face", desc=f"landmarks ({method})", disable=not progress)
    try:
        if n_jobs == 1 or len(tasks) <= 1:
            results = map(_work, tasks)
            pool = None
        else:
            ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
            pool = ctx.Pool(n_jobs, initializer=_warm)
            results = pool.imap(_work, tasks)
        for s, pts in zip(starts, results):
            out[s:s + len(pts)] = pts
            bar.update(len(pts))
        if pool is not None:
            pool.close()
            pool.join()
    finally:
        bar.close()
    return out


# --------------------------------------------------------------------------------------------
# Whole-dataset extraction with an .npz cache
# --------------------------------------------------------------------------------------------
@dataclasses.dataclass
class Extraction:
    """Landmarks of every image of a FER2013 source.

    ``keys`` (N,) image keys (as in :class:`fer_hybrid.data.Split`); ``points`` float32 (N, 68, 2)
    with NaN where no face was found; ``seconds`` wall time of the (original, uncached) extraction
    on ``n_jobs`` processes; ``from_cache`` whether this object was read from the cache.
    """

    keys: np.ndarray
    points: np.ndarray
    method: str
    upscale: int
    seconds: float
    n_jobs: int
    sha256: str
    from_cache: bool = False

    @property
    def faces_per_second(self) -> float:
        return len(self.keys) / self.seconds if self.seconds > 0 else float("nan")

    @property
    def failed(self) -> np.ndarray:
        """bool (N,): images without landmarks."""
        return ~np.isfinite(self.points).all(axis=(1, 2))

    def points_for(self, keys: Sequence[str]) -> np.ndarray:
        """float32 (n, 68, 2) for the given image keys; KeyError naming the first unknown key."""
        index = {k: i for i, k in enumerate(self.keys.tolist())}
        try:
            rows = np.array([index[k] for k in np.asarray(keys).tolist()], dtype=np.int64)
        except KeyError as e:
            raise KeyError(f"image {e.args[0]!r} is not in this landmark extraction") from None
        return self.points[rows]


def cache_file(sha256: str, method: str, upscale: int = UPSCALE) -> Path:
    return cache_dir() / f"landmarks-v{CACHE_VERSION}-{method}-x{upscale}-{sha256[:24]}.npz"


def extract_fer2013(source, method: str = "fixed", upscale: int = UPSCALE, n_jobs: int = 2,
                    use_cache: bool = True, progress: bool = True, refresh: bool = False) -> Extraction:
    """Landmarks for all seven classes of a FER2013 source, cached by (data sha256, method, upscale).

    ``refresh``: extract (and time) again and overwrite the cache; ``use_cache=False``: neither read nor write it."""
    _check_method(method)
    data = load_fer2013(source, classes=FER2013_EMOTIONS)
    def compute() -> dict:
        keys = np.concatenate([data.split(s).keys for s in ("train", "val", "test")])
        x = np.concatenate([data.split(s).x for s in ("train", "val", "test")])
        t0 = time.perf_counter()
        points = extract(x, method, upscale, n_jobs=n_jobs, progress=progress)
        return {"keys": keys, "points": points, "seconds": time.perf_counter() - t0, "n_jobs": n_jobs}

    z, computed = load_or_compute(cache_file(data.sha256, method, upscale), compute, refresh=refresh,
                                  store=use_cache, what="landmark cache")
    return Extraction(z["keys"], z["points"], method, upscale, float(z["seconds"]), int(z["n_jobs"]), data.sha256,
                      from_cache=not computed)


def failure_rates(failed: np.ndarray, y: np.ndarray, classes: Sequence[str]) -> dict:
    """{"overall": rate, "per_class": {class: rate}} of a bool (n,) failure mask with labels y (n,)."""
    failed = np.asarray(failed, bool)
    y = np.asarray(y)
    return {"overall": float(failed.mean()) if len(failed) else float("nan"),
            "n_failed": int(failed.sum()),
            "per_class": {c: float(failed[y == i].mean()) if (y == i).any() else float("nan")
                          for i, c in enumerate(classes)}}


# --------------------------------------------------------------------------------------------
# Appearance descriptors at the landmarks for a whole dataset, with an .npz cache
# --------------------------------------------------------------------------------------------
APPEARANCE_CACHE_VERSION = 1


@dataclasses.dataclass
class AppearanceExtraction:
    """Raw appearance descriptors (before any PCA) of every image of a FER2013 source.

    ``keys`` (N,); ``raw`` float32 (N, d) at the landmarks of ``method``; ``raw_mirror`` float32 (N, d) of
    the horizontally flipped faces at their mirrored landmarks (for mirror training and mirror TTA);
    ``seconds`` wall time of the (original, uncached) computation of both, landmarks excluded.
    """

    keys: np.ndarray
    raw: np.ndarray
    raw_mirror: np.ndarray
    params: dict
    method: str
    seconds: float
    sha256: str
    from_cache: bool = False

    def rows_for(self, keys: Sequence[str], mirror: bool = False) -> np.ndarray:
        """float32 (n, d) for the given image keys (of the flipped faces when ``mirror``)."""
        index = {k: i for i, k in enumerate(self.keys.tolist())}
        try:
            rows = np.array([index[k] for k in np.asarray(keys).tolist()], dtype=np.int64)
        except KeyError as e:
            raise KeyError(f"image {e.args[0]!r} is not in this appearance extraction") from None
        return (self.raw_mirror if mirror else self.raw)[rows]


def appearance_cache_file(sha256: str, method: str, params: dict, upscale: int = UPSCALE) -> Path:
    """Cache path keyed by the data's sha256, the landmark method and the descriptor settings."""
    import hashlib
    import json

    key = json.dumps({"method": method, "upscale": upscale, "params": params}, sort_keys=True)
    return cache_dir() / (f"appearance-v{APPEARANCE_CACHE_VERSION}-{params['descriptor']}-{sha256[:24]}-"
                          f"{hashlib.sha256(key.encode()).hexdigest()[:16]}.npz")


def extract_appearance_fer2013(source, appearance, method: str = "fixed-mirror", upscale: int = UPSCALE,
                               n_jobs: int = 2, use_cache: bool = True, progress: bool = True,
                               refresh: bool = False) -> AppearanceExtraction:
    """Raw descriptors of ``appearance`` (a :class:`~.appearance.LandmarkAppearance`) for all seven classes of a
    FER2013 source, at its ``method`` landmarks (:func:`extract_fer2013`, read from / written to its cache
    whatever ``use_cache`` says), for the faces and their mirror images; cached by (data sha256, method,
    descriptor settings) unless ``use_cache`` is False; ``refresh`` recomputes (re-times) and overwrites the
    cache. One process: ``n_jobs`` is used only for the landmarks."""
    from .appearance import mirror_faces

    _check_method(method)
    data = load_fer2013(source, classes=FER2013_EMOTIONS)
    params = appearance.descriptor_params()
    def compute() -> dict:
        ext = extract_fer2013(source, method, upscale, n_jobs=n_jobs, progress=progress)  # landmarks: always cached
        keys = np.concatenate([data.split(s).keys for s in ("train", "val", "test")])
        x = np.concatenate([data.split(s).x for s in ("train", "val", "test")])
        points = ext.points_for(keys)
        t0 = time.perf_counter()
        raw = appearance.describe(x, points, progress=progress)
        raw_mirror = appearance.describe(*mirror_faces(x, points), progress=progress)
        return {"keys": keys, "raw": raw, "raw_mirror": raw_mirror, "seconds": time.perf_counter() - t0}

    z, computed = load_or_compute(appearance_cache_file(data.sha256, method, params, upscale), compute,
                                  refresh=refresh, store=use_cache, what="appearance cache")
    return AppearanceExtraction(z["keys"], z["raw"], z["raw_mirror"], params, method, float(z["seconds"]),
                                data.sha256, from_cache=not computed)
