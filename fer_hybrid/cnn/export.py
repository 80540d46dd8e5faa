"""Shipping forms of a trained CNN: test-time flip inside the graph, and an ONNX export.

``with_flip_tta(model)`` returns a model that averages the softmax of the face and of its mirror image
in one graph, so the shipped ``.keras`` file *is* what the registry runs (no TTA outside the model).
``export_onnx(model, path)`` writes the same network as ONNX (Keras 3 ``model.export(format="onnx")``,
tf2onnx underneath) for :class:`fer_hybrid.onnx_model.OnnxPredictor`, which runs without TensorFlow.
"""
from __future__ import annotations

import os
from pathlib import Path

import keras
import numpy as np

from .. import _atomic


@keras.saving.register_keras_serializable(package="fer_hybrid")
class HorizontalFlip(keras.layers.Layer):
    """Mirror images left-right: (n, h, w, c) -> (n, h, w, c)."""

    def call(self, x):
        return keras.ops.flip(x, axis=2)


def with_flip_tta(model, name: str | None = None):
    """A model computing mean(model(x), model(mirror(x))): float32 (n, h, w, c) -> softmax (n, k)."""
    inputs = keras.Input(model.input_shape[1:], dtype="float32", name="gray_0_255")
    flipped = HorizontalFlip(name="mirror")(inputs)
    out = keras.layers.Average(name="flip_tta")([model(inputs), model(flipped)])
    return keras.Model(inputs, out, name=name or f"{model.name}_flip")


def is_flip_tta(model) -> bool:
    """Whether ``model`` is a :func:`with_flip_tta` wrapper (a mirror layer, one inner network, their average)."""
    names = {layer.name for layer in model.layers}
    return {"mirror", "flip_tta"} <= names and sum(isinstance(layer, keras.Model) for layer in model.layers) == 1


def without_flip_tta(model):
    """The network inside a :func:`with_flip_tta` wrapper (the same layer objects, so the same weights): how a
    shipped flip-in-graph ``.keras`` file warm-starts training. ValueError for any other model."""
    if not is_flip_tta(model):
        raise ValueError(f"model {model.name!r} is not a flip-TTA wrapper (fer_hybrid.cnn.export.with_flip_tta)")
    return next(layer for layer in model.layers if isinstance(layer, keras.Model))


def export_onnx(model, path: str | os.PathLike) -> Path:
    """Write ``model`` as ONNX at ``path`` atomically (the model is called once first, as export needs)."""
    model(np.zeros((1, *model.input_shape[1:]), np.float32))
    with _atomic.atomic_path(path, suffix=".onnx") as tmp:
        model.export(str(tmp), format="onnx", verbose=False)
    return Path(path)
