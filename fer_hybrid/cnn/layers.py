"""Input-side layers: raw FER2013 pixels -> what a backbone expects, as layers inside the model.

Every model of :mod:`fer_hybrid.cnn.backbones` takes float32 ``(n, 48, 48, 1)`` gray pixels in 0..255.
:func:`input_pipeline` turns that tensor into the backbone's input with built-in Keras layers only
(``Resizing``, ``Concatenate``, ``Rescaling``, ``Normalization``), so a saved ``.keras`` file is
self-contained and loads without ``safe_mode`` tricks or Lambda layers.

Preprocessing names (``PREPROCESSING``):

``scale01``  x / 255                                   (models trained from scratch)
``tf``       x / 127.5 - 1                             (keras.applications MobileNetV2)
``caffe``    BGR minus ImageNet means 103.939, 116.779, 123.68  (keras.applications VGG16 / ResNet50)
``vggface``  BGR minus VGGFace means 93.5940, 104.7624, 129.1863  (rcmalli keras-vggface, version 1)
``none``     identity

The gray channel is replicated to 3 before mean subtraction, so the BGR flip of the reference
``preprocess_input`` functions is a no-op here; only each channel's mean matters.

Custom layers, if ever needed, go in this module with
``@keras.saving.register_keras_serializable(package="fer_hybrid")``; ``fer_hybrid.cnn`` imports it so
they are registered before ``keras.models.load_model`` runs.
"""
from __future__ import annotations

import keras

INPUT_SIZE = 48  # FER2013 resolution: every model's input is (48, 48, 1)

CAFFE_BGR_MEANS = (103.939, 116.779, 123.68)
VGGFACE_BGR_MEANS = (93.5940, 104.7624, 129.1863)
PREPROCESSING = ("scale01", "tf", "caffe", "vggface", "none")


def pixels_input(size: int = INPUT_SIZE, name: str = "pixels") -> keras.KerasTensor:
    """``keras.Input`` for float32 gray pixels 0..255, shape (batch, size, size, 1)."""
    return keras.Input((size, size, 1), dtype="float32", name=name)


def preprocessing_layer(name: str) -> keras.layers.Layer | None:
    """The built-in layer implementing preprocessing ``name`` (None for ``"none"``); ValueError if unknown."""
    if name == "scale01":
        return keras.layers.Rescaling(1.0 / 255.0, name="scale01")
    if name == "tf":
        return keras.layers.Rescaling(1.0 / 127.5, offset=-1.0, name="tf_scale")
    if name in ("caffe", "vggface"):
        means = CAFFE_BGR_MEANS if name == "caffe" else VGGFACE_BGR_MEANS
        return keras.layers.Normalization(mean=list(means), variance=[1.0] * 3, name=f"{name}_bgr_mean")
    if name == "none":
        return None
    raise ValueError(f"unknown preprocessing {name!r}; valid: {', '.join(PREPROCESSING)}")


def input_pipeline(x, size: int, channels: int, preprocessing: str):
    """Pixels (n, 48, 48, 1) in 0..255 -> backbone input (n, size, size, channels), preprocessed.

    Resizes (bilinear) only when ``size`` differs from the input's, replicates gray to 3 channels
    when ``channels == 3``, then applies ``preprocessing`` (see module docstring).
    """
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels}")
    if channels == 1 and preprocessing in ("caffe", "vggface"):
        raise ValueError(f"preprocessing {preprocessing!r} needs 3 channels")
    if x.shape[1] != size or x.shape[2] != size:
        x = keras.layers.Resizing(size, size, interpolation="bilinear", name=f"resize_{size}")(x)
    if channels == 3:
        x = keras.layers.Concatenate(axis=-1, name="gray_to_3ch")([x, x, x])
    layer = preprocessing_layer(preprocessing)
    return x if layer is None else layer(x)
