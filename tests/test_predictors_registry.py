"""Model registry names and errors, artifact problems, and face-crop conversion."""
import cv2
import numpy as np
import pytest

from fer_hybrid import predictors as pr
from fer_hybrid.predictors import ArtifactError, ArtifactMissingError

BUILTIN = {"baseline", "vggbn", "vggbn-ft", "vggbn-s7", "vggbn-s7-fp", "vggbn-long", "vggbn-s7-long", "vggbn-long-ft", "mobilenetv2", "resnet50", "vgg16", "vggface", "landmarks", "hybrid"}


def test_list_models_names():
    names = pr.list_models()
    assert BUILTIN <= set(names) and names == sorted(names)


def test_unknown_name_lists_valid_names():
    with pytest.raises(ValueError, match="unknown model 'nope'; valid models: .*vggface") as e:
        pr.load_predictor("nope")
    for n in BUILTIN:
        assert n in str(e.value)


def test_missing_artifact_names_training_command(tmp_path):
    with pytest.raises(ArtifactMissingError, match=r"train it with `python experiments/cnn_transfer.py "
                                                   r"--backbone vggbn`"):
        pr.load_predictor("vggbn", root=tmp_path)
    with pytest.raises(FileNotFoundError, match="python experiments/landmarks.py"):  # a FileNotFoundError too
        pr.load_predictor("landmarks", root=tmp_path)
    assert pr.list_models(available_only=True, root=tmp_path) == []
    with pytest.raises(ArtifactMissingError, match="no trained model found"):
        pr.default_model(root=tmp_path)


def test_models_dir_env(tmp_path, monkeypatch):
    monkeypatch.setenv("FER_HYBRID_MODELS", str(tmp_path))
    with pytest.raises(ArtifactMissingError, match=str(tmp_path)):
        pr.load_predictor("baseline")


def test_truncated_keras_file_raises_artifact_error(tmp_path):
    import keras

    model = keras.Sequential([keras.Input((48, 48, 1)), keras.layers.Flatten(), keras.layers.Dense(5)])
    good = tmp_path / "good.keras"
    model.save(good)
    data = good.read_bytes()
    (tmp_path / "baseline.keras").write_bytes(data[: len(data) // 2])
    assert pr.list_models(available_only=True, root=tmp_path) == ["baseline"]
    assert pr.default_model(root=tmp_path) == "baseline"
    with pytest.raises(ArtifactError, match="cannot load model file .*baseline.keras"):
        pr.load_predictor("baseline", root=tmp_path)
    (tmp_path / "vgg16.keras").write_bytes(b"")
    with pytest.raises(ArtifactError, match="vgg16.keras"):
        pr.load_predictor("vgg16", root=tmp_path)


# ------------------------------------------------------------------------------------------------
# to_gray_faces
# ------------------------------------------------------------------------------------------------
def test_gray_array_passthrough_and_resize():
    x = np.random.default_rng(0).integers(0, 256, (3, 48, 48), dtype=np.uint8)
    assert pr.to_gray_faces(x) is x
    y = pr.to_gray_faces(np.zeros((2, 96, 80), np.uint8) + 200)
    assert y.shape == (2, 48, 48) and y.dtype == np.uint8 and (y == 200).all()
    assert pr.to_gray_faces(x, size=(64, 32)).shape == (3, 64, 32)


def test_bgr_and_bgra_are_converted_as_bgr():
    blue = np.zeros((2, 60, 60, 3), np.uint8)
    blue[..., 0] = 255  # pure blue in BGR order
    g = pr.to_gray_faces(blue)
    assert g.shape == (2, 48, 48) and g.dtype == np.uint8
    assert (g == 29).all()  # 0.114 * 255; an RGB reading would give 76
    bgra = np.dstack([blue[0], np.full((60, 60, 1), 255, np.uint8)])
    assert (pr.to_gray_faces([bgra]) == 29).all()


def test_list_of_mixed_crops():
    crops = [np.full((30, 40), 100, np.uint8),                      # gray, other size
             np.full((100, 90, 3), 100, np.uint8),                  # BGR
             np.full((48, 48, 4), 100, np.uint8),                   # BGRA
             np.full((50, 50, 1), 100, np.uint8),                   # gray with a channel axis
             np.full((48, 48), 300.0)]                              # float out of range -> clipped
    out = pr.to_gray_faces(crops)
    assert out.shape == (5, 48, 48) and out.dtype == np.uint8
    assert (out[:4] == 100).all() and (out[4] == 255).all()
    assert pr.to_gray_faces([]).shape == (0, 48, 48)


def test_bad_crop_shape():
    with pytest.raises(ValueError, match="face 1 has shape"):
        pr.to_gray_faces([np.zeros((48, 48), np.uint8), np.zeros((0, 0), np.uint8)])
    with pytest.raises(ValueError, match="face 0"):
        pr.to_gray_faces([np.zeros(5, np.uint8)])


def test_matches_opencv_gray():
    bgr = np.random.default_rng(1).integers(0, 256, (48, 48, 3), dtype=np.uint8)
    np.testing.assert_array_equal(pr.to_gray_faces([bgr])[0], cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY))
