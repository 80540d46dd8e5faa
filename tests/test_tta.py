"""Test-time augmentation: view geometry, averaging, the Keras wrapper and the experiment CLI (seconds)."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from fer_hybrid.cnn.tta import View, list_tta, policy_proba, predict_tta, tta_policy, tta_views, view_proba
from fer_hybrid.evaluation.tta_choice import choose_policy
from fer_hybrid.reports import REQUIRED_KEYS, read_report

ROOT = Path(__file__).resolve().parents[1]
EXPECTED_VIEWS = {"none": 1, "flip": 2, "flip-shift": 10, "flip-crop": 10, "flip-scale": 6, "flip-rotate": 6,
                  "flip-mix": 18}


@pytest.fixture(scope="module")
def faces() -> np.ndarray:
    """uint8 (7, 48, 48) random faces (deterministic)."""
    return np.random.default_rng(0).integers(0, 256, size=(7, 48, 48), dtype=np.uint8)


def fake_predict(v: np.ndarray) -> np.ndarray:
    """Deterministic (m, 5) 'probabilities' from region means of float (m, 48, 48[, 1]) images."""
    v = v.reshape(len(v), 48, 48).astype(np.float64)
    feats = np.stack([v[:, :24, :24].mean((1, 2)), v[:, :24, 24:].mean((1, 2)), v[:, 24:, :24].mean((1, 2)),
                      v[:, 24:, 24:].mean((1, 2)), v[:, 20:28, 20:28].mean((1, 2))], axis=1) / 64.0
    e = np.exp(feats - feats.max(axis=1, keepdims=True))
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)


def test_registry_lists_the_policies_with_their_view_counts():
    assert set(list_tta()) == set(EXPECTED_VIEWS)
    assert {p: len(tta_policy(p)) for p in list_tta()} == EXPECTED_VIEWS


@pytest.mark.parametrize("policy", sorted(EXPECTED_VIEWS))
def test_view_shapes_per_policy_with_and_without_channel(faces, policy):
    v = tta_views(faces, policy)
    assert v.shape == (EXPECTED_VIEWS[policy], 7, 48, 48) and v.dtype == np.float32
    assert tta_views(faces[..., None], policy).shape == (EXPECTED_VIEWS[policy], 7, 48, 48, 1)
    assert v.min() >= 0 and v.max() <= 255
    if tta_policy(policy)[0].is_identity_warp:  # all but ten-crop start with the face itself
        np.testing.assert_array_equal(v[0], faces)


def test_flip_views_are_the_face_and_its_mirror(faces):
    v = tta_views(faces, "flip")
    np.testing.assert_array_equal(v[0], faces)
    np.testing.assert_array_equal(v[1], np.flip(faces, axis=2))


def test_every_flip_policy_mirrors_its_first_half(faces):
    """Views k and k + v/2 of a flip-* policy are the same warp of the face and of its mirror."""
    for policy in (p for p in list_tta() if p.startswith("flip")):
        views = tta_policy(policy)
        half = len(views) // 2
        assert [v.flip for v in views] == [False] * half + [True] * half
        a = tta_views(np.flip(faces, axis=2), views[:half])
        np.testing.assert_array_equal(a, tta_views(faces, views[half:]))


def test_integer_shift_moves_pixels_exactly_with_reflected_border(faces):
    v = tta_views(faces, [View(offset=(2.0, 0.0))])[0]  # the point 2 px right of centre lands on the centre
    np.testing.assert_array_equal(v[:, :, :46], faces[:, :, 2:])
    np.testing.assert_array_equal(v[:, :, 46], faces[:, :, 47])  # BORDER_REFLECT: ... d c | c d ...
    np.testing.assert_array_equal(v[:, :, 47], faces[:, :, 46])


def test_corner_crop_view_matches_crop_and_resize(faces):
    import cv2

    smooth = np.stack([cv2.GaussianBlur(f, (0, 0), 1.5) for f in faces])  # face-like, not pixel noise
    v = tta_views(smooth, [View(zoom=48 / 44, offset=(-2.0, -2.0))])[0]
    ref = np.stack([cv2.resize(f[:44, :44].astype(np.float32), (48, 48), interpolation=cv2.INTER_LINEAR)
                    for f in smooth])
    err = np.abs(v - ref)  # cv2's warp samples on a 1/32-pixel grid, resize exactly
    assert err.mean() < 0.2 and err.max() < 2.0


def test_none_equals_plain_prediction(faces):
    np.testing.assert_allclose(predict_tta(fake_predict, faces, "none"), fake_predict(faces.astype(np.float32)),
                               rtol=0, atol=1e-7)


@pytest.mark.parametrize("policy", ["flip", "flip-shift", "flip-mix"])
def test_prediction_is_the_mean_over_views_in_any_batch_size(faces, policy):
    views = tta_views(faces, policy)
    expected = np.mean([fake_predict(v) for v in views], axis=0)
    for batch_size in (3, 256):
        got = predict_tta(fake_predict, faces, policy, batch_size=batch_size)
        assert got.shape == (7, 5) and got.dtype == np.float32
        np.testing.assert_allclose(got, expected, atol=1e-6)
        np.testing.assert_allclose(got.sum(axis=1), 1.0, atol=1e-6)


def test_predict_fn_never_gets_more_than_batch_size_images(faces):
    sizes = []

    def spy(v):
        sizes.append(len(v))
        return fake_predict(v)

    p = view_proba(spy, faces, "flip-mix", batch_size=4)
    assert p.shape == (18, 7, 5) and max(sizes) <= 4 and sum(sizes) == 18 * 7
    np.testing.assert_allclose(p.mean(axis=0), predict_tta(fake_predict, faces, "flip-mix"), atol=1e-6)


def test_policy_proba_equals_predict_tta_and_predicts_each_view_once(faces):
    calls = []

    def spy(v):
        calls.append(len(v))
        return fake_predict(v)

    got = policy_proba(spy, faces, list_tta(), batch_size=1000)
    distinct = len({v for p in list_tta() for v in tta_policy(p)})
    assert sum(calls) == distinct * len(faces) and distinct < sum(EXPECTED_VIEWS.values())
    for p in list_tta():
        np.testing.assert_allclose(got[p], predict_tta(fake_predict, faces, p), atol=1e-6)


def test_flip_average_is_mirror_invariant(faces):
    a = predict_tta(fake_predict, faces, "flip")
    np.testing.assert_allclose(a, predict_tta(fake_predict, np.flip(faces, axis=2), "flip"), atol=1e-6)
    assert not np.allclose(fake_predict(faces), fake_predict(np.flip(faces, axis=2)))


def test_known_answer_on_constant_predictor():
    x = np.zeros((2, 48, 48), np.uint8)
    x[:, :, :24] = 255  # bright left half
    left = lambda v: np.stack([v.reshape(len(v), 48, 48)[:, :, :24].mean((1, 2)) / 255.0,  # noqa: E731
                               1 - v.reshape(len(v), 48, 48)[:, :, :24].mean((1, 2)) / 255.0], axis=1)
    np.testing.assert_allclose(predict_tta(left, x, "none"), [[1, 0], [1, 0]], atol=1e-6)
    np.testing.assert_allclose(predict_tta(left, x, "flip"), [[0.5, 0.5], [0.5, 0.5]], atol=1e-6)


def test_empty_input_gives_empty_probabilities():
    assert predict_tta(fake_predict, np.zeros((0, 48, 48), np.uint8), "flip").shape == (0, 5)


def test_unknown_policy_raises_listing_names(faces):
    with pytest.raises(ValueError, match="unknown TTA policy 'mirror'; valid policies: ") as e:
        tta_views(faces, "mirror")
    assert all(name in str(e.value) for name in list_tta())
    with pytest.raises(ValueError, match="valid policies"):
        predict_tta(fake_predict, faces, "mirror")
    with pytest.raises(ValueError, match="expected \\(n, h, w\\)"):
        tta_views(faces[0], "flip")


# ---------------------------------------------------------------------------------------------
# Keras wrapper and the experiment script, with a tiny model
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_model():
    import keras

    keras.utils.set_random_seed(0)
    inp = keras.Input((48, 48, 1))
    h = keras.layers.Rescaling(1 / 255.0)(inp)
    h = keras.layers.Conv2D(2, 5, strides=4, activation="relu")(h)
    h = keras.layers.Flatten()(h)
    return keras.Model(inp, keras.layers.Dense(5, activation="softmax")(h))


def test_tta_predictor_matches_the_existing_paths(tiny_model, faces):
    from fer_hybrid.cnn.train import predict_proba
    from fer_hybrid.cnn.tta import TTAPredictor
    from fer_hybrid.predictors import KerasPredictor, Predictor

    none = TTAPredictor(tiny_model, "tiny", "none")
    assert isinstance(none, Predictor)
    np.testing.assert_allclose(none.predict_proba(faces), KerasPredictor(tiny_model, "tiny").predict_proba(faces),
                               atol=1e-6)
    np.testing.assert_allclose(TTAPredictor(tiny_model, "tiny", "flip").predict_proba(faces),
                               predict_proba(tiny_model, faces, tta=True), atol=1e-6)
    p = TTAPredictor(tiny_model, "tiny", "flip-crop").predict_proba(list(faces[:2]))  # a list of crops works too
    assert p.shape == (2, 5)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-5)


def _cnn_tta_module():
    spec = importlib.util.spec_from_file_location("cnn_tta", ROOT / "experiments" / "cnn_tta.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_script_writes_a_report_choosing_on_val(tiny_model, sample_tar, tmp_path, capsys):
    mod = _cnn_tta_module()
    models = tmp_path / "models"
    models.mkdir()
    tiny_model.save(models / "baseline.keras")
    code = mod.main(["--model", "baseline", "--data", str(sample_tar), "--models", str(models),
                     "--reports", str(tmp_path / "reports"), "--policies", "none", "flip", "flip-shift",
                     "--no-timing", "--train"])
    assert code == 0
    out = tmp_path / "reports" / "baseline-tta"
    report = read_report(out / "report.json")
    assert all(k.split(".")[0] in report for k in REQUIRED_KEYS)
    assert report["name"] == "baseline-tta" and report["kind"] == "baseline" and report["ms_per_face"] is None
    table = {r["policy"]: r["accuracy"] for r in report["tta_val"]}
    assert set(table) == {"none", "flip", "flip-shift"}
    assert report["tta"] == choose_policy(report["tta_val"])["policy"]
    assert table[report["tta"]] == max(table.values()) == report["metrics"]["val"]["accuracy"]
    assert report["metrics"]["test"]["n"] == 10 and report["metrics"]["train"]["n"] == 25
    assert {"confusion.png", "val_policies.png"} <= {p.name for p in out.iterdir()}
    assert report["metrics"]["train"]["accuracy"] is not None
    assert "chosen by val accuracy" in (out / "report.md").read_text()
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["policy"] == report["tta"]


def test_script_without_train_flag_leaves_train_scores_null(tiny_model, sample_tar, tmp_path):
    models = tmp_path / "models"
    models.mkdir()
    tiny_model.save(models / "vggbn.keras")
    assert _cnn_tta_module().main(["--model", "vggbn", "--data", str(sample_tar), "--models", str(models),
                                   "--reports", str(tmp_path), "--policies", "flip", "--no-timing"]) == 0
    report = read_report(tmp_path / "vggbn-tta" / "report.json")
    assert report["kind"] == "cnn" and report["tta"] == "flip" and report["delta_train_val"] is None
    assert report["metrics"]["train"]["accuracy"] is None and report["metrics"]["train"]["n"] == 25
    assert report["metrics"]["test"]["accuracy"] is not None


@pytest.mark.parametrize("argv, message", [
    (["--model", "nope"], "unknown model 'nope'; valid models: "),
    (["--model", "landmarks"], "is a landmarks model; TTA applies to the Keras CNNs"),
    (["--model", "vggbn", "--policies", "mirror"], "unknown TTA policy 'mirror'; valid policies: "),
    (["--model", "vggbn", "--batch-size", "0"], "--batch-size must be >= 1, got 0"),
])
def test_script_bad_input_is_one_line_and_exit_2(argv, message, tmp_path, capsys):
    assert _cnn_tta_module().main(argv + ["--models", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1


def test_missing_artifact_names_the_training_command(tmp_path, capsys):
    assert _cnn_tta_module().main(["--model", "vggbn", "--models", str(tmp_path)]) == 2
    assert "python experiments/cnn_transfer.py --backbone vggbn" in capsys.readouterr().err

