"""VGGFace (the VGG16 variant of Parkhi et al. 2015) in Keras 3, and a loader for its published weights.

The architecture and layer names follow rcmalli/keras-vggface (MIT), whose v2.0 release publishes the
weights converted from the authors' Caffe model:

* ``rcmalli_vggface_tf_vgg16.h5``       full model, input (224, 224, 3), fc8 = 2622 identities
* ``rcmalli_vggface_tf_notop_vgg16.h5``  convolutional part only (conv1_1 ... conv5_3)

Input: BGR images minus the VGGFace channel means (see ``fer_hybrid.cnn.layers``, preprocessing
``"vggface"``). The files are Keras-2 HDF5 weight files: the root (or its ``model_weights`` group) has
the attribute ``layer_names``; each layer's group has the attribute ``weight_names`` naming its
datasets (kernel, bias). :func:`load_vggface_weights` matches layers by name and checks every shape
before assigning anything.

>>> m = VGGFace(include_top=False, input_shape=(48, 48, 3), weights="vggface")   # online: downloads once
>>> m = VGGFace(include_top=False, input_shape=(48, 48, 3), weights="path/to/rcmalli_vggface_tf_notop_vgg16.h5")
"""
from __future__ import annotations

import os
from pathlib import Path

import h5py
import keras
import numpy as np

_RELEASE = "https://github.com/rcmalli/keras-vggface/releases/download/v2.0/"
WEIGHT_FILES = {  # include_top -> (file name, URL)
    True: ("rcmalli_vggface_tf_vgg16.h5", _RELEASE + "rcmalli_vggface_tf_vgg16.h5"),
    False: ("rcmalli_vggface_tf_notop_vgg16.h5", _RELEASE + "rcmalli_vggface_tf_notop_vgg16.h5"),
}
CACHE_SUBDIR = "models/vggface"
NUM_IDENTITIES = 2622
BLOCKS = ((64, 2), (128, 2), (256, 3), (512, 3), (512, 3))  # (filters, convs) per block


class WeightsNotFoundError(FileNotFoundError):
    """Pretrained weights are neither in the Keras cache nor downloadable; the message says where to put them."""


class WeightsMismatchError(ValueError):
    """A weight file does not fit the model (missing layers, wrong number or shape of arrays)."""


def keras_cache_dir() -> Path:
    """The folder ``keras.utils.get_file`` caches into (``$KERAS_HOME`` or ``~/.keras``)."""
    try:
        from keras.src.backend.config import keras_home

        return Path(keras_home())
    except ImportError:  # pragma: no cover - private API moved
        return Path(os.environ.get("KERAS_HOME", Path.home() / ".keras"))


def cached_weights_path(include_top: bool = False) -> Path:
    """Where the published VGGFace file is expected in the Keras cache (it may not exist)."""
    return keras_cache_dir() / CACHE_SUBDIR / WEIGHT_FILES[bool(include_top)][0]


def vggface_weights_file(include_top: bool = False) -> Path:
    """Path of the published VGGFace weights: from the Keras cache, else downloaded into it.

    Raises :class:`WeightsNotFoundError` (naming the URL and the cache path) when the file is absent
    and cannot be downloaded, e.g. offline.
    """
    fname, url = WEIGHT_FILES[bool(include_top)]
    try:
        return Path(keras.utils.get_file(fname, url, cache_subdir=CACHE_SUBDIR))
    except Exception as e:  # get_file raises a bare Exception for URL/HTTP errors
        raise WeightsNotFoundError(
            f"VGGFace weights {fname} are not in the Keras cache and could not be downloaded from {url} "
            f"({type(e).__name__}: {str(e).splitlines()[0][:160] if str(e) else ''}); download the file and put it "
            f"at {cached_weights_path(include_top)}, or pass weights=<path to the file>") from e


def VGGFace(include_top: bool = True, input_shape: tuple[int, int, int] | None = None, weights=None,
            pooling: str | None = None, classes: int = NUM_IDENTITIES, name: str = "vggface_vgg16") -> keras.Model:
    """VGGFace VGG16: conv1_1 ... conv5_3 with pool1 ... pool5, plus fc6, fc7 (4096, ReLU), fc8 (softmax).

    input_shape: (h, w, 3), default (224, 224, 3) — the published top needs exactly that; without
    the top any size >= 32 works. pooling: None (pool5 feature map), "avg" or "max" (no-top only).
    weights: None (random init), "vggface" (published file via the Keras cache) or a path to a
    Keras-2 HDF5 weight file (full or no-top).
    """
    input_shape = tuple(input_shape or (224, 224, 3))
    if len(input_shape) != 3 or input_shape[-1] != 3 or min(input_shape[:2]) < 32:
        raise ValueError(f"input_shape must be (h, w, 3) with h, w >= 32, got {input_shape}")
    if pooling not in (None, "avg", "max"):
        raise ValueError(f"pooling must be None, 'avg' or 'max', got {pooling!r}")
    inputs = keras.Input(input_shape, name="input")
    x = inputs
    for b, (filters, n_conv) in enumerate(BLOCKS, start=1):
        for c in range(1, n_conv + 1):
            x = keras.layers.Conv2D(filters, 3, padding="same", activation="relu", name=f"conv{b}_{c}")(x)
        x = keras.layers.MaxPooling2D(2, strides=2, name=f"pool{b}")(x)
    if include_top:
        x = keras.layers.Flatten(name="flatten")(x)
        x = keras.layers.Dense(4096, activation="relu", name="fc6")(x)
        x = keras.layers.Dense(4096, activation="relu", name="fc7")(x)
        x = keras.layers.Dense(classes, activation="softmax", name="fc8")(x)
    elif pooling == "avg":
        x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    elif pooling == "max":
        x = keras.layers.GlobalMaxPooling2D(name="max_pool")(x)
    model = keras.Model(inputs, x, name=name)
    if weights is not None:
        if isinstance(weights, str) and weights == "vggface":
            weights = vggface_weights_file(include_top)
        load_vggface_weights(model, weights)
    return model


def read_keras2_weights(path: str | os.PathLike) -> dict[str, list[np.ndarray]]:
    """{layer name: [arrays in the file's order]} from a Keras-2 HDF5 weight file (layers with weights only)."""
    path = Path(path)
    if not path.is_file():
        raise WeightsNotFoundError(f"weight file {path} does not exist; put the published VGGFace file "
                                   f"({WEIGHT_FILES[False][0]} or {WEIGHT_FILES[True][0]}) there, or in "
                                   f"{cached_weights_path().parent}")
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise WeightsMismatchError(f"{path} is not an HDF5 weight file ({e})") from e
    with f:
        root = f["model_weights"] if "model_weights" in f else f
        if "layer_names" not in root.attrs:
            raise WeightsMismatchError(f"{path} is not a Keras-2 weight file: no 'layer_names' attribute "
                                       f"(Keras 3 '.weights.h5' files load with model.load_weights)")
        out = {}
        for raw in root.attrs["layer_names"]:
            lname = raw.decode("utf8") if isinstance(raw, bytes) else str(raw)
            group = root[lname]
            names = [n.decode("utf8") if isinstance(n, bytes) else str(n) for n in group.attrs.get("weight_names", [])]
            if names:
                out[lname] = [np.asarray(group[n]) for n in names]
        return out


def load_vggface_weights(model: keras.Model, path: str | os.PathLike) -> list[str]:
    """Assign weights from a Keras-2 HDF5 file to ``model``'s layers of the same name.

    Every model layer with weights must be in the file with the same number and shapes of arrays;
    file layers absent from the model (e.g. fc6-fc8 when loading the full file into a no-top model)
    are ignored. All checks run before any assignment, so a failed load leaves the model untouched.
    Returns the names of the loaded layers. Raises WeightsNotFoundError / WeightsMismatchError.
    """
    stored = read_keras2_weights(path)
    layers = [layer for layer in model.layers if layer.weights]
    missing = [layer.name for layer in layers if layer.name not in stored]
    if missing:
        hint = " (the no-top file has no fc6-fc8; use include_top=False or the full file)" if any(
            n.startswith("fc") for n in missing) else ""
        raise WeightsMismatchError(f"{path} has no weights for layers {', '.join(missing)}{hint}; "
                                   f"file layers: {', '.join(stored) or 'none'}")
    problems = []
    for layer in layers:
        want = [tuple(w.shape) for w in layer.weights]
        got = [a.shape for a in stored[layer.name]]
        if want != got:
            problems.append(f"{layer.name}: file {got} vs model {want}")
    if problems:
        raise WeightsMismatchError(f"weight shapes in {path} do not fit the model: " + "; ".join(problems))
    for layer in layers:
        layer.set_weights(stored[layer.name])
    return [layer.name for layer in layers]
