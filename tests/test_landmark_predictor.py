"""LandmarkPredictor on the FER2013 fixture: points inside the image, NaN rows, frame API, registry."""
from __future__ import annotations

import json

import numpy as np
import pytest

from fer_hybrid.labels import STUDY_EMOTIONS
from fer_hybrid.landmarks.extract import extract, landmarks_batch, landmarks_one
from fer_hybrid.landmarks.features import LandmarkFeatures
from fer_hybrid.landmarks.models import LandmarkEnsemble, make_member
from fer_hybrid.landmarks.appearance import FaceFeatures, LandmarkAppearance, mirror_faces
from fer_hybrid.landmarks.predictor import (LandmarkPredictor, load_landmark_predictor, model_files,
                                            save_landmark_model)
from fer_hybrid.predictors import ArtifactError


@pytest.fixture(scope="module")
def tiny_predictor(sample_data, tmp_path_factory):
    """A tiny ensemble trained on the fixture's train landmarks, saved and re-loaded through the loader."""
    feats = LandmarkFeatures().fit(np.zeros((1, 68, 2)))
    X = feats.transform(landmarks_batch(sample_data.train.x))
    ens = LandmarkEnsemble({"xgboost": make_member("xgboost", {"n_estimators": 5, "max_depth": 2, "max_bin": 16},
                                                   n_jobs=1),
                            "logreg": make_member("logreg", {"C": 0.1})}, {"xgboost": 0.5, "logreg": 0.5},
                           feats, n_jobs=1).fit(X, sample_data.train.y)
    path = ens.save(tmp_path_factory.mktemp("models") / "landmarks")
    return ens, path


@pytest.fixture(scope="module")
def tiny_appearance_predictor(sample_data, tmp_path_factory):
    """A tiny ensemble on geometry + HOG-at-the-landmarks (PCA 6), with mirror TTA, saved by save_landmark_model."""
    x = sample_data.train.x
    pts = landmarks_batch(x)
    app = LandmarkAppearance("hog", "core", pca=6).fit(x, pts)
    feats = FaceFeatures(LandmarkFeatures().fit(pts), app)
    ens = LandmarkEnsemble({"xgboost": make_member("xgboost", {"n_estimators": 5, "max_depth": 2, "max_bin": 16},
                                                   n_jobs=1),
                            "logreg": make_member("logreg", {"C": 0.1})}, {"xgboost": 0.5, "logreg": 0.5},
                           feats.geometry, n_jobs=1, tta_mirror=True).fit(feats.transform(x, pts), sample_data.train.y)
    path = save_landmark_model(ens, tmp_path_factory.mktemp("models") / "landmarks", app, extra={"box_scale": 1.0})
    return ens, path, feats


def test_points_are_inside_fixture_images(sample_data):
    x = sample_data.test.x
    pts = landmarks_batch(x)
    assert pts.shape == (len(x), 68, 2) and pts.dtype == np.float32
    assert np.isfinite(pts).all()
    # brows, eyes, nose and mouth (points 17..67) lie inside the 48x48 image; dlib extrapolates the jaw
    # line, which FER2013's tight crops often cut, so points 0..16 may lie up to a few pixels outside
    inner = pts[:, 17:]
    assert (inner >= -0.5).all() and (inner <= 47.5).all()
    assert (pts >= -0.15 * 48).all() and (pts <= 1.15 * 48).all()
    # the face's structure: eyes above the mouth, subject's right eye on the image left
    assert (pts[:, 36:48, 1].mean(1) < pts[:, 48:68, 1].mean(1)).all()
    assert (pts[:, 36:42, 0].mean(1) < pts[:, 42:48, 0].mean(1)).all()


def test_parallel_extraction_equals_serial(sample_data):
    x = sample_data.val.x
    np.testing.assert_array_equal(extract(x, n_jobs=2, chunk=4, progress=False), landmarks_batch(x))


def test_unknown_method_raises(sample_data):
    with pytest.raises(ValueError, match="valid: fixed, fixed-mirror, hog"):
        landmarks_one(sample_data.test.x[0], method="cnn")


def test_hog_method_gives_nan_without_a_face():
    pts = landmarks_one(np.full((48, 48), 128, np.uint8), method="hog")
    assert pts.shape == (68, 2) and np.isnan(pts).all()


def test_predictor_contract_and_round_trip(tiny_predictor, sample_data):
    ens, path = tiny_predictor
    p = load_landmark_predictor(path, "landmarks")
    assert p.classes == STUDY_EMOTIONS and p.name == "landmarks"
    x = sample_data.test.x
    proba = p.predict_proba(x)
    assert proba.shape == (len(x), 5) and proba.dtype == np.float32
    np.testing.assert_allclose(proba.sum(1), 1, atol=1e-5)
    # identical to the in-memory ensemble it was saved from
    np.testing.assert_array_equal(proba, ens.predict_proba_points(landmarks_batch(x)).astype(np.float32))
    assert p.predict_proba(x[:0]).shape == (0, 5)


def test_crops_of_any_size_and_colour(tiny_predictor, sample_data):
    import cv2

    p = load_landmark_predictor(tiny_predictor[1], "landmarks")
    face = sample_data.test.x[0]
    big = cv2.resize(face, (96, 120))
    bgr = cv2.cvtColor(big, cv2.COLOR_GRAY2BGR)
    proba, pts = p.predict([face, big, bgr])
    np.testing.assert_array_equal(proba[1], proba[2])
    assert pts.shape == (3, 68, 2)
    assert (pts[1, 17:] >= 0).all() and (pts[1, 17:, 0] <= 96).all() and (pts[1, 17:, 1] <= 120).all()
    # points of the resized crop are the 48 px points scaled to the crop
    np.testing.assert_allclose(pts[1], pts[2])
    np.testing.assert_allclose(p.landmarks([face])[0], landmarks_one(face))


def test_frame_with_boxes_maps_points_to_frame(tiny_predictor, sample_data):
    p = load_landmark_predictor(tiny_predictor[1], "landmarks")
    face = sample_data.test.x[1]
    frame = np.zeros((200, 300), np.uint8)
    frame[50:98, 100:148] = face
    boxes = np.array([[100, 50, 147, 97], [400, 400, 450, 450]])   # second box lies outside the frame
    proba, pts = p.predict_frame(frame, boxes)
    assert proba.shape == (2, 5) and pts.shape == (2, 68, 2)
    np.testing.assert_allclose(proba[0], p.predict_proba(face[None])[0], atol=1e-6)
    np.testing.assert_allclose(pts[0], landmarks_one(face) + [100, 50], atol=1e-4)
    assert np.isnan(proba[1]).all() and np.isnan(pts[1]).all()
    np.testing.assert_array_equal(p.predict_proba_frame(frame, boxes[:1]), proba[:1])
    assert p.predict_proba_frame(frame, np.zeros((0, 4))).shape == (0, 5)


def test_no_landmarks_gives_nan_probabilities(tiny_predictor, tiny_appearance_predictor):
    for pred in (LandmarkPredictor(tiny_predictor[0]), load_landmark_predictor(tiny_appearance_predictor[1])):
        proba = pred.predict_proba_points(np.zeros((2, 48, 48), np.uint8), np.full((2, 68, 2), np.nan, np.float32))
        assert proba.shape == (2, 5) and np.isnan(proba).all()


def test_loader_raises_artifact_error_for_damaged_descriptor(tmp_path):
    bad = tmp_path / "ensemble.json"
    bad.write_text(json.dumps({"format": "something else"}))
    with pytest.raises(ArtifactError, match="not a"):
        load_landmark_predictor(bad, "landmarks")


def test_registry_loads_the_landmarks_name(tiny_predictor, sample_data, monkeypatch):
    from fer_hybrid.predictors import load_predictor

    root = tiny_predictor[1].parent.parent
    p = load_predictor("landmarks", root=root)
    assert p.predict_proba(sample_data.test.x[:3]).shape == (3, 5)


@pytest.mark.slow
def test_shipped_ensemble_reproduces_reported_test_accuracy(full_data_path):
    """The registry's ``landmarks`` model, re-run from test images, matches its report within 0.5 points."""
    from pathlib import Path

    from fer_hybrid.artifacts import models_dir
    from fer_hybrid.data import load_fer2013
    from fer_hybrid.evaluate import metrics_from_proba
    from fer_hybrid.predictors import load_predictor
    from fer_hybrid.reports import read_report

    from fer_hybrid.artifacts import read_manifest

    entry = read_manifest(models_dir()).get("models", {}).get("landmarks")
    report_path = Path(__file__).resolve().parents[1] / (entry or {}).get("report", "missing")
    if not (models_dir() / "landmarks" / "ensemble.json").exists() or not report_path.exists():
        pytest.skip("no shipped landmark ensemble; run python experiments/landmarks.py --ship")
    reported = read_report(report_path)["metrics"]["test"]
    data = load_fer2013(full_data_path)
    p = load_predictor("landmarks")
    m = metrics_from_proba(data.test.y, p.predict_proba(data.test.x), data.classes)
    assert m["n"] == reported["n"]
    assert abs(m["accuracy"] - reported["accuracy"]) <= 0.005


def test_landmarks_of_flipped_images_match_mirrored_points(sample_data):
    """dlib on image[:, ::-1] finds (nearly) mirror_points of the original's landmarks: the permutation is right."""
    from fer_hybrid.landmarks.features import mirror_points

    x = sample_data.train.x[:10]
    p = landmarks_batch(x)
    q = landmarks_batch(np.ascontiguousarray(x[:, :, ::-1]))
    w = x.shape[2] - 1  # pixel-centre coordinates: column c of the flip is column w - c of the original
    err = np.abs(q - mirror_points(p, width=w)).mean()
    unpermuted = np.abs(q - np.stack([w - p[..., 0], p[..., 1]], axis=-1)).mean()
    assert err < 1.5 and unpermuted > 5 * err


def test_fixed_mirror_landmarks_are_exactly_mirror_equivariant(sample_data):
    """fixed-mirror averages dlib's points with the mirrored points of the flipped image, so flipping the
    face gives exactly the mirrored landmarks (float rounding aside), unlike plain fixed-box landmarks."""
    from fer_hybrid.landmarks.features import mirror_points

    x = sample_data.train.x[:10]
    flipped = np.ascontiguousarray(x[:, :, ::-1])
    p = landmarks_batch(x, "fixed-mirror")
    q = landmarks_batch(flipped, "fixed-mirror")
    np.testing.assert_allclose(q, mirror_points(p, width=x.shape[2] - 1), atol=1e-4)
    plain = landmarks_batch(x, "fixed")
    assert np.abs(landmarks_batch(flipped, "fixed") - mirror_points(plain, width=47)).max() > 0.1
    # the average stays close to the single-view points (same face, same box)
    assert np.abs(p - plain).mean() < 1.5


def test_predictor_runs_the_descriptors_landmark_method(tiny_predictor, sample_data, tmp_path):
    ens, path = tiny_predictor
    assert load_landmark_predictor(path).method == "fixed"          # descriptors before the field: fixed
    folder = tmp_path / "lm"
    mirrored = ens.save(folder, extra={"landmark_method": "fixed-mirror"})
    p = load_landmark_predictor(mirrored)
    assert p.method == "fixed-mirror"
    x = sample_data.test.x[:5]
    np.testing.assert_array_equal(p.predict_proba(x),
                                  ens.predict_proba_points(landmarks_batch(x, "fixed-mirror")).astype(np.float32))
    desc = json.loads(mirrored.read_text())   # this folder's own descriptor (member sha256s of these files)
    (folder / "ensemble.json").write_text(json.dumps({**desc, "landmark_method": "hog"}))
    with pytest.raises(ArtifactError, match="cannot run on face crops"):
        load_landmark_predictor(folder / "ensemble.json")


def test_ensemble_saves_its_landmark_method_and_the_predictor_runs_it(tiny_predictor, tmp_path):
    ens, _ = tiny_predictor
    trained = LandmarkEnsemble(ens.members, ens.weights, ens.features, n_jobs=1, landmark_method="fixed-mirror")
    loaded = LandmarkEnsemble.load(trained.save(tmp_path / "lm"))
    assert loaded.landmark_method == "fixed-mirror"
    assert LandmarkPredictor(loaded).method == "fixed-mirror"
    assert LandmarkPredictor(loaded, method="fixed").method == "fixed"   # an explicit method still wins


def test_appearance_predictor_computes_the_training_features(tiny_appearance_predictor, sample_data):
    ens, path, feats = tiny_appearance_predictor
    p = load_landmark_predictor(path)
    assert p.appearance is not None and p.appearance.get_params() == feats.appearance.get_params()
    assert len(p.features.feature_names()) == len(feats.feature_names())
    x = sample_data.test.x
    pts = landmarks_batch(x)
    expected = (ens.predict_proba(feats.transform(x, pts)) + ens.predict_proba(feats.transform(*mirror_faces(x, pts)))) / 2
    proba = p.predict_proba(x)
    assert proba.shape == (len(x), 5) and proba.dtype == np.float32
    np.testing.assert_allclose(proba, expected.astype(np.float32), atol=1e-6)
    np.testing.assert_allclose(p.predict_proba_points(x, pts), expected, atol=1e-6)
    # frames: the crop of the box is the face itself
    frame = np.zeros((120, 160), np.uint8)
    frame[30:78, 40:88] = x[0]
    fp, fpts = p.predict_frame(frame, np.array([[40, 30, 87, 77]]))
    np.testing.assert_allclose(fp[0], proba[0], atol=1e-6)
    np.testing.assert_allclose(fpts[0], pts[0] + [40, 30], atol=1e-4)
    files = model_files(path)
    assert files[-1].name == "appearance.npz" and all(f.exists() for f in files) and len(files) == 3


def test_appearance_loader_refuses_missing_file_and_feature_mismatch(tiny_appearance_predictor, tmp_path):
    import shutil

    ens, path, _ = tiny_appearance_predictor
    folder = tmp_path / "lm"
    shutil.copytree(path.parent, folder)
    (folder / "appearance.npz").unlink()
    with pytest.raises(ArtifactError, match="appearance file .* is missing"):
        load_landmark_predictor(folder / "ensemble.json")
    # the same members described without their appearance columns
    desc = json.loads((folder / "ensemble.json").read_text())
    del desc["appearance"]
    (folder / "ensemble.json").write_text(json.dumps(desc))
    with pytest.raises(ArtifactError, match="expects .* features but the descriptor makes"):
        load_landmark_predictor(folder / "ensemble.json")


def test_saving_without_appearance_removes_a_stale_appearance_file(tiny_appearance_predictor, tiny_predictor, tmp_path):
    import shutil

    folder = tmp_path / "lm"
    shutil.copytree(tiny_appearance_predictor[1].parent, folder)
    assert (folder / "appearance.npz").exists()
    path = save_landmark_model(tiny_predictor[0], folder)
    assert not (folder / "appearance.npz").exists()
    assert load_landmark_predictor(path).appearance is None
    assert "appearance.npz" not in {f.name for f in model_files(path)}
