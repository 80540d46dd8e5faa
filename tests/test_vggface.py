"""VGGFace architecture (original layer names) and the loader for the published Keras-2 HDF5 weight files."""
from __future__ import annotations

import h5py
import numpy as np
import pytest

keras = pytest.importorskip("keras")

from fer_hybrid.cnn import vggface as vf  # noqa: E402
from fer_hybrid.cnn.backbones import BACKBONE, build_model  # noqa: E402

CONVS = [f"conv{b}_{c}" for b, n in enumerate((2, 2, 3, 3, 3), start=1) for c in range(1, n + 1)]
VGG16_CONV_PARAMS = 14_714_688  # the published no-top VGG16 / VGGFace convolutional part


def write_keras2_weights(model, path, rename=None, extra_layers=()):
    """Save like Keras 2 ``save_weights``: root attr layer_names; per layer a group whose attr
    weight_names names its datasets ("<layer>/kernel:0", "<layer>/bias:0")."""
    rename = rename or {}
    names = [layer.name for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
    names += list(extra_layers)
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = [n.encode("utf8") for n in names]
        f.attrs["backend"] = b"tensorflow"
        f.attrs["keras_version"] = b"2.2.4"
        for name in names:
            g = f.require_group(name)
            arrays = [] if name in extra_layers else [np.asarray(w) for w in model.get_layer(name).weights]
            arrays = rename.get(name, arrays)
            wnames = [f"{name}/{'kernel' if i == 0 else 'bias'}:0".encode("utf8") for i in range(len(arrays))]
            g.attrs["weight_names"] = wnames
            for wn, arr in zip(wnames, arrays):
                g.create_dataset(wn.decode("utf8"), data=arr)


def _pixels(n=2, size=32, seed=0):
    return np.random.default_rng(seed).uniform(-100, 150, (n, size, size, 3)).astype(np.float32)


@pytest.fixture(scope="module")
def top_model():
    """A small full VGGFace (32 px input, 3 identities) with random weights."""
    keras.utils.set_random_seed(0)
    return vf.VGGFace(include_top=True, input_shape=(32, 32, 3), classes=3)


def test_original_layer_names_and_parameter_count(top_model):
    names = [layer.name for layer in top_model.layers]
    for n in CONVS + [f"pool{i}" for i in range(1, 6)] + ["fc6", "fc7", "fc8"]:
        assert n in names
    assert top_model.get_layer("fc6").kernel.shape == (512, 4096)
    notop = vf.VGGFace(include_top=False, input_shape=(48, 48, 3))
    assert notop.count_params() == VGG16_CONV_PARAMS
    assert notop.output_shape == (None, 1, 1, 512)
    assert vf.VGGFace(include_top=False, input_shape=(64, 64, 3), pooling="avg").output_shape == (None, 512)


def test_bad_input_shape_is_rejected():
    with pytest.raises(ValueError, match=r"\(h, w, 3\)"):
        vf.VGGFace(include_top=False, input_shape=(48, 48, 1))


def test_full_file_round_trip_gives_equal_weights_and_outputs(top_model, tmp_path):
    path = tmp_path / "rcmalli_vggface_tf_vgg16.h5"
    write_keras2_weights(top_model, path, extra_layers=("fc6/relu", "fc7/relu", "fc8/softmax"))
    keras.utils.set_random_seed(1)
    fresh = vf.VGGFace(include_top=True, input_shape=(32, 32, 3), classes=3)
    assert not np.array_equal(np.asarray(fresh.get_layer("conv1_1").kernel),
                              np.asarray(top_model.get_layer("conv1_1").kernel))
    loaded = vf.load_vggface_weights(fresh, path)
    assert loaded == CONVS + ["fc6", "fc7", "fc8"]
    for a, b in zip(top_model.weights, fresh.weights):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    x = _pixels()
    np.testing.assert_array_equal(np.asarray(top_model(x)), np.asarray(fresh(x)))


def test_full_file_loads_into_a_notop_model_by_name(top_model, tmp_path):
    path = tmp_path / "full.h5"
    write_keras2_weights(top_model, path)
    notop = vf.VGGFace(include_top=False, input_shape=(32, 32, 3), weights=str(path))
    pool5 = keras.Model(top_model.input, top_model.get_layer("pool5").output)
    x = _pixels()
    np.testing.assert_allclose(np.asarray(notop(x)), np.asarray(pool5(x)), rtol=1e-6, atol=1e-5)


@pytest.fixture(scope="module")
def notop_file(tmp_path_factory):
    keras.utils.set_random_seed(2)
    model = vf.VGGFace(include_top=False, input_shape=(32, 32, 3))
    path = tmp_path_factory.mktemp("vggface") / vf.WEIGHT_FILES[False][0]
    write_keras2_weights(model, path)
    return model, path


def test_notop_file_into_a_top_model_names_the_missing_layers(notop_file):
    _, path = notop_file
    model = vf.VGGFace(include_top=True, input_shape=(32, 32, 3), classes=3)
    before = np.asarray(model.get_layer("conv1_1").kernel).copy()
    with pytest.raises(vf.WeightsMismatchError, match=r"no weights for layers fc6, fc7, fc8.*include_top=False"):
        vf.load_vggface_weights(model, path)
    np.testing.assert_array_equal(before, np.asarray(model.get_layer("conv1_1").kernel))  # untouched


def test_shape_mismatch_is_reported_per_layer(notop_file, tmp_path):
    model, _ = notop_file
    bad = tmp_path / "bad.h5"
    write_keras2_weights(model, bad, rename={"conv1_1": [np.zeros((3, 3, 1, 64), np.float32), np.zeros(64, np.float32)]})
    with pytest.raises(vf.WeightsMismatchError, match=r"conv1_1: file \[\(3, 3, 1, 64\), \(64,\)\] vs model "
                                                      r"\[\(3, 3, 3, 64\), \(64,\)\]"):
        vf.VGGFace(include_top=False, input_shape=(32, 32, 3), weights=bad)


def test_not_a_keras2_weight_file_is_rejected(tmp_path):
    txt = tmp_path / "notes.h5"
    txt.write_text("hello")
    with pytest.raises(vf.WeightsMismatchError, match="not an HDF5"):
        vf.read_keras2_weights(txt)
    k3 = tmp_path / "k3.weights.h5"
    vf.VGGFace(include_top=False, input_shape=(32, 32, 3)).save_weights(k3)
    with pytest.raises(vf.WeightsMismatchError, match="layer_names"):
        vf.read_keras2_weights(k3)


def test_missing_file_says_where_to_put_it(tmp_path):
    with pytest.raises(vf.WeightsNotFoundError, match=r"does not exist; put the published VGGFace file"):
        vf.load_vggface_weights(vf.VGGFace(include_top=False, input_shape=(32, 32, 3)), tmp_path / "nope.h5")


def test_vggface_weights_offline_name_the_url_and_the_cache_path(monkeypatch):
    def offline(*a, **k):
        raise Exception("URL fetch failure on https://github.com/...: None -- [Errno -3] name resolution")

    monkeypatch.setattr(keras.utils, "get_file", offline)
    with pytest.raises(vf.WeightsNotFoundError) as e:
        build_model("vggface", input_size=32, weights="vggface")
    msg = str(e.value)
    assert vf.WEIGHT_FILES[False][1] in msg
    assert str(vf.cached_weights_path(False)) in msg and "models/vggface/rcmalli_vggface_tf_notop_vgg16.h5" in msg
    assert "weights=<path" in msg


def test_build_model_uses_the_cached_published_file(notop_file, monkeypatch):
    source, path = notop_file
    calls = []

    def cached(fname, origin, cache_subdir):
        calls.append((fname, origin, cache_subdir))
        return str(path)

    monkeypatch.setattr(keras.utils, "get_file", cached)
    model = build_model("vggface", input_size=32, weights="vggface")
    assert calls == [("rcmalli_vggface_tf_notop_vgg16.h5", vf.WEIGHT_FILES[False][1], "models/vggface")]
    for a, b in zip(source.weights, model.get_layer(BACKBONE).weights):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    # and the same file by path
    by_path = build_model("vggface", input_size=32, weights=path)
    np.testing.assert_array_equal(np.asarray(by_path.get_layer(BACKBONE).get_layer("conv5_3").kernel),
                                  np.asarray(source.get_layer("conv5_3").kernel))
