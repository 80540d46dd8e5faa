"""The registry (names from models/manifest.json), its errors, and the API input contract (to_gray_faces)."""
import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from fer_hybrid import predictors as pr
from fer_hybrid.artifacts import read_manifest
from fer_hybrid.predictors import ArtifactError, ArtifactMissingError

ROOT = Path(__file__).resolve().parents[1]
TINY = Path(__file__).parent / "data" / "tiny_cnn.keras"
BUILTIN = {"baseline", "vggbn", "vggbn-ft", "vggbn-s7", "vggbn-s7-fp", "vggbn-long", "vggbn-s7-long", "vggbn-long-ft",
           "mobilenetv2", "resnet50", "vgg16", "vggface", "landmarks", "hybrid"}


def test_list_models_names_come_from_the_manifest():
    names = pr.list_models()
    assert BUILTIN <= set(names) and names == sorted(names)
    assert set(names) == set(read_manifest(ROOT / "models")["models"])
    assert not hasattr(pr, "_CNN")  # no table of model names in code
    assert "vggbn" not in Path(pr.__file__).read_text()


def test_a_folder_with_its_own_manifest_registers_its_own_names(tmp_path):
    from fer_hybrid.safe_io import file_sha256

    shutil.copy(TINY, tmp_path / "tiny.keras")
    entry = {"kind": "cnn", "loader": "keras", "tta": "flip", "description": "random weights",
             "train_command": "python tests/data/make_tiny_model.py", "file": "tiny.keras",
             "sha256": file_sha256(tmp_path / "tiny.keras"), "metrics": {"test": {"accuracy": 0.25}}}
    (tmp_path / "manifest.json").write_text(json.dumps({"default": "mine", "models": {"mine": entry}}))
    assert pr.list_models(root=tmp_path) == ["mine"] and pr.default_model(tmp_path) == "mine"
    p = pr.load_predictor("mine", tmp_path)
    assert isinstance(p, pr.KerasPredictor) and p.tta == "flip" and p.name == "mine"
    x = np.random.default_rng(0).integers(0, 256, (4, 48, 48), dtype=np.uint8)
    from fer_hybrid.cnn.tta import predict_tta

    np.testing.assert_array_equal(p.predict_proba(x), predict_tta(p.predict_pixels, x, "flip"))
    with pytest.raises(ValueError, match="unknown model 'vggbn'; valid models: mine"):
        pr.load_predictor("vggbn", tmp_path)
    (row,) = pr.model_table(tmp_path)
    assert row == {"name": "mine", "kind": "cnn", "tta": "flip", "test_accuracy": 0.25, "ms_per_face": None,
                   "available": True, "default": True, "description": "random weights",
                   "train_command": "python tests/data/make_tiny_model.py"}


def test_without_a_default_the_best_on_val_is_chosen_never_the_best_on_test(tmp_path):
    from fer_hybrid import artifacts
    from fer_hybrid.safe_io import file_sha256

    models = {}
    for name, val, test in (("good-on-test", 0.60, 0.80), ("good-on-val", 0.70, 0.50)):
        shutil.copy(TINY, tmp_path / f"{name}.keras")
        models[name] = {"kind": "cnn", "loader": "keras", "file": f"{name}.keras",
                        "sha256": file_sha256(tmp_path / f"{name}.keras"),
                        "metrics": {"val": {"accuracy": val}, "test": {"accuracy": test}}}
    (tmp_path / "manifest.json").write_text(json.dumps({"models": models}))
    assert pr.default_model(tmp_path) == "good-on-val"
    artifacts.set_default("good-on-test", tmp_path)
    assert pr.default_model(tmp_path) == "good-on-test"
    with pytest.raises(ArtifactError, match="default"):
        artifacts.set_default("missing", tmp_path)
    assert read_manifest(tmp_path)["default"] == "good-on-test"  # a refused change leaves the file as it was


def test_model_table_of_the_shipped_folder():
    rows = {r["name"]: r for r in pr.model_table()}
    assert set(rows) == set(pr.list_models())
    manifest = read_manifest(ROOT / "models")["models"]
    assert rows["vggbn"]["test_accuracy"] == manifest["vggbn"]["metrics"]["test"]["accuracy"]
    assert rows["vggbn"]["tta"] == "flip" and rows["hybrid"]["kind"] == "hybrid"
    assert rows["resnet50"]["available"] is False and rows["resnet50"]["test_accuracy"] is None
    assert sum(r["default"] for r in rows.values()) == 1
    for name in ("vggbn", "landmarks", "hybrid"):
        report = json.loads((ROOT / manifest[name]["report"]).read_text())
        assert rows[name]["ms_per_face"] == report["ms_per_face"]


def test_unknown_name_lists_valid_names():
    with pytest.raises(ValueError, match="unknown model 'nope'; valid models: .*vggface") as e:
        pr.load_predictor("nope")
    for n in BUILTIN:
        assert n in str(e.value)


def test_missing_artifact_names_training_command(tmp_path):
    with pytest.raises(ArtifactMissingError, match=r"train it with `python experiments/cnn_transfer.py "
                                                   r"--backbone vggbn --epochs 35 --tta --ship`"):
        pr.load_predictor("vggbn", root=tmp_path)
    with pytest.raises(FileNotFoundError, match="python experiments/landmarks.py"):  # a FileNotFoundError too
        pr.load_predictor("landmarks", root=tmp_path)
    with pytest.raises(ArtifactMissingError, match="--backbone resnet50 .*--ship"):   # registered, never shipped
        pr.load_predictor("resnet50")
    assert pr.list_models(available_only=True, root=tmp_path) == []
    with pytest.raises(ArtifactMissingError, match="no trained model found"):
        pr.default_model(root=tmp_path)


def test_models_dir_env(tmp_path, monkeypatch):
    monkeypatch.setenv("FER_HYBRID_MODELS", str(tmp_path))
    with pytest.raises(ArtifactMissingError, match=str(tmp_path)):
        pr.load_predictor("baseline")


def test_truncated_keras_file_raises_artifact_error(tmp_path):
    data = TINY.read_bytes()
    (tmp_path / "baseline.keras").write_bytes(data[: len(data) // 2])
    assert pr.list_models(available_only=True, root=tmp_path) == ["baseline"]
    assert pr.default_model(root=tmp_path) == "baseline"
    with pytest.raises(ArtifactError, match="cannot load model file .*baseline.keras"):
        pr.load_predictor("baseline", root=tmp_path)
    (tmp_path / "vgg16.keras").write_bytes(b"")
    with pytest.raises(ArtifactError, match="vgg16.keras"):
        pr.load_predictor("vgg16", root=tmp_path)


def test_moved_names_are_the_core_objects():
    """predictors re-exports the core pieces that cnn/ and landmarks/ now import directly."""
    from fer_hybrid import crops, errors, keras_io

    assert pr.ArtifactError is errors.ArtifactError and pr.ArtifactMissingError is errors.ArtifactMissingError
    assert pr.to_gray_faces is crops.to_gray_faces and pr.load_keras_model is keras_io.load_keras_model
    assert pr.compiled_predict_fn is keras_io.compiled_predict_fn
    for path in ("cnn/train.py", "cnn/tta.py", "landmarks/predictor.py", "landmarks/models.py", "hybrid.py"):
        assert "predictors import" not in (ROOT / "fer_hybrid" / path).read_text(), path


# ------------------------------------------------------------------------------------------------
# the input contract: to_gray_faces and every predict_proba
# ------------------------------------------------------------------------------------------------
def test_gray_array_passthrough_and_resize():
    x = np.random.default_rng(0).integers(0, 256, (3, 48, 48), dtype=np.uint8)
    assert pr.to_gray_faces(x) is x
    y = pr.to_gray_faces(np.zeros((2, 96, 80), np.uint8) + 200)
    assert y.shape == (2, 48, 48) and y.dtype == np.uint8 and (y == 200).all()
    assert pr.to_gray_faces(x, size=(64, 32)).shape == (3, 64, 32)


@pytest.mark.parametrize("shape, rows", [
    ((48, 48), 1),            # one gray face
    ((100, 90), 1),
    ((48, 48, 1), 1),         # one gray face with a channel axis
    ((48, 48, 3), 1),         # one BGR face
    ((480, 640, 3), 1),       # a whole frame is one face, not 480 rows
    ((60, 60, 4), 1),         # one BGRA face
    ((5, 48, 48), 5),         # a uint8 batch (n, h, w)
    ((3, 48, 48), 3),         # n = 3 is still a batch: the last axis decides
    ((7, 30, 40, 3), 7),      # a BGR batch
    ((2, 48, 48, 1), 2),
    ((0, 48, 48), 0),
])
def test_shape_rule(shape, rows):
    out = pr.to_gray_faces(np.full(shape, 100, np.uint8))
    assert out.shape == (rows, 48, 48) and (out == 100).all()


def test_a_single_face_gives_one_row_from_predict_proba():
    import keras

    p = pr.KerasPredictor(keras.models.load_model(TINY, compile=False), "tiny")
    face = np.random.default_rng(0).integers(0, 256, (48, 48, 3), dtype=np.uint8)
    assert p.predict_proba(face).shape == (1, 5)
    np.testing.assert_array_equal(p.predict_proba(face), p.predict_proba([face]))
    assert p.predict_proba(np.zeros((480, 640, 3), np.uint8)).shape == (1, 5)
    with pytest.raises(ValueError, match=r"face 0 has float pixels in \[0, 1\]; pass uint8 0..255"):
        p.predict_proba(np.full((48, 48), 0.5, np.float32))


def test_bgr_and_bgra_are_converted_as_bgr():
    blue = np.zeros((2, 60, 60, 3), np.uint8)
    blue[..., 0] = 255  # pure blue in BGR order
    g = pr.to_gray_faces(blue)
    assert g.shape == (2, 48, 48) and g.dtype == np.uint8
    assert (g == 29).all()  # 0.114 * 255; an RGB reading would give 76
    bgra = np.dstack([blue[0], np.full((60, 60, 1), 255, np.uint8)])
    assert (pr.to_gray_faces([bgra]) == 29).all() and (pr.to_gray_faces(bgra) == 29).all()


def test_list_of_mixed_crops():
    crops = [np.full((30, 40), 100, np.uint8),                      # gray, other size
             np.full((100, 90, 3), 100, np.uint8),                  # BGR
             np.full((48, 48, 4), 100, np.uint8),                   # BGRA
             np.full((50, 50, 1), 100, np.uint8),                   # gray with a channel axis
             np.full((48, 48), 99.6),                               # float 0..255: rounded
             np.full((48, 48), 100 << 8, np.uint16)]                # 16 bit: scaled to 8
    out = pr.to_gray_faces(crops)
    assert out.shape == (6, 48, 48) and out.dtype == np.uint8 and (out == 100).all()
    assert pr.to_gray_faces([]).shape == (0, 48, 48)


@pytest.mark.parametrize("faces, message", [
    ([np.full((48, 48), 0.5)], r"face 0 has float pixels in \[0, 1\]; pass uint8 0..255, e.g. \(x \* 255\)"),
    (np.full((2, 48, 48), 1.0, np.float32), r"face 0 has float pixels in \[0, 1\]"),
    ([np.full((48, 48), 300.0)], r"face 0 has float pixels in \[300, 300\]; expected uint8 0..255"),
    ([np.full((48, 48), -1.0)], r"face 0 has float pixels in \[-1, -1\]"),
    ([np.full((8, 8), np.nan, np.float32)], "face 0 has non-finite pixel values"),
    ([np.zeros((48, 48), np.uint8), np.zeros((48, 48), np.int64)], r"face 1 has dtype int64; expected uint8 0..255"),
    ([np.zeros((48, 48), bool)], "face 0 has dtype bool"),
    ([np.zeros((48, 48), np.uint8), np.zeros((0, 0), np.uint8)], r"face 1 has shape \(0, 0\) \(an empty crop\)"),
    ([np.zeros((5, 0, 3), np.uint8)], r"face 0 has shape \(5, 0, 3\) \(an empty crop\)"),
    ([np.zeros(5, np.uint8)], r"face 0 has shape \(5,\) \(not a face\)"),
    ([np.zeros((48, 48, 2), np.uint8)], r"face 0 has shape \(48, 48, 2\)"),
    (np.zeros((2, 48, 48, 2), np.uint8), r"faces have shape \(2, 48, 48, 2\); expected a list of faces"),
    (np.zeros(5, np.uint8), r"faces have shape \(5,\)"),
    (np.zeros((1, 2, 48, 48, 1), np.uint8), "faces have shape"),
])
def test_refused_inputs_name_the_face_and_what_was_expected(faces, message):
    with pytest.raises(ValueError, match=message):
        pr.to_gray_faces(faces)


def test_matches_opencv_gray():
    bgr = np.random.default_rng(1).integers(0, 256, (48, 48, 3), dtype=np.uint8)
    np.testing.assert_array_equal(pr.to_gray_faces([bgr])[0], cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY))


def test_a_calibration_in_the_manifest_is_what_the_analyzer_applies(tmp_path):
    from fer_hybrid import Analyzer, artifacts
    from fer_hybrid.inference.temperature import scale_proba
    from fer_hybrid.safe_io import file_sha256

    face = Path(__file__).parent / "data" / "single_face.jpg"
    shutil.copy(TINY, tmp_path / "tiny.keras")
    entry = {"kind": "cnn", "loader": "keras", "file": "tiny.keras", "sha256": file_sha256(tmp_path / "tiny.keras")}
    (tmp_path / "manifest.json").write_text(json.dumps({"default": "tiny", "models": {"tiny": entry}}))
    raw = Analyzer("tiny", models_dir=tmp_path).analyze(face)[0].proba   # no calibration recorded
    cal = {"temperature": 3.0, "bias": [0.0, 0.5, 0.0, 0.0, -0.5], "report": "experiments/reports/x/report.json"}
    artifacts.set_calibration("tiny", cal, tmp_path)
    assert pr.load_predictor("tiny", tmp_path).calibration == cal
    calibrated = Analyzer("tiny", models_dir=tmp_path).analyze(face)[0].proba
    np.testing.assert_allclose(calibrated, scale_proba(raw[None], 3.0, np.array(cal["bias"]))[0], atol=1e-9)
    assert not np.allclose(calibrated, raw)
    np.testing.assert_allclose(Analyzer("tiny", models_dir=tmp_path, temperature=None).analyze(face)[0].proba, raw)
    with pytest.raises(ArtifactError, match=r"models.tiny.calibration.temperature"):
        artifacts.set_calibration("tiny", {"temperature": -1.0}, tmp_path)
    with pytest.raises(ValueError, match="temperature must be 'auto'"):
        Analyzer("tiny", models_dir=tmp_path, temperature="warm")
    artifacts.set_calibration("tiny", None, tmp_path)
    assert pr.load_predictor("tiny", tmp_path).calibration is None
