"""Test-time augmentation (TTA): named policies of deterministic views, averaged softmax over views.

A policy is a tuple of :class:`View` s. Each view optionally mirrors the face, then applies one affine
warp about the image centre (zoom, rotation, offset) with the border reflected like the training
augmentation (Keras ``fill_mode="reflect"`` = ``cv2.BORDER_REFLECT``). Warps run through
``cv2.warpAffine`` on the whole batch at once (images stacked as channels), never per image.

>>> list_tta()
['flip', 'flip-crop', 'flip-mix', 'flip-rotate', 'flip-scale', 'flip-shift', 'none']
>>> tta_views(x, "flip-shift").shape            # x uint8 (n, 48, 48) -> float32 (10, n, 48, 48)
>>> predict_tta(predict_fn, x, "flip-shift")     # (n, 5), the mean of predict_fn over the 10 views
>>> policy_proba(predict_fn, x, list_tta())      # {policy: (n, 5)}, each distinct view predicted once
"""
from __future__ import annotations

import dataclasses
import itertools
from typing import Callable, Sequence

import numpy as np

from ..labels import STUDY_EMOTIONS
from ..keras_io import compiled_predict_fn as keras_predict_fn  # noqa: F401 (re-exported: the TTA predict_fn)

_CV_MAX_CHANNELS = 512  # cv2.warpAffine handles at most CV_CN_MAX channels per call


@dataclasses.dataclass(frozen=True)
class View:
    """One deterministic view of a face.

    ``flip``: mirror left-right first. ``zoom``: > 1 enlarges the face (crops), < 1 shrinks it (adds
    reflected border). ``angle``: degrees, counter-clockwise. ``offset``: (dx, dy) in input pixels from
    the image centre of the point that lands on the output centre (so the content moves by -offset).
    """

    flip: bool = False
    zoom: float = 1.0
    angle: float = 0.0
    offset: tuple[float, float] = (0.0, 0.0)

    @property
    def is_identity_warp(self) -> bool:
        return self.zoom == 1.0 and self.angle == 0.0 and tuple(self.offset) == (0.0, 0.0)

    def matrix(self, h: int, w: int) -> np.ndarray:
        """float64 (2, 3) forward affine map input pixel -> output pixel (pixel centres at integers)."""
        a = np.deg2rad(self.angle)
        c, s = self.zoom * np.cos(a), self.zoom * np.sin(a)
        rot = np.array([[c, s], [-s, c]])  # counter-clockwise on screen (y points down), like cv2
        centre = np.array([(w - 1) / 2.0, (h - 1) / 2.0])
        src_centre = centre + np.asarray(self.offset, dtype=np.float64)
        return np.hstack([rot, (centre - rot @ src_centre)[:, None]])


def _mirrored(warps: Sequence[View]) -> tuple[View, ...]:
    """Every warp without and with the horizontal flip: 2 * len(warps) views, unflipped first."""
    return tuple(dataclasses.replace(v, flip=f) for f, v in itertools.product((False, True), warps))


def _shifts(d: float) -> tuple[View, ...]:
    return (View(),) + tuple(View(offset=o) for o in ((d, 0.0), (-d, 0.0), (0.0, d), (0.0, -d)))


def _ten_crop(crop: int = 44, size: int = 48) -> tuple[View, ...]:
    """Centre + 4 corner crops of ``crop`` px resized back to ``size`` (as warps; the flip doubles them)."""
    z, d = size / crop, (size - crop) / 2.0
    return (View(zoom=z),) + tuple(View(zoom=z, offset=(sx * d, sy * d)) for sx in (-1, 1) for sy in (-1, 1))


TTA_POLICIES: dict[str, tuple[View, ...]] = {}
TTA_DESCRIPTIONS: dict[str, str] = {}


def register_tta(name: str, views: Sequence[View], description: str = "") -> tuple[View, ...]:
    """Add (or replace) a named policy."""
    if not views:
        raise ValueError(f"TTA policy {name!r} needs at least one view")
    TTA_POLICIES[name] = tuple(views)
    TTA_DESCRIPTIONS[name] = description
    return TTA_POLICIES[name]


register_tta("none", (View(),), "the face as is (1 view)")
register_tta("flip", _mirrored((View(),)), "face + mirror (2 views)")
register_tta("flip-shift", _mirrored(_shifts(2.0)), "flip x {centre, 2 px left/right/up/down} (10 views)")
register_tta("flip-crop", _mirrored(_ten_crop(44, 48)), "ten-crop: flip x {centre, 4 corner} 44 px crops "
                                                        "resized to 48 (10 views)")
register_tta("flip-scale", _mirrored((View(), View(zoom=1 / 1.1), View(zoom=1.1))),
             "flip x zoom {1, 1/1.1, 1.1} (6 views)")
register_tta("flip-rotate", _mirrored((View(), View(angle=-8.0), View(angle=8.0))),
             "flip x rotation {0, -8, +8} degrees (6 views)")
register_tta("flip-mix", _mirrored(_shifts(2.0) + (View(zoom=1 / 1.1), View(zoom=1.1),
                                                   View(angle=-8.0), View(angle=8.0))),
             "flip x {centre, 4 shifts of 2 px, zoom 1/1.1 and 1.1, rotation -8 and +8 degrees} (18 views)")


def list_tta() -> list[str]:
    """Names :func:`tta_policy` accepts."""
    return sorted(TTA_POLICIES)


def tta_policy(policy: str | Sequence[View]) -> tuple[View, ...]:
    """The views of a named policy (or a sequence of views, returned as a tuple); ValueError listing names."""
    if isinstance(policy, str):
        try:
            return TTA_POLICIES[policy]
        except KeyError:
            raise ValueError(f"unknown TTA policy {policy!r}; valid policies: {', '.join(list_tta())}") from None
    views = tuple(policy)
    if not views or not all(isinstance(v, View) for v in views):
        raise ValueError("a TTA policy is a name or a non-empty sequence of View")
    return views


def _as_images(x: np.ndarray) -> tuple[np.ndarray, bool]:
    """float32 (n, h, w) and whether the input had a trailing channel axis of 1."""
    x = np.asarray(x)
    channel = x.ndim == 4 and x.shape[-1] == 1
    if channel:
        x = x[..., 0]
    if x.ndim != 3:
        raise ValueError(f"faces have shape {x.shape}; expected (n, h, w) or (n, h, w, 1)")
    return x.astype(np.float32, copy=False), channel


def warp_batch(x: np.ndarray, m: np.ndarray) -> np.ndarray:
    """float32 (n, h, w) images warped by the forward affine ``m`` (2, 3), bilinear, reflected border."""
    import cv2

    n, h, w = x.shape
    out = np.empty_like(x)
    stack = np.ascontiguousarray(x.transpose(1, 2, 0))  # (h, w, n): one cv2 call per 512 images
    for i in range(0, n, _CV_MAX_CHANNELS):
        part = cv2.warpAffine(stack[..., i:i + _CV_MAX_CHANNELS], m, (w, h), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_REFLECT)
        out[i:i + _CV_MAX_CHANNELS] = part.reshape(h, w, -1).transpose(2, 0, 1)
    return out


def tta_views(x: np.ndarray, policy: str | Sequence[View] = "flip") -> np.ndarray:
    """float32 (v, n, h, w[, 1]) views of faces ``x`` (n, h, w[, 1]) in 0..255, in the policy's order."""
    views = tta_policy(policy)
    imgs, channel = _as_images(x)
    n, h, w = imgs.shape
    out = np.empty((len(views), n, h, w), np.float32)
    for k, v in enumerate(views):  # a handful of views; each is one vectorised call over the batch
        src = imgs[:, :, ::-1] if v.flip else imgs
        out[k] = src if v.is_identity_warp else warp_batch(np.ascontiguousarray(src), v.matrix(h, w))
    return out[..., None] if channel else out


def view_proba(predict_fn: Callable[[np.ndarray], np.ndarray], x: np.ndarray,
               policy: str | Sequence[View] = "flip", batch_size: int = 256, progress: bool = False) -> np.ndarray:
    """float32 (v, n, k): ``predict_fn`` probabilities of every view of the faces ``x`` (n, h, w[, 1]).

    ``predict_fn`` takes float32 (m, h, w[, 1]) (the layout of ``x``) and returns (m, k), m <= ``batch_size``:
    the views of a chunk of ``batch_size`` faces are made at once, then predicted ``batch_size`` at a time.
    ``progress`` shows a tqdm bar over the chunks.
    """
    from tqdm import tqdm

    views = tta_policy(policy)
    x = np.asarray(x)
    out = []
    for i in tqdm(range(0, len(x), batch_size), desc=f"{len(views)} views", unit="chunk", disable=not progress):
        v = tta_views(x[i:i + batch_size], views)
        flat = v.reshape(-1, *v.shape[2:])
        p = np.concatenate([np.asarray(predict_fn(flat[j:j + batch_size]), dtype=np.float32)
                            for j in range(0, len(flat), batch_size)])
        out.append(p.reshape(len(views), v.shape[1], -1))
    if not out:
        return np.zeros((len(views), 0, len(STUDY_EMOTIONS)), np.float32)
    return np.concatenate(out, axis=1)


def predict_tta(predict_fn: Callable[[np.ndarray], np.ndarray], x: np.ndarray, policy: str | Sequence[View] = "flip",
                batch_size: int = 256) -> np.ndarray:
    """float32 (n, k): ``predict_fn`` probabilities averaged over the policy's views (see :func:`view_proba`)."""
    return view_proba(predict_fn, x, policy, batch_size).mean(axis=0)


def policy_proba(predict_fn: Callable[[np.ndarray], np.ndarray], x: np.ndarray, policies: Sequence[str],
                 batch_size: int = 256, progress: bool = False) -> dict[str, np.ndarray]:
    """{policy: float32 (n, k)} like :func:`predict_tta` for each policy, predicting each distinct view once."""
    distinct = list(dict.fromkeys(v for p in policies for v in tta_policy(p)))
    probs = view_proba(predict_fn, x, distinct, batch_size, progress)
    index = {v: i for i, v in enumerate(distinct)}
    return {p: probs[[index[v] for v in tta_policy(p)]].mean(axis=0) for p in policies}


class TTAPredictor:
    """The predictor contract (``predict_proba(faces) -> (n, 5)``) for a Keras model with a TTA policy."""

    input_kind = "crops"

    def __init__(self, model, name: str, policy: str | Sequence[View] = "flip",
                 classes: Sequence[str] = STUDY_EMOTIONS, batch_size: int = 256):
        self.model = model
        self.name = name
        self.policy = policy
        self.views = tta_policy(policy)
        self.classes = tuple(classes)
        self.batch_size = batch_size
        _, h, w, _ = model.input_shape
        self.input_hw = (int(h), int(w))
        self._fn = keras_predict_fn(model)

    def predict_proba(self, faces) -> np.ndarray:
        from ..crops import to_gray_faces

        x = to_gray_faces(faces, self.input_hw)
        return predict_tta(self._fn, x, self.views, self.batch_size)
