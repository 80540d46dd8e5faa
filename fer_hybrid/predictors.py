"""One prediction contract for every model, and a registry of models by name.

Contract: ``predictor.predict_proba(faces) -> float32 (n, 5)`` with rows summing to 1 in the order of
``labels.STUDY_EMOTIONS``. ``faces`` is a uint8 array (n, h, w) of grayscale crops or a list of crops,
each grayscale (h, w) or BGR (h, w, 3); every predictor resizes/normalises internally. A row of NaN
means "no answer" (e.g. no landmarks) and must never be shown as a label.

>>> list_models()
>>> p = load_predictor("vggface"); p.predict_proba(faces)
"""
from __future__ import annotations

import dataclasses
import importlib
import zipfile
from pathlib import Path
from typing import Callable, Protocol, Sequence, runtime_checkable

import numpy as np

from .artifacts import models_dir, read_manifest
from .images import to_gray
from .labels import STUDY_EMOTIONS


class ArtifactMissingError(FileNotFoundError):
    """A registered model's artifact file is not there; the message names the command that trains it."""


class ArtifactError(ValueError):
    """A model artifact exists but cannot be loaded (truncated, corrupt, wrong format)."""


@runtime_checkable
class Predictor(Protocol):
    """Every model: ``predict_proba(crops) -> (n, 5)``. ``input_kind`` tells the Analyzer what to hand over:
    ``"crops"`` (gray crops of the face boxes) or ``"frame"`` (the predictor then also implements
    ``predict_frame(frame, boxes) -> (proba (k, 5), points (k, 68, 2))``; see fer_hybrid.inference)."""

    name: str
    classes: tuple[str, ...]
    input_kind: str

    def predict_proba(self, faces) -> np.ndarray:  # (n, 5)
        ...


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    name: str
    kind: str                 # baseline | cnn | landmarks | hybrid
    artifact: str             # file name inside the models folder
    loader: str               # "module:function" taking (path: Path, name: str) -> Predictor
    train_command: str
    description: str = ""


_REGISTRY: dict[str, ModelSpec] = {}


def register_model(spec: ModelSpec) -> ModelSpec:
    _REGISTRY[spec.name] = spec
    return spec


def list_models(available_only: bool = False, root: str | Path | None = None) -> list[str]:
    """Names :func:`load_predictor` accepts (optionally only those whose artifact is present)."""
    names = sorted(_REGISTRY)
    if available_only:
        root = Path(root or models_dir())
        names = [n for n in names if (root / _REGISTRY[n].artifact).exists()]
    return names


def model_spec(name: str) -> ModelSpec:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; valid models: {', '.join(list_models())}") from None


def default_model(root: str | Path | None = None) -> str:
    """The manifest's ``default`` if shipped, else the first available model by preference."""
    root = Path(root or models_dir())
    preferred = [read_manifest(root).get("default"), "hybrid", "vggface", "vggbn", "mobilenetv2", "landmarks",
                 "baseline"]
    available = set(list_models(available_only=True, root=root))
    for name in preferred:
        if name in available:
            return name
    if available:
        return sorted(available)[0]
    raise ArtifactMissingError(f"no trained model found in {root}; train one, e.g. "
                               f"`{model_spec('vggbn').train_command}`")


def load_predictor(name: str, root: str | Path | None = None) -> Predictor:
    """Load a registered model. ValueError for an unknown name (lists the valid ones),
    ArtifactMissingError (names the training command) or ArtifactError (corrupt file)."""
    spec = model_spec(name)
    path = Path(root or models_dir()) / spec.artifact
    if not path.exists():
        raise ArtifactMissingError(f"model {name!r} has no artifact at {path}; train it with `{spec.train_command}`")
    module, func = spec.loader.split(":")
    loader: Callable = getattr(importlib.import_module(module), func)
    return loader(path, name)


# ---------------------------------------------------------------------------------------------
# Face crops -> model input
# ---------------------------------------------------------------------------------------------
def to_gray_faces(faces, size: int | tuple[int, int] = 48) -> np.ndarray:
    """uint8 (n, size, size) from an array (n, h, w) / (n, h, w, 3) or a list of gray/BGR crops."""
    import cv2

    hw = (size, size) if isinstance(size, int) else tuple(size)
    if isinstance(faces, np.ndarray) and faces.ndim == 3 and faces.shape[1:] == hw and faces.dtype == np.uint8:
        return faces
    out = np.empty((len(faces), *hw), dtype=np.uint8)
    for i, f in enumerate(faces):
        f = to_gray(f, what=f"face {i}")
        out[i] = f if f.shape == hw else cv2.resize(f, hw[::-1], interpolation=cv2.INTER_AREA)
    return out


def compiled_predict_fn(model) -> Callable[[np.ndarray], np.ndarray]:
    """Numpy wrapper of one compiled ``tf.function`` of ``model``: float32 (m, h, w[, 1]) pixels in 0..255
    at the network's input size -> float32 (m, k). Unlike ``predict_proba`` it does not round to uint8,
    so warped TTA views go in as they are. Fast for single frames, unlike eager ``model(x)``/``model.predict``."""
    import tensorflow as tf

    _, h, w, c = model.input_shape
    fn = tf.function(lambda t: model(t, training=False), reduce_retracing=True,
                     input_signature=[tf.TensorSpec([None, h, w, c], tf.float32)])
    return lambda x: np.asarray(fn(np.asarray(x, np.float32).reshape(-1, h, w, c)), dtype=np.float32)


class KerasPredictor:
    """A Keras model taking float32 (n, h, w, 1) gray pixels in 0..255 and returning softmax (n, 5).

    Resizing to the network's size, channel replication and normalisation are layers inside the
    model, so the saved ``.keras`` file is self-contained. Inference runs through one compiled
    ``tf.function`` (fast for single frames, unlike eager ``model(x)`` or ``model.predict``).
    """

    input_kind = "crops"

    def __init__(self, model, name: str, classes: Sequence[str] = STUDY_EMOTIONS):
        self.model = model
        self.name = name
        self.classes = tuple(classes)
        _, h, w, _ = model.input_shape
        self.input_hw = (int(h), int(w))
        self.predict_pixels = compiled_predict_fn(model)

    def predict_proba(self, faces) -> np.ndarray:
        x = to_gray_faces(faces, self.input_hw)
        if len(x) == 0:
            return np.zeros((0, len(self.classes)), np.float32)
        return self.predict_pixels(x)

    @classmethod
    def from_file(cls, path: str | Path, name: str) -> "KerasPredictor":
        return cls(load_keras_model(path), name)


def load_keras_model(path: str | Path):
    """keras.models.load_model with our custom layers registered; ArtifactError if the file is unusable."""
    import keras

    from . import cnn  # noqa: F401  registers fer_hybrid's serializable layers

    if Path(path).suffix == ".keras" and not zipfile.is_zipfile(path):  # Keras would say "File not found"
        raise ArtifactError(f"cannot load model file {path}: not a valid .keras (zip) file; truncated or corrupt?")
    try:
        return keras.models.load_model(path, compile=False)
    except Exception as e:  # keras raises many types for a damaged zip/h5
        raise ArtifactError(f"cannot load model file {path}: {type(e).__name__}: {str(e).splitlines()[0][:200]}") from e


def load_keras_predictor(path: Path, name: str) -> KerasPredictor:
    return KerasPredictor.from_file(path, name)


# ---------------------------------------------------------------------------------------------
# Built-in registry entries
# ---------------------------------------------------------------------------------------------
_CNN = {
    "baseline": ("baseline", "python experiments/cnn_baseline.py", "small CNN from scratch, as in the study"),
    "vggbn": ("cnn", "python experiments/cnn_transfer.py --backbone vggbn", "our VGG-style CNN with BatchNorm, 48 px"),
    "mobilenetv2": ("cnn", "python experiments/cnn_transfer.py --backbone mobilenetv2", "keras.applications MobileNetV2"),
    "resnet50": ("cnn", "python experiments/cnn_transfer.py --backbone resnet50", "keras.applications ResNet50"),
    "vgg16": ("cnn", "python experiments/cnn_transfer.py --backbone vgg16", "keras.applications VGG16"),
    "vggface": ("cnn", "python experiments/cnn_transfer.py --backbone vggface", "VGGFace (VGG16 variant)"),
    "vggbn-ft": ("cnn", "python experiments/cnn_transfer.py --backbone vggbn --weights models/vggbn.keras --epochs 8 "
                        "--lr 3e-4 --seed 11 --tta --name vggbn-ft",
                 "vggbn trained 8 more epochs (a second cosine cycle, new seed): a snapshot-ensemble member"),
    "vggbn-s7": ("cnn", "python experiments/cnn_transfer.py --backbone vggbn --epochs 30 --seed 7 --tta --name vggbn-s7",
                 "vggbn trained from scratch with another seed: an independent ensemble member"),
    "vggbn-s7-fp": ("cnn", "python experiments/cnn_transfer.py --backbone vggbn --weights models/vggbn-s7.keras "
                           "--epochs 8 --lr 3e-4 --seed 13 --ferplus-mix 0.5 --tta --name vggbn-s7-fp",
                    "vggbn-s7 trained 8 more epochs on soft targets: half FER2013 label, half FER+ vote shares"),
    "vggbn-long": ("cnn", "python experiments/cnn_transfer.py --backbone vggbn --weights models/vggbn-ft.keras "
                          "--epochs 38 --lr 1e-3 --seed 23 --tta --name vggbn-long",
                   "vggbn-ft trained 38 more epochs (a full-height cosine restart): the longest-trained vggbn"),
    "vggbn-s7-long": ("cnn", "python experiments/cnn_transfer.py --backbone vggbn --weights models/vggbn-s7.keras "
                             "--epochs 38 --lr 1e-3 --seed 29 --tta --name vggbn-s7-long",
                      "vggbn-s7 trained 38 more epochs (a full-height cosine restart): long-trained, independent of vggbn-long"),
    "vggbn-long-ft": ("cnn", "python experiments/cnn_transfer.py --backbone vggbn --weights models/vggbn-long.keras "
                             "--epochs 8 --lr 3e-4 --seed 31 --tta --name vggbn-long-ft",
                      "vggbn-long trained 8 more epochs (a second, lower cosine cycle): a snapshot-ensemble member"),
}
for _name, (_kind, _cmd, _desc) in _CNN.items():
    register_model(ModelSpec(_name, _kind, f"{_name}.keras", "fer_hybrid.predictors:load_keras_predictor", _cmd, _desc))

register_model(ModelSpec("landmarks", "landmarks", "landmarks/ensemble.json",
                         "fer_hybrid.landmarks.predictor:load_landmark_predictor",
                         "python experiments/landmarks.py", "dlib 68-point geometry -> gradient-boosted ensemble"))
register_model(ModelSpec("hybrid", "hybrid", "hybrid/hybrid.json", "fer_hybrid.hybrid:load_hybrid_predictor",
                         "python experiments/hybrid.py", "CNN + landmark fusion"))
