"""Backbone registry: every entry builds the (48, 48, 1) -> softmax (n, 5) contract, weights, save/load."""
from __future__ import annotations

import zipfile

import h5py
import numpy as np
import pytest

keras = pytest.importorskip("keras")

from fer_hybrid.cnn import layers as L  # noqa: E402
from fer_hybrid.cnn.backbones import (  # noqa: E402
    BACKBONE, WeightsNotFoundError, backbone_spec, build_model, list_backbones, save_model)

NAMES = ["baseline", "mobilenetv2", "resnet50", "vgg16", "vggbn", "vggface"]
SMALL = {"baseline": None, "vggbn": None}  # others: 32 px, the keras.applications minimum


def _pixels(n=4, seed=0):
    return np.random.default_rng(seed).uniform(0, 255, (n, 48, 48, 1)).astype(np.float32)


def _build(name, **kw):
    if name == "vggbn":
        pytest.importorskip("fer_hybrid.cnn.vggbn")
    keras.utils.set_random_seed(0)
    return build_model(name, input_size=SMALL.get(name, 32), **kw)


def test_list_backbones_has_the_study_entries_and_ours():
    assert list_backbones() == sorted(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_every_entry_maps_48px_gray_to_softmax_rows(name):
    model = _build(name)
    assert tuple(model.input_shape) == (None, 48, 48, 1)
    proba = np.asarray(model(_pixels(3), training=False))
    assert proba.shape == (3, 5) and proba.dtype == np.float32
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-5)
    assert (proba >= 0).all()


def test_num_classes_and_input_size_are_honoured():
    model = build_model("vggface", num_classes=7, input_size=40)
    assert model.output_shape == (None, 7)
    assert model.get_layer(BACKBONE).input_shape == (None, 40, 40, 3)
    assert model.get_layer("resize_40") is not None


def test_specs_declare_size_channels_preprocessing_and_weight_sources():
    assert (backbone_spec("baseline").input_size, backbone_spec("baseline").channels) == (48, 1)
    assert backbone_spec("vggbn").input_size == 48
    vf = backbone_spec("vggface")
    assert (vf.channels, vf.preprocessing) == (3, "vggface")
    assert "rcmalli_vggface_tf_notop_vgg16.h5" in vf.weight_sources["vggface"]
    for name in ("vgg16", "resnet50"):
        assert backbone_spec(name).preprocessing == "caffe" and "imagenet" in backbone_spec(name).weight_sources
    assert backbone_spec("mobilenetv2").preprocessing == "tf"
    for name in NAMES:
        assert backbone_spec(name).input_size >= 32


def test_unknown_name_lists_the_valid_names():
    with pytest.raises(ValueError, match="unknown backbone 'alexnet'") as e:
        build_model("alexnet")
    for name in NAMES:
        assert name in str(e.value)


@pytest.mark.parametrize("name, weights, match", [
    ("vggface", "imagenet", r"accepted: None, 'vggface', a path"),
    ("vgg16", "vggface", r"accepted: None, 'imagenet', a path"),
    ("baseline", "imagenet", r"accepted: None, a path"),
    ("mobilenetv2", "missing/weights.h5", r"no such file"),
    ("mobilenetv2", 3, r"invalid weights 3"),
])
def test_invalid_weights_raise_valueerror_listing_accepted_values(name, weights, match):
    with pytest.raises(ValueError, match=match):
        build_model(name, input_size=32, weights=weights)


def test_too_small_input_size_is_rejected():
    with pytest.raises(ValueError, match=">= 32"):
        build_model("mobilenetv2", input_size=24)


@pytest.mark.filterwarnings("ignore::UserWarning")  # MobileNetV2: 32 px is not an ImageNet size
def test_imagenet_offline_says_where_the_file_goes(monkeypatch):
    from keras.src.utils import file_utils

    def offline(*a, **k):
        raise Exception("URL fetch failure on https://example: None -- no network")

    monkeypatch.setattr(file_utils, "get_file", offline)
    with pytest.raises(WeightsNotFoundError, match=r"models.*weights=<path>"):
        build_model("mobilenetv2", input_size=32, weights="imagenet")


@pytest.mark.parametrize("prep, expected", [
    ("vggface", lambda v: v - np.array(L.VGGFACE_BGR_MEANS)),
    ("caffe", lambda v: v - np.array(L.CAFFE_BGR_MEANS)),
    ("tf", lambda v: v / 127.5 - 1.0),
    ("scale01", lambda v: v / 255.0),
])
def test_input_pipeline_known_answers(prep, expected):
    inp = L.pixels_input()
    channels = 1 if prep == "scale01" else 3
    model = keras.Model(inp, L.input_pipeline(inp, 48, channels, prep))
    x = np.full((1, 48, 48, 1), 100.0, np.float32)
    out = np.asarray(model(x))
    assert out.shape == (1, 48, 48, channels)
    want = expected(np.full(channels, 100.0))
    np.testing.assert_allclose(out[0, 5, 7], want, rtol=1e-6, atol=1e-4)


def test_input_pipeline_resizes_and_rejects_bad_requests():
    inp = L.pixels_input()
    assert keras.Model(inp, L.input_pipeline(inp, 64, 3, "tf")).output_shape == (None, 64, 64, 3)
    with pytest.raises(ValueError, match="needs 3 channels"):
        L.input_pipeline(inp, 48, 1, "caffe")
    with pytest.raises(ValueError, match="unknown preprocessing"):
        L.input_pipeline(inp, 48, 3, "zca")


def test_batch_predictions_equal_one_by_one():
    for name in ("baseline", "mobilenetv2"):
        model = _build(name)
        x = _pixels(5, seed=1)
        batch = np.asarray(model(x, training=False))
        single = np.concatenate([np.asarray(model(x[i:i + 1], training=False)) for i in range(len(x))])
        np.testing.assert_allclose(batch, single, atol=1e-5)


def _train_one_step(model):
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.train_on_batch(_pixels(4), np.array([0, 1, 2, 3]))
    return model


def test_keras_round_trip_gives_identical_predictions_without_optimizer_state(tmp_path):
    from fer_hybrid.predictors import KerasPredictor, load_keras_model

    model = _train_one_step(_build("baseline", hidden=16))
    path = save_model(model, tmp_path / "baseline.keras")
    assert path.exists() and not list(tmp_path.glob(".*tmp*"))
    with zipfile.ZipFile(path) as z, z.open("model.weights.h5") as f, h5py.File(f) as h:
        assert "optimizer" not in h
    loaded = load_keras_model(path)
    x = _pixels(6, seed=2)
    np.testing.assert_array_equal(np.asarray(model(x, training=False)), np.asarray(loaded(x, training=False)))
    faces = x[..., 0].astype(np.uint8)
    np.testing.assert_allclose(KerasPredictor(loaded, "baseline").predict_proba(faces),
                               np.asarray(model(faces[..., None].astype(np.float32), training=False)), atol=1e-6)


def test_keras_round_trip_of_the_pretrained_input_pipeline(tmp_path):
    """Resizing + gray->3 + Normalization (BGR means) layers serialise and reload without custom objects."""
    from fer_hybrid.predictors import load_keras_model

    inp = L.pixels_input()
    x = L.input_pipeline(inp, 32, 3, "vggface")
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(4, 3)(x))
    model = keras.Model(inp, keras.layers.Dense(5, activation="softmax")(x))
    save_model(model, tmp_path / "m.keras")
    loaded = load_keras_model(tmp_path / "m.keras")
    px = _pixels(3)
    np.testing.assert_array_equal(np.asarray(model(px)), np.asarray(loaded(px)))


@pytest.mark.parametrize("suffix", [".weights.h5", ".h5"])
def test_local_weights_file_round_trip_for_a_keras_application(tmp_path, suffix):
    source = _build("mobilenetv2")
    path = tmp_path / f"mobilenetv2_notop{suffix}"
    if suffix == ".h5":  # a Keras-2 style legacy file, like the keras.applications downloads
        from keras.src.legacy.saving import legacy_h5_format

        with h5py.File(path, "w") as f:
            legacy_h5_format.save_weights_to_hdf5_group(f, source.get_layer(BACKBONE))
    else:
        source.get_layer(BACKBONE).save_weights(path)
    keras.utils.set_random_seed(1)
    rebuilt = build_model("mobilenetv2", input_size=32, weights=str(path))
    for a, b in zip(source.get_layer(BACKBONE).weights, rebuilt.get_layer(BACKBONE).weights):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    feats = [keras.Model(m.input, m.get_layer("gap").output)(_pixels(2)) for m in (source, rebuilt)]
    np.testing.assert_allclose(np.asarray(feats[0]), np.asarray(feats[1]), atol=1e-6)


def test_baseline_accepts_a_local_backbone_weights_file(tmp_path):
    source = _build("baseline")
    path = tmp_path / "baseline_backbone.weights.h5"
    source.get_layer(BACKBONE).save_weights(path)
    rebuilt = build_model("baseline", weights=path)
    np.testing.assert_array_equal(np.asarray(source.get_layer(BACKBONE).weights[0]),
                                  np.asarray(rebuilt.get_layer(BACKBONE).weights[0]))


@pytest.mark.parametrize("name", ["vgg16", "vggface"])
def test_plain_vgg_nets_from_scratch_get_he_init_scaled_to_the_pixel_range(name):
    """Without BatchNorm these nets only train from scratch with He init (Glorot stayed at the prior)."""
    from fer_hybrid.cnn.backbones import PIXEL_STD_255
    model = _build(name)
    backbone = model.get_layer(BACKBONE)
    convs = [layer for layer in backbone.layers if isinstance(layer, keras.layers.Conv2D)]
    first, deep = np.asarray(convs[0].kernel), np.asarray(convs[-1].kernel)
    assert first.std() == pytest.approx(np.sqrt(2 / (9 * 3)) / PIXEL_STD_255, rel=0.15)
    assert deep.std() == pytest.approx(np.sqrt(2 / (9 * 512)), rel=0.05)
    # activations start at unit scale, so the softmax is not saturated at init
    proba = np.asarray(model(_pixels(8), training=False))
    assert proba.max() < 0.99



def test_from_scratch_batchnorm_momentum_is_capped_and_saved(tmp_path):
    from fer_hybrid.cnn.backbones import SCRATCH_BN_MOMENTUM
    model = _build("mobilenetv2")
    bns = [la for la in model.get_layer(BACKBONE).layers if isinstance(la, keras.layers.BatchNormalization)]
    assert bns and {la.momentum for la in bns} == {SCRATCH_BN_MOMENTUM}
    # the cap survives a .keras round trip (it is part of each layer's config)
    path = save_model(model, tmp_path / "m.keras")
    from fer_hybrid.predictors import load_keras_model
    again = load_keras_model(path)
    assert {la.momentum for la in again.get_layer(BACKBONE).layers
            if isinstance(la, keras.layers.BatchNormalization)} == {SCRATCH_BN_MOMENTUM}
