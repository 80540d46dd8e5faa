"""Function-preserving widening of a trained ``vggbn`` (Net2WiderNet; Chen, Goodfellow & Shlens, ICLR 2016).

``widen_vggbn(model, (64, 128, 256, 512))`` returns a wider copy of a trained
:func:`fer_hybrid.cnn.vggbn.build_vggbn` network that computes the same function: every new channel of a conv
layer copies an existing one (the first ``old`` channels are the originals, the others are drawn at random),
with its BatchNorm statistics and affine parameters, and the next layer (conv or ``head_fc``) divides the
incoming weights of each copied channel by the number of its copies. A wider student can then start from a
trained narrow one instead of from random weights.

``noise`` > 0 adds Gaussian noise (standard deviation ``noise`` x the layer's kernel std) to the kernels of the
added channels only, to break the symmetry between a channel and its copies; the function then changes by
about that much. Without it, spatial dropout still breaks the symmetry during training.
"""
from __future__ import annotations

import re
from typing import Sequence

import numpy as np

_CONV = re.compile(r"^block(\d+)_conv(\d+)$")


def vggbn_widths(model) -> tuple[int, ...]:
    """The widths of a ``vggbn`` network: filters of each block's convolutions, e.g. (48, 96, 192, 384).
    ValueError when ``model`` has no ``block<b>_conv<c>`` layers."""
    widths: dict[int, int] = {}
    for layer in model.layers:
        m = _CONV.match(layer.name)
        if m:
            widths[int(m.group(1))] = int(layer.filters)
    if not widths:
        raise ValueError(f"model {model.name!r} is not a vggbn network (no block<b>_conv<c> layers)")
    return tuple(widths[b] for b in sorted(widths))


def widen_vggbn(model, widths: Sequence[int], seed: int = 0, noise: float = 0.0):
    """A wider ``vggbn`` (same layers, conv filters = ``widths`` per block) computing ``model``'s function
    (exactly when ``noise`` is 0, up to float rounding): float32 (n, 48, 48, 1) gray 0..255 -> softmax (n, k).
    ValueError when ``model`` is not a vggbn, when ``widths`` has another number of blocks, or when a width is
    narrower than the model's."""
    import keras

    old = vggbn_widths(model)
    widths = tuple(int(w) for w in widths)
    if len(widths) != len(old):
        raise ValueError(f"widths {widths} have {len(widths)} blocks; the model has {len(old)} {old}")
    if any(w < o for w, o in zip(widths, old)):
        raise ValueError(f"widening needs widths >= the model's {old}, got {widths}")
    config = model.get_config()
    for layer in config["layers"]:
        layer.pop("build_config", None)  # input shapes change; the layers are built from the new graph
        m = _CONV.match(layer["config"]["name"])
        if m:
            layer["config"]["filters"] = widths[int(m.group(1)) - 1]
    wide = keras.Model.from_config(config)
    rng = np.random.default_rng(seed)

    source = None  # for the current input channels: the old channel each new one copies, and its copy counts
    for layer in model.layers:
        target = wide.get_layer(layer.name)
        m = _CONV.match(layer.name)
        if m:
            kernel = layer.get_weights()[0]  # (3, 3, c_in, c_out)
            kernel = _divide_inputs(kernel, source, axis=2)
            n_old, n_new = kernel.shape[3], widths[int(m.group(1)) - 1]
            mapping = np.concatenate([np.arange(n_old), rng.integers(0, n_old, n_new - n_old)])
            new_kernel = kernel[..., mapping].copy()
            if noise and n_new > n_old:
                new_kernel[..., n_old:] += rng.normal(0.0, noise * kernel.std(), new_kernel[..., n_old:].shape)
            target.set_weights([new_kernel.astype(np.float32)] + [w[..., mapping] for w in layer.get_weights()[1:]])
            source = mapping
        elif isinstance(layer, keras.layers.BatchNormalization) and layer.name.startswith("block"):
            target.set_weights([w[source] for w in layer.get_weights()])
        elif layer.name == "head_fc":
            weights = layer.get_weights()
            target.set_weights([_divide_inputs(weights[0], source, axis=0)] + weights[1:])
        elif layer.get_weights():
            target.set_weights(layer.get_weights())
    return wide


def _divide_inputs(kernel: np.ndarray, source: np.ndarray | None, axis: int) -> np.ndarray:
    """``kernel`` with its input axis expanded to the copied channels ``source`` (new -> old channel) and each
    copy's weights divided by its old channel's copy count, so that the sum over inputs is unchanged."""
    if source is None:
        return kernel
    counts = np.bincount(source, minlength=kernel.shape[axis])[source]
    shape = [1] * kernel.ndim
    shape[axis] = len(source)
    return (np.take(kernel, source, axis=axis) / counts.reshape(shape)).astype(np.float32)
