"""Knowledge distillation: a teacher's probabilities as training targets, and the distillation loss.

Targets handed to :func:`fer_hybrid.cnn.train.fit` are float32 (n, 2k): the teacher's probabilities
(n, k) followed by the FER2013 one-hot label (n, k). :class:`DistillationLoss` mixes

    alpha * T^2 * KL(softmax(log t / T) || softmax(log s / T)) + (1 - alpha) * CE(label, s)

where ``t`` is the teacher's and ``s`` the student's softmax output (Hinton et al. 2015; softening a
probability vector by ``T`` through its log is the same as dividing the logits by ``T``).
:class:`LabelAccuracy` scores the label half, so ``val_accuracy`` stays FER2013 accuracy.

>>> targets = distillation_targets(teacher_proba, data.train.y, k=5)       # (n, 10)
>>> fit(cfg, data, ckpt, train_targets=targets)                           # cfg.distill_temperature > 0
"""
from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Callable

import keras
import numpy as np

from ..npz_cache import cached_arrays

EPS = 1e-7


def _soften(p, temperature: float):
    """Probabilities (n, k) softened by ``temperature``: softmax(log p / T)."""
    return keras.ops.softmax(keras.ops.log(keras.ops.clip(p, EPS, 1.0)) / temperature, axis=-1)


@keras.saving.register_keras_serializable(package="fer_hybrid")
class DistillationLoss(keras.losses.Loss):
    """KD loss on targets (n, 2k) = [teacher probabilities, one-hot label] and softmax outputs (n, k)."""

    def __init__(self, temperature: float = 2.0, alpha: float = 0.7, name: str = "distillation", **kwargs):
        super().__init__(name=name, **kwargs)
        if not temperature > 0 or not 0 <= alpha <= 1:
            raise ValueError(f"need temperature > 0 and 0 <= alpha <= 1, got T={temperature}, alpha={alpha}")
        self.temperature = float(temperature)
        self.alpha = float(alpha)

    def call(self, y_true, y_pred):
        k = keras.ops.shape(y_pred)[-1]
        teacher, label = y_true[..., :k], y_true[..., k:]
        y_pred = keras.ops.cast(y_pred, "float32")
        t = self.temperature
        pt, ps = _soften(keras.ops.cast(teacher, "float32"), t), _soften(y_pred, t)
        kl = keras.ops.sum(pt * (keras.ops.log(keras.ops.clip(pt, EPS, 1.0)) - keras.ops.log(keras.ops.clip(ps, EPS, 1.0))),
                           axis=-1)
        ce = -keras.ops.sum(keras.ops.cast(label, "float32") * keras.ops.log(keras.ops.clip(y_pred, EPS, 1.0)), axis=-1)
        return self.alpha * t * t * kl + (1.0 - self.alpha) * ce

    def get_config(self) -> dict:
        return {**super().get_config(), "temperature": self.temperature, "alpha": self.alpha}


@keras.saving.register_keras_serializable(package="fer_hybrid")
class LabelAccuracy(keras.metrics.Mean):
    """Accuracy of the softmax output (n, k) against the label half of (n, 2k) distillation targets."""

    def __init__(self, name: str = "accuracy", **kwargs):
        super().__init__(name=name, **kwargs)

    def update_state(self, y_true, y_pred, sample_weight=None):
        k = keras.ops.shape(y_pred)[-1]
        hit = keras.ops.cast(keras.ops.equal(keras.ops.argmax(y_true[..., k:], axis=-1),
                                             keras.ops.argmax(y_pred, axis=-1)), "float32")
        return super().update_state(hit, sample_weight=sample_weight)


def distillation_targets(teacher_proba: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """float32 (n, 2k) = [teacher probabilities (n, k), one-hot of int labels (n,)]; ValueError on a shape or
    probability mismatch."""
    teacher_proba = np.asarray(teacher_proba, np.float32)
    labels = np.asarray(labels)
    if teacher_proba.shape != (len(labels), k):
        raise ValueError(f"teacher probabilities have shape {teacher_proba.shape}; expected {(len(labels), k)}")
    if not np.all(np.isfinite(teacher_proba)) or not np.allclose(teacher_proba.sum(1), 1, atol=1e-3):
        raise ValueError("teacher probabilities must be finite rows summing to 1")
    return np.concatenate([teacher_proba, np.eye(k, dtype=np.float32)[labels]], axis=1)


def images_sha256(x: np.ndarray) -> str:
    """sha256 of a uint8 image stack's shape and bytes (the cache key of targets computed on it)."""
    x = np.ascontiguousarray(x)
    h = hashlib.sha256(repr((x.shape, str(x.dtype))).encode())
    h.update(x.tobytes())
    return h.hexdigest()


def cached_teacher_proba(predict_proba: Callable[[np.ndarray], np.ndarray], x: np.ndarray, teacher_key: str,
                         cache_dir: str | Path, batch_size: int = 512, progress: bool = True) -> tuple[np.ndarray, dict]:
    """Teacher probabilities float32 (n, k) for uint8 faces (n, 48, 48), cached as an .npz keyed by the
    teacher (``teacher_key``, e.g. its descriptor's sha256) and the images' sha256.

    Returns (probabilities, info) where info has ``cache`` (path), ``images_sha256``, ``seconds`` (time
    spent computing them, read back from the cache on a hit) and ``cached`` (bool).
    """
    from tqdm import tqdm

    x_sha = images_sha256(x)
    key = hashlib.sha256(f"{teacher_key}:{x_sha}".encode()).hexdigest()[:24]
    path = Path(cache_dir) / f"teacher-{key}.npz"
    info = {"cache": str(path), "images_sha256": x_sha, "teacher_key": teacher_key}
    computed = []

    def compute() -> dict:
        t0 = time.perf_counter()
        parts = [np.asarray(predict_proba(x[s:s + batch_size]), np.float32)
                 for s in tqdm(range(0, len(x), batch_size), desc="teacher targets", unit="batch", disable=not progress)]
        computed.append(True)
        return {"proba": np.concatenate(parts) if parts else np.zeros((0, 0), np.float32),
                "seconds": np.float64(time.perf_counter() - t0)}

    z = cached_arrays(path, compute)
    return z["proba"], {**info, "seconds": float(z["seconds"]), "cached": not computed}


def teacher_key(name: str, cnn) -> str:
    """What the teacher's answers depend on: its CNN files' sha256, member weights and TTA policy (so that a
    descriptor edit that changes none of them keeps the cached targets); else the manifest's sha256 of ``name``
    (else ``name`` itself). ``cnn`` is the teacher's CNN ensemble (``files``, ``weights``, ``tta``) or a model."""
    import json

    from ..artifacts import read_manifest
    from ..safe_io import file_sha256

    if getattr(cnn, "files", None):
        return json.dumps({"cnn_sha256": [file_sha256(f) for f in cnn.files],
                           "weights": [round(float(w), 6) for w in cnn.weights], "tta": cnn.tta}, sort_keys=True)
    return read_manifest().get("models", {}).get(name, {}).get("sha256", name)


def teacher_targets(teacher, name: str, x: np.ndarray, y: np.ndarray, k: int, temperature: float, alpha: float,
                    cache_dir: str | Path, progress: bool = True) -> tuple[np.ndarray, dict, str]:
    """Distillation targets from a loaded registered model ``teacher`` (its CNN ensemble ``teacher.cnn`` when it
    is a hybrid, else itself) on training faces ``x`` with labels ``y``: (float32 (n, 2k) targets of
    :func:`distillation_targets`, the report's ``teacher`` info, the report's ``labels_trained_on`` text).
    The teacher's probabilities are cached (:func:`cached_teacher_proba` keyed by :func:`teacher_key`)."""
    cnn = getattr(teacher, "cnn", teacher)
    proba, info = cached_teacher_proba(cnn.predict_proba, x, teacher_key(name, cnn), cache_dir, progress=progress)
    info.update(name=name, temperature=temperature, alpha=alpha, tta=getattr(cnn, "tta", None),
                train_accuracy=float((proba.argmax(1) == y).mean()))
    text = (f"knowledge distillation from {name} (T={temperature:g}, alpha={alpha:g} on the teacher, "
            f"{1 - alpha:g} on the FER2013 label)")
    return distillation_targets(proba, y, k), info, text


def augmented_views(x: np.ndarray, copies: int, seed: int, augment=None) -> np.ndarray:
    """uint8 (copies * n, h, w): ``copies`` fixed random views of faces ``x`` uint8 (n, h, w), copy after copy,
    deterministic in ``seed``. Each view is the training augmentation ``augment`` (a
    :class:`fer_hybrid.data.Augment`, default ``Augment()``: ``shift`` and ``zoom`` fractions of the size,
    ``rotation`` degrees, ``brightness``/``contrast`` max relative changes) without its flip: one affine warp
    about the centre with the border reflected (:class:`fer_hybrid.cnn.tta.View`), then
    ``(v - mean) * c + mean + b`` with ``c`` in 1 ± contrast and ``b`` in ± brightness * 255. A teacher's
    answer on such a view, under a flip-symmetric TTA policy, is the target for that view and its mirror
    alike, so the student's online flip keeps the pair consistent.
    """
    import cv2

    from ..data import Augment
    from .tta import View

    a = Augment() if augment is None else augment
    shift, rotation, zoom, brightness, contrast = a.shift, a.rotation, a.zoom, a.brightness, a.contrast
    x = np.asarray(x)
    if x.ndim != 3 or x.dtype != np.uint8:
        raise ValueError(f"faces must be uint8 (n, h, w), got {x.dtype} {x.shape}")
    if copies < 1:
        raise ValueError(f"copies must be >= 1, got {copies}")
    n, h, w = x.shape
    rng = np.random.default_rng(seed)
    out = np.empty((copies * n, h, w), np.uint8)
    for c in range(copies):
        u = rng.uniform(-1.0, 1.0, size=(n, 6))
        for i in range(n):
            view = View(zoom=1.0 / (1.0 + zoom * u[i, 0]), angle=rotation * u[i, 1],
                        offset=(shift * w * u[i, 2], shift * h * u[i, 3]))
            v = cv2.warpAffine(x[i].astype(np.float32), view.matrix(h, w), (w, h), flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_REFLECT)
            v = (v - v.mean()) * (1.0 + contrast * u[i, 4]) + v.mean() + brightness * 255.0 * u[i, 5]
            out[c * n + i] = np.clip(np.rint(v), 0, 255).astype(np.uint8)
    return out


def distinct_seeds(seeds, what: str) -> list[int]:
    """``seeds`` (an int or a sequence of ints) as a list; ValueError naming ``what`` ("view", ...) unless they
    are at least one and distinct."""
    seed_list = [int(seeds)] if np.ndim(seeds) == 0 else [int(s) for s in seeds]
    if not seed_list or len(set(seed_list)) != len(seed_list):
        raise ValueError(f"{what} seeds must be distinct and at least one, got {seed_list}")
    return seed_list


def teacher_view_targets(teacher, name: str, x: np.ndarray, y: np.ndarray, k: int, copies: int, seeds,
                         tta: str, cache_dir: str | Path,
                         progress: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
    """The teacher's answers on :func:`augmented_views` of training faces ``x`` (n, h, w) with labels ``y``:
    ``copies`` views per seed in ``seeds`` (an int or a sequence of distinct ints), seed group after seed group.
    Returns (views uint8 (m, h, w), their labels (m,), float32 (m, k) teacher probabilities, info) with
    m = copies * len(seeds) * n. The teacher (``teacher.cnn`` when it is a hybrid) runs under the TTA policy
    ``tta`` (it must offer ``with_tta``); each seed group's probabilities are cached on their own like
    :func:`cached_teacher_proba`, so adding a seed costs only the new group."""
    seed_list = distinct_seeds(seeds, "view")
    cnn = getattr(teacher, "cnn", teacher)
    if tta != getattr(cnn, "tta", None):
        if not hasattr(cnn, "with_tta"):
            raise ValueError(f"teacher {name!r} cannot run under the TTA policy {tta!r}: it is not a CNN ensemble")
        cnn = cnn.with_tta(tta)
    key = teacher_key(name, cnn)
    groups, all_views, all_proba = [], [], []
    for seed in seed_list:
        views = augmented_views(x, copies, seed)
        proba, info = cached_teacher_proba(cnn.predict_proba, views, key, cache_dir, progress=progress)
        groups.append({"seed": seed, "cache": info["cache"], "images_sha256": info["images_sha256"],
                       "seconds": info["seconds"], "cached": info["cached"]})
        all_views.append(views)
        all_proba.append(proba)
    views, proba = np.concatenate(all_views), np.concatenate(all_proba)
    labels = np.tile(np.asarray(y), copies * len(seed_list))
    info = {"name": name, "teacher_key": key, "copies": copies * len(seed_list), "copies_per_seed": copies,
            "seed": seed_list[0] if len(seed_list) == 1 else seed_list, "tta": tta, "groups": groups,
            "seconds": float(sum(g["seconds"] for g in groups)), "cached": all(g["cached"] for g in groups),
            "train_accuracy": float((proba.argmax(1) == labels).mean())}
    if len(groups) == 1:  # one group: its cache entry, as before seed groups existed
        info.update(cache=groups[0]["cache"], images_sha256=groups[0]["images_sha256"])
    return views, labels, proba, info
