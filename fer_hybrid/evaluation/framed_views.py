"""Training faces as the Analyzer sees them: each 48x48 face rendered into a frame under a random condition
(:func:`fer_hybrid.evaluation.inframe.render`), found by the Analyzer's photo detection, and cropped with its
crop (default ``level``) at the model's 48x48 input.

A student distilled on these crops learns the framing, rotation and image degradations the Analyzer's
detection -> crop path hands it in real use, which FER2013's own crops never show. The random condition of face
``i`` depends only on (``seed``, ``i``), so the crops are the same however the work is split between processes.

>>> crops, source, info = framed_views(train.x, seed=0, n_jobs=2)   # uint8 (m, 48, 48), int (m,) into train.x
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from pathlib import Path

import numpy as np

from ..inference.analyzer import PHOTO_RESCUE_THRESHOLD
from .inframe import Condition, match, render, rng_for

SPLIT_TAG = "train-framed"   # the rng stream of training frames (the benchmark's val/test streams are others)


@dataclasses.dataclass(frozen=True)
class FramingRanges:
    """Ranges of the random frame conditions: ``scale`` log-uniform (min, max) (1 = the face at 192 px),
    ``rotation`` uniform +- degrees, ``edge_p`` the chance of a face cut by the frame's left edge, and each
    photometric degradation applied with probability ``photometric_p``: gamma log-uniform in ``gamma``, Gaussian
    blur sigma uniform in ``blur`` (frame px), noise std uniform in ``noise`` (grey levels), JPEG quality
    uniform integer in ``jpeg``."""
    scale: tuple[float, float] = (0.5, 2.0)
    rotation: float = 30.0
    edge_p: float = 0.1
    photometric_p: float = 0.3
    gamma: tuple[float, float] = (0.5, 2.0)
    blur: tuple[float, float] = (0.0, 4.0)
    noise: tuple[float, float] = (0.0, 16.0)
    jpeg: tuple[int, int] = (10, 90)

    def __post_init__(self):
        lo, hi = self.scale
        if not 0 < lo <= hi or not 0 <= self.rotation <= 90 or not 0 <= self.edge_p <= 1 \
                or not 0 <= self.photometric_p <= 1 or not 0 < self.gamma[0] <= self.gamma[1] \
                or not 0 <= self.blur[0] <= self.blur[1] or not 0 <= self.noise[0] <= self.noise[1] \
                or not 1 <= self.jpeg[0] <= self.jpeg[1] <= 100:
            raise ValueError(f"invalid framing ranges: {self}")

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


def random_condition(rng: np.random.Generator, ranges: FramingRanges = FramingRanges()) -> Condition:
    """One random :class:`Condition` drawn from ``ranges`` (a fixed number of draws, whatever is applied)."""
    u = rng.uniform(size=11)
    log_lo, log_hi = np.log(ranges.scale)
    g_lo, g_hi = np.log(ranges.gamma)
    p = ranges.photometric_p
    return Condition(
        name="random",
        scale=float(np.exp(log_lo + (log_hi - log_lo) * u[0])),
        rotation=float(ranges.rotation * (2 * u[1] - 1)),
        offset="edge" if u[2] < ranges.edge_p else "jitter",
        gamma=float(np.exp(g_lo + (g_hi - g_lo) * u[4])) if u[3] < p else 1.0,
        blur=float(ranges.blur[0] + (ranges.blur[1] - ranges.blur[0]) * u[6]) if u[5] < p else 0.0,
        noise=float(ranges.noise[0] + (ranges.noise[1] - ranges.noise[0]) * u[8]) if u[7] < p else 0.0,
        jpeg=int(ranges.jpeg[0] + np.floor((ranges.jpeg[1] - ranges.jpeg[0] + 1) * u[10]))
        if u[9] < p else None,
        group="random")


def framed_view(face48: np.ndarray, seed: int, index: int, ranges: FramingRanges = FramingRanges(),
                upsample: int | None = None, rescue_threshold: float | None = PHOTO_RESCUE_THRESHOLD, align: str = "level",
                size: int = 48) -> np.ndarray | None:
    """uint8 (size, size): face ``index``'s Analyzer crop from its random frame, or None when detection misses
    it. ``upsample`` / ``rescue_threshold``: the Analyzer's photo detection settings; ``align``: its crop."""
    from ..crops import to_gray_faces
    from ..inference.align import aligned_crops
    from ..inference.analyzer import detect_photo

    rng = rng_for(seed, SPLIT_TAG, "random", int(index))
    frame, box = render(face48, random_condition(rng, ranges), rng)
    boxes, _ = detect_photo(frame, upsample, rescue_threshold)
    j = match(boxes, box)
    if j < 0:
        return None
    crop = aligned_crops(frame, boxes[j:j + 1], align)[0][0]
    return to_gray_faces([crop], size)[0]


def _framed_chunk(x48: np.ndarray, indices: np.ndarray, seed: int, ranges: FramingRanges, upsample, rescue,
                  align: str, progress: bool) -> tuple[np.ndarray, np.ndarray]:
    from tqdm import tqdm

    crops, found = [], []
    for face, i in tqdm(zip(x48, indices), total=len(indices), disable=not progress, unit="frame",
                        desc=f"framed views (seed {seed})"):
        c = framed_view(face, seed, int(i), ranges, upsample, rescue, align)
        if c is not None:
            crops.append(c)
            found.append(int(i))
    return (np.stack(crops) if crops else np.zeros((0, 48, 48), np.uint8)), np.asarray(found, np.int64)


def framed_views(x48: np.ndarray, seed: int, ranges: FramingRanges = FramingRanges(), upsample: int | None = None,
                 rescue_threshold: float | None = PHOTO_RESCUE_THRESHOLD, align: str = "level", n_jobs: int = 1,
                 progress: bool = True) -> tuple[np.ndarray, np.ndarray, dict]:
    """Analyzer crops of every face in ``x48`` uint8 (n, 48, 48) from one random frame each.

    Returns (crops uint8 (m, 48, 48), source int (m,) index of each crop's face in ``x48``, ascending; info with
    ``found_share`` and ``seconds``). ``n_jobs`` processes (joblib) split the faces; the result does not depend
    on it."""
    x48 = np.asarray(x48)
    if x48.ndim != 3 or x48.dtype != np.uint8:
        raise ValueError(f"faces must be uint8 (n, h, w), got {x48.dtype} {x48.shape}")
    if n_jobs < 1:
        raise ValueError(f"n_jobs must be >= 1, got {n_jobs}")
    t0 = time.perf_counter()
    chunks = [c for c in np.array_split(np.arange(len(x48)), n_jobs) if len(c)]
    if n_jobs == 1 or len(chunks) <= 1:
        parts = [_framed_chunk(x48[c], c, seed, ranges, upsample, rescue_threshold, align, progress) for c in chunks]
    else:
        from joblib import Parallel, delayed

        parts = Parallel(n_jobs=n_jobs)(
            delayed(_framed_chunk)(x48[c], c, seed, ranges, upsample, rescue_threshold, align, progress and k == 0)
            for k, c in enumerate(chunks))
    crops = np.concatenate([p[0] for p in parts] + [np.zeros((0, 48, 48), np.uint8)])
    source = np.concatenate([p[1] for p in parts] + [np.zeros(0, np.int64)])
    return crops, source, found_summary(seed, len(x48), source, time.perf_counter() - t0)


def found_summary(seed: int, n: int, source: np.ndarray, seconds: float) -> dict:
    """The info of a framed-view run: seed, faces ``n``, faces ``found`` (len(source)), their share, seconds."""
    return {"seed": int(seed), "n": int(n), "found": int(len(source)),
            "found_share": float(len(source) / n) if n else float("nan"), "seconds": float(seconds)}


def framed_views_key(x48: np.ndarray, seed: int, ranges: FramingRanges, upsample, rescue_threshold, align: str) -> str:
    """What the framed crops depend on: the faces' bytes, the seed, the ranges, detection and crop settings."""
    from .inframe import BASE, CANVAS, OUTER_SIGMA, PAD

    h = hashlib.sha256(repr((x48.shape, str(x48.dtype))).encode())
    h.update(np.ascontiguousarray(x48).tobytes())
    h.update(json.dumps([int(seed), ranges.to_json(), upsample, rescue_threshold, align, CANVAS, BASE, PAD,
                         OUTER_SIGMA, 1]).encode())
    return h.hexdigest()[:24]


def cached_framed_views(x48: np.ndarray, seed: int, cache_dir: str | Path, ranges: FramingRanges = FramingRanges(),
                        upsample: int | None = None, rescue_threshold: float | None = PHOTO_RESCUE_THRESHOLD,
                        align: str = "level", n_jobs: int = 1, progress: bool = True) -> tuple[np.ndarray, np.ndarray, dict]:
    """:func:`framed_views`, cached as an .npz in ``cache_dir`` keyed by :func:`framed_views_key`; info adds
    ``cache`` and ``cached`` (``seconds`` is the time it took to make them, read back on a hit)."""
    from ..npz_cache import cached_arrays

    path = Path(cache_dir) / f"framed-{framed_views_key(x48, seed, ranges, upsample, rescue_threshold, align)}.npz"
    computed = []

    def compute() -> dict:
        crops, source, info = framed_views(x48, seed, ranges, upsample, rescue_threshold, align, n_jobs, progress)
        computed.append(True)
        return {"crops": crops, "source": source, "seconds": np.float64(info["seconds"])}

    z = cached_arrays(path, compute)
    return z["crops"], z["source"], {**found_summary(seed, len(x48), z["source"], z["seconds"]), "cache": str(path),
                                     "cached": not computed, "ranges": ranges.to_json(), "align": align,
                                     "upsample": upsample, "rescue_threshold": rescue_threshold}
