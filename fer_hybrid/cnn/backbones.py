"""Registry of CNN backbones: one name -> one complete, self-contained Keras classifier.

Every model from :func:`build_model` has the same interface, whatever the backbone:

* input  float32 (batch, 48, 48, 1): raw FER2013 gray pixels in 0..255
* output float32 (batch, num_classes): softmax, columns in the order of ``labels.STUDY_EMOTIONS``

Resizing to the backbone's size, gray -> 3 channels and the backbone's own preprocessing are layers
inside the model (``fer_hybrid.cnn.layers``), so a saved ``.keras`` file needs nothing else. The
feature extractor is a nested model named ``"backbone"`` (freeze it with
``model.get_layer("backbone").trainable = False``); the head is global average pooling -> Dropout ->
[Dense(hidden, relu) -> Dropout] -> Dense(num_classes, softmax) named ``"predictions"``. ``vggbn`` is
built by ``fer_hybrid.cnn.vggbn`` and is flat (no ``"backbone"`` layer).

==========  ========  ========  =============  ====================  ==============================
name        size px   channels  preprocessing  named weights         .keras file (float32, no optimizer)
==========  ========  ========  =============  ====================  ==============================
baseline    48        1         scale01        -                     1.3 MB
vggbn       48        1         (in vggbn.py)  -                     11 MB
mobilenetv2 64        3         tf             imagenet              9.7 MB
resnet50    48        3         caffe          imagenet              95 MB (over the 60 MB ship limit)
vgg16       48        3         caffe          imagenet              59.0 MB (keep hidden=0)
vggface     48        3         vggface        vggface               59.0 MB (keep hidden=0)
==========  ========  ========  =============  ====================  ==============================

A weights *path* is loaded into the ``"backbone"`` sub-model: for keras.applications entries by their
constructor (topological order; a Keras 3 ``.weights.h5`` or a Keras-2 ``.h5`` such as the
keras.applications ``*_notop.h5`` downloads), for vggface by layer name with shape checks
(``vggface.load_vggface_weights``), for vggbn into the whole model. Save trained models with
:func:`save_model`: ``model.save`` of a compiled model also stores the optimizer state (Adam: 3x size).

>>> list_backbones()
['baseline', 'mobilenetv2', 'resnet50', 'vgg16', 'vggbn', 'vggface']
>>> model = build_model("mobilenetv2", weights="imagenet")     # online users: Keras file cache
>>> model = build_model("vggface", weights="vggface")          # rcmalli keras-vggface v2.0 no-top file
>>> model = build_model("vgg16", weights="vgg16_notop.h5")      # a local weight file for the backbone
"""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Callable

import keras

from .layers import INPUT_SIZE, input_pipeline, pixels_input
from .vggface import (WEIGHT_FILES, VGGFace, WeightsMismatchError, WeightsNotFoundError, keras_cache_dir,
                      vggface_weights_file)

BACKBONE = "backbone"  # name of the nested pretrained/feature model inside every built model
__all__ = ["BackboneSpec", "BACKBONE", "WeightsMismatchError", "WeightsNotFoundError", "backbone_spec",
           "build_model", "list_backbones", "register_backbone", "save_model"]


@dataclasses.dataclass(frozen=True)
class BackboneSpec:
    """What a registry entry needs: default input side (px), channels (1 gray / 3 replicated gray),
    preprocessing name (``layers.PREPROCESSING``), named weight sources -> where they come from, and
    the factory ``(spec, num_classes, input_size, weights, **kw) -> keras.Model``."""
    name: str
    input_size: int
    channels: int
    preprocessing: str
    weight_sources: dict[str, str]
    factory: Callable[..., keras.Model]
    min_size: int = 32
    description: str = ""

    @property
    def accepted_weights(self) -> list[str]:
        return ["None", *map(repr, self.weight_sources), "a path to an existing weights file (.h5 / .weights.h5)"]


_REGISTRY: dict[str, BackboneSpec] = {}


def register_backbone(spec: BackboneSpec) -> BackboneSpec:
    _REGISTRY[spec.name] = spec
    return spec


def list_backbones() -> list[str]:
    """Names :func:`build_model` accepts."""
    return sorted(_REGISTRY)


def backbone_spec(name: str) -> BackboneSpec:
    """The registry entry for ``name``; ValueError listing the valid names otherwise."""
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown backbone {name!r}; valid backbones: {', '.join(list_backbones())}") from None


def build_model(name: str, num_classes: int = 5, input_size: int | None = None, weights=None, **kw) -> keras.Model:
    """An uncompiled classifier (see module docstring) for backbone ``name``.

    input_size: side in px the backbone sees (default: the entry's ``input_size``); the model input
    stays (48, 48, 1) and is resized inside. weights: None (random init), a named source of the entry
    (``"imagenet"`` for keras.applications nets, ``"vggface"`` for vggface) or a path to a weights file
    for the backbone. kw: head options ``dropout`` (0.5) and ``hidden`` (0 = no extra dense layer), plus
    entry-specific options. Raises ValueError for an unknown name, size or weights value, and
    WeightsNotFoundError when named weights are neither cached nor downloadable.
    """
    spec = backbone_spec(name)
    size = spec.input_size if input_size is None else int(input_size)
    if size < spec.min_size:
        raise ValueError(f"input_size for {name!r} must be >= {spec.min_size}, got {size}")
    if int(num_classes) < 2:
        raise ValueError(f"num_classes must be >= 2, got {num_classes}")
    return spec.factory(spec, num_classes=int(num_classes), input_size=size, weights=_resolve_weights(spec, weights),
                        **kw)


def save_model(model: keras.Model, path: str | os.PathLike) -> Path:
    """Write ``model`` as a ``.keras`` file atomically, WITHOUT optimizer state (Keras 3 always stores the
    optimizer of a compiled model, which triples the file for Adam). Returns the path."""
    from .._atomic import atomic_path

    if getattr(model, "optimizer", None) is not None:  # rebuild uncompiled (clone_model keeps the compile state)
        clone = model.__class__.from_config(model.get_config())
        clone.set_weights(model.get_weights())
        model = clone
    with atomic_path(path) as tmp:
        model.save(tmp)
    return Path(path)


# ---------------------------------------------------------------------------------------------
# Shared pieces
# ---------------------------------------------------------------------------------------------
def _resolve_weights(spec: BackboneSpec, weights):
    """None | a named source (str) | an existing file (Path); ValueError listing accepted values otherwise."""
    if weights is None:
        return None
    if isinstance(weights, (str, os.PathLike)):
        if isinstance(weights, str) and weights in spec.weight_sources:
            return weights
        path = Path(weights).expanduser()
        if path.is_file():
            return path
        why = f" (not a named source of this backbone, and no such file: {path})"
    else:
        why = ""
    raise ValueError(f"invalid weights {weights!r} for backbone {spec.name!r}{why}; accepted: "
                     f"{', '.join(spec.accepted_weights)}")


def _classifier(spec: BackboneSpec, backbone: keras.Model, input_size: int, num_classes: int,
                dropout: float = 0.5, hidden: int = 0) -> keras.Model:
    """pixels (48, 48, 1) -> input pipeline -> backbone -> GAP -> Dropout -> [Dense -> Dropout] -> softmax."""
    inputs = pixels_input(INPUT_SIZE)
    x = input_pipeline(inputs, input_size, spec.channels, spec.preprocessing)
    x = backbone(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    x = keras.layers.Dropout(dropout, name="head_dropout")(x)
    if hidden:
        x = keras.layers.Dense(int(hidden), activation="relu", name="head_dense")(x)
        x = keras.layers.Dropout(dropout, name="head_dense_dropout")(x)
    # float32 softmax also under a mixed_float16 policy
    outputs = keras.layers.Dense(num_classes, activation="softmax", dtype="float32", name="predictions")(x)
    return keras.Model(inputs, outputs, name=spec.name)


# ---------------------------------------------------------------------------------------------
# Entries
# ---------------------------------------------------------------------------------------------
def _baseline(spec, num_classes, input_size, weights, filters=(32, 64, 128), convs_per_block=2, dropout=0.5,
              hidden=128):
    """Small plain CNN from scratch (the study's kind): per block ``convs_per_block`` x (3x3 conv, ReLU)
    then 2x2 max pooling; ``filters`` per block."""
    inputs = keras.Input((input_size, input_size, spec.channels), name="input")
    x = inputs
    for b, f in enumerate(filters, start=1):
        for c in range(1, convs_per_block + 1):
            x = keras.layers.Conv2D(f, 3, padding="same", activation="relu", name=f"conv{b}_{c}")(x)
        x = keras.layers.MaxPooling2D(2, name=f"pool{b}")(x)
    backbone = keras.Model(inputs, x, name=BACKBONE)
    if weights is not None:
        backbone.load_weights(weights)
    return _classifier(spec, backbone, input_size, num_classes, dropout=dropout, hidden=hidden)


# Std of FER2013 training pixels on the 0..255 scale (measured: 64.96); the caffe/VGGFace preprocessing
# only subtracts a mean, so this is the scale of what the first conv of vgg16/vggface sees.
PIXEL_STD_255 = 65.0


def he_init(model: keras.Model, input_std: float = 1.0) -> keras.Model:
    """Re-draw every Conv2D/Dense kernel of ``model`` from He-normal (biases stay 0); returns ``model``.

    Plain ReLU stacks without BatchNorm (VGG16, VGGFace) stay at the class prior when trained from
    random Glorot init (measured here: VGGFace at 48 px, 0.30 train accuracy after one epoch);
    He et al. (2015) initialisation is what makes them trainable from scratch. ``input_std`` is the
    std of the model's input: the first layer's variance is divided by its square so activations
    start at unit scale. Only used with weights=None: loaded weights overwrite every kernel anyway.
    """
    first = True
    for layer in model.layers:
        if isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense)):
            scale = 2.0 / (input_std ** 2 if first else 1.0)
            init = keras.initializers.VarianceScaling(scale, mode="fan_in", distribution="untruncated_normal")
            layer.kernel.assign(init(tuple(layer.kernel.shape), dtype=layer.kernel.dtype))
            first = False
    return model


# BatchNorm momentum for nets trained from scratch. MobileNetV2 ships with 0.999, tuned for fine-tuning
# ImageNet weights; from random init its moving statistics lag the fast-changing weights so badly that
# eval-mode predictions collapse to one class (measured here: val 0.223 after 6 epochs while train-mode
# accuracy was 0.50; re-estimating the statistics restored 0.46). Keras' own default, 0.99, keeps up.
SCRATCH_BN_MOMENTUM = 0.99


def scratch_batchnorm(model: keras.Model, momentum: float = SCRATCH_BN_MOMENTUM) -> keras.Model:
    """Cap every BatchNormalization layer's moving-average momentum at ``momentum``; returns ``model``."""
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization) and layer.momentum > momentum:
            layer.momentum = momentum
    return model


def _application(constructor: str, scratch_he_init: bool = False):
    """Factory for a keras.applications net with include_top=False; weights go to its constructor.

    scratch_he_init: with weights=None, re-initialise kernels with :func:`he_init` (nets without BatchNorm).
    """

    def factory(spec, num_classes, input_size, weights, dropout=0.5, hidden=0, **app_kw):
        ctor = getattr(keras.applications, constructor)
        try:
            backbone = ctor(include_top=False, weights=None if weights is None else str(weights),
                            input_shape=(input_size, input_size, 3), name=BACKBONE, **app_kw)
        except Exception as e:
            if weights != "imagenet":
                raise
            raise WeightsNotFoundError(
                f"ImageNet weights for {constructor} are not in the Keras cache ({keras_cache_dir() / 'models'}) and "
                f"could not be downloaded ({type(e).__name__}: {str(e).splitlines()[0][:160] if str(e) else ''}); "
                f"download the keras.applications no-top file into that folder, or pass weights=<path>") from e
        if weights is None and scratch_he_init:
            he_init(backbone, input_std=PIXEL_STD_255)
        if weights is None:
            scratch_batchnorm(backbone)
        return _classifier(spec, backbone, input_size, num_classes, dropout=dropout, hidden=hidden)

    factory.__name__ = f"_{constructor.lower()}"
    return factory


def _vggface(spec, num_classes, input_size, weights, dropout=0.5, hidden=0):
    """VGGFace conv part (conv1_1 ... pool5) + our head; weights "vggface" = the published no-top file."""
    if weights == "vggface":
        weights = vggface_weights_file(include_top=False)
    backbone = VGGFace(include_top=False, input_shape=(input_size, input_size, 3), weights=weights, name=BACKBONE)
    if weights is None:
        he_init(backbone, input_std=PIXEL_STD_255)
    return _classifier(spec, backbone, input_size, num_classes, dropout=dropout, hidden=hidden)


def _vggbn(spec, num_classes, input_size, weights, **kw):
    """Our own CNN: fer_hybrid.cnn.vggbn.build_vggbn (a path in ``weights`` loads into the whole model)."""
    from .vggbn import build_vggbn

    if input_size != spec.input_size:
        kw["input_size"] = input_size
    model = build_vggbn(num_classes=num_classes, **kw)
    if weights is not None:
        model.load_weights(weights)
    return model


_IMAGENET = {"imagenet": "keras.applications ImageNet no-top weights, downloaded into the Keras cache (~/.keras/models)"}
for _spec in (
    BackboneSpec("baseline", 48, 1, "scale01", {}, _baseline, description="small plain CNN from scratch, 32-64-128"),
    BackboneSpec("vggbn", 48, 1, "scale01", {}, _vggbn, description="our VGG-style CNN with BatchNorm (vggbn.py)"),
    BackboneSpec("mobilenetv2", 64, 3, "tf", _IMAGENET, _application("MobileNetV2"),
                 description="keras.applications MobileNetV2 (alpha 1.0)"),
    BackboneSpec("resnet50", 48, 3, "caffe", _IMAGENET, _application("ResNet50"),
                 description="keras.applications ResNet50"),
    BackboneSpec("vgg16", 48, 3, "caffe", _IMAGENET, _application("VGG16", scratch_he_init=True), description="keras.applications VGG16"),
    BackboneSpec("vggface", 48, 3, "vggface", {"vggface": WEIGHT_FILES[False][1]}, _vggface,
                 description="VGGFace VGG16 (rcmalli keras-vggface v2.0 weights)"),
):
    register_backbone(_spec)
