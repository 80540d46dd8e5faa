"""Fusion math on synthetic probabilities/features, CNN fallback, and the hybrid save/load/registry round trip.

The landmark side of the round trip is a real (tiny) LandmarkEnsemble from fer_hybrid.landmarks.models,
trained on dlib landmarks of the 25 fixture train images; the fallback test uses a stub landmark predictor
that answers NaN for chosen rows (the fixed-box landmarker never fails on a crop).
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from fer_hybrid import fusion as fz
from fer_hybrid.hybrid import (CNNEnsemblePredictor, HybridPredictor, embedding_layer_name, load_cnn_ensemble_predictor,
                               load_hybrid_predictor, save_cnn_ensemble)
from fer_hybrid.predictors import ArtifactError, load_keras_model, load_predictor

DATA = Path(__file__).parent / "data"
TINY_CNN = DATA / "tiny_cnn.keras"
K = 5


def onehot(y, k=K):
    return np.eye(k)[y]


def soft(y, conf, k=K, wrong=None):
    """Rows with ``conf`` on class y (or on ``wrong`` where given) and the rest spread evenly."""
    target = y if wrong is None else wrong
    p = np.full((len(y), k), (1 - conf) / (k - 1))
    p[np.arange(len(y)), target] = conf
    return p


# ------------------------------------------------------------------------------------------
# fusion math
# ------------------------------------------------------------------------------------------
def test_late_fusion_picks_the_informative_side():
    rng = np.random.default_rng(0)
    y = rng.integers(0, K, 300)
    good = soft(y, 0.6)
    noise = rng.dirichlet(np.ones(K), 300)
    assert fz.LateFusion().fit({"cnn_proba": good, "lm_proba": noise}, y).weight_ == 1.0
    assert fz.LateFusion().fit({"cnn_proba": noise, "lm_proba": good}, y).weight_ == 0.0


def rows(y, wrong, p_true, p_wrong, k=K):
    """(n, k): ``p_true`` on y, ``p_wrong`` on ``wrong``, the rest spread evenly."""
    p = np.full((len(y), k), (1 - p_true - p_wrong) / (k - 2))
    p[np.arange(len(y)), y] = p_true
    p[np.arange(len(y)), wrong] = p_wrong
    return p


def test_late_fusion_finds_the_complementary_weight():
    # rows 0-69: CNN right (0.70 vs 0.10), landmarks narrowly wrong (0.35 vs 0.45);
    # rows 70-99: CNN narrowly wrong (0.35 vs 0.40), landmarks confidently right (0.95).
    # Every CNN weight in (1/7, 0.949) gets all 100 right; w=1 gets 70, w=0 gets 30.
    y = np.arange(100) % K
    wrong = (y + 1) % K
    a, b = slice(0, 70), slice(70, 100)
    cnn = np.vstack([rows(y[a], wrong[a], 0.70, 0.10), rows(y[b], wrong[b], 0.35, 0.40)])
    lm = np.vstack([rows(y[a], wrong[a], 0.35, 0.45), rows(y[b], wrong[b], 0.95, 0.02)])
    f = fz.LateFusion().fit({"cnn_proba": cnn, "lm_proba": lm}, y)
    assert 0.15 <= f.weight_ <= 0.9 and f.val_accuracy_ == 1.0
    assert f.scores_[1.0] == 0.7 and f.scores_[0.0] == 0.3
    p = f.predict_proba({"cnn_proba": cnn, "lm_proba": lm})
    np.testing.assert_allclose(p.sum(1), 1)
    assert (p.argmax(1) == y).all()


def test_stacking_rows_sum_to_one_and_nan_rows_stay_nan():
    rng = np.random.default_rng(1)
    y = rng.integers(0, K, 200)
    X = {"cnn_proba": 0.5 * soft(y, 0.5) + 0.5 * rng.dirichlet(np.ones(K), 200),
         "lm_proba": rng.dirichlet(np.ones(K), 200)}
    f = fz.StackingFusion(cv=3).fit(X, y)
    assert f.C_ in f.cv_scores_ and 0.5 < f.cv_accuracy_ <= 1.0
    Xt = {k: v[:10].copy() for k, v in X.items()}
    Xt["lm_proba"][3] = np.nan
    p = f.predict_proba(Xt)
    assert p.shape == (10, K)
    assert np.isnan(p[3]).all()
    np.testing.assert_allclose(np.delete(p, 3, axis=0).sum(1), 1, atol=1e-9)


def test_stacking_needs_enough_examples_per_class():
    y = np.array([0, 0, 1, 1, 2])
    X = {"cnn_proba": soft(y, 0.9), "lm_proba": soft(y, 0.9)}
    with pytest.raises(ValueError, match=">= 2 examples"):
        fz.StackingFusion().fit(X, y)


@pytest.mark.parametrize("head", ["logreg", "hgb"])
def test_feature_fusion_learns_from_both_parts(head):
    rng = np.random.default_rng(2)

    def make(n):
        y = rng.integers(0, K, n)
        emb = rng.normal(size=(n, 6))
        emb[:, :K] += 1.5 * onehot(y)  # the CNN embedding separates every class a little
        feats = rng.normal(size=(n, 4))
        feats[:, 0] += 2.0 * (y == 4)  # the landmark side separates class 4 better
        return {"cnn_embedding": emb, "lm_features": feats}, y

    X, y = make(400)
    Xv, yv = make(200)
    grid = [0.1, 1.0] if head == "logreg" else [dict(max_iter=50, max_leaf_nodes=7)]
    f = fz.FeatureFusion(head=head, grid=grid, n_jobs=1).fit(X, y, Xv, yv)
    assert f.val_accuracy_ > 0.6 and len(f.scores_) == len(grid)
    Xv["lm_features"][:5] = np.nan
    p = f.predict_proba(Xv)
    assert np.isnan(p[:5]).all()
    np.testing.assert_allclose(p[5:].sum(1), 1, atol=1e-9)
    g = fz.from_config(json.loads(json.dumps(f.get_config())), f.model_)
    np.testing.assert_array_equal(g.predict_proba(Xv), p)


def test_with_fallback_uses_the_cnn_and_flags_rows():
    cnn = soft(np.array([0, 1, 2]), 0.8)
    fused = soft(np.array([3, 3, 3]), 0.9)
    fused[1] = np.nan
    p, fb = fz.with_fallback(fused, cnn)
    assert fb.tolist() == [False, True, False]
    np.testing.assert_allclose(p[1], cnn[1], rtol=1e-6)
    assert p.dtype == np.float32 and p.argmax(1).tolist() == [3, 1, 3]


def test_choose_keeps_the_best_by_val_accuracy():
    a, b = fz.LateFusion(weight=0.5), fz.LateFusion(weight=0.2)
    a.val_accuracy_, b.val_accuracy_ = 0.70, 0.72
    assert fz.choose([a, b]) is b


# ------------------------------------------------------------------------------------------
# CNN side
# ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_keras():
    return load_keras_model(TINY_CNN)


def test_embedding_layer_fallbacks(tiny_keras):
    from fer_hybrid.cnn.vggbn import build_vggbn

    m = build_vggbn(widths=(4, 4, 4, 4), dense=8)
    assert embedding_layer_name(m) == "head_relu"
    assert embedding_layer_name(m, preferred="absent") == "head_drop2"  # the layer feeding "predictions"
    assert embedding_layer_name(tiny_keras) == "global_average_pooling2d"  # the layer before the output


def test_cnn_ensemble_average_flip_and_round_trip(tiny_keras, sample_data, tmp_path):
    x = sample_data.test.x
    one = CNNEnsemblePredictor([tiny_keras])
    p1, e1 = one.predict(x)
    assert p1.shape == (len(x), K) and e1.shape == (len(x), 8)
    two = CNNEnsemblePredictor([tiny_keras, tiny_keras])
    p2, e2 = two.predict(x)
    np.testing.assert_allclose(p2, p1, atol=1e-6)
    assert e2.shape == (len(x), 16)
    # on left-right symmetric faces flip TTA changes nothing
    sym = np.ascontiguousarray(np.concatenate([x[:2, :, :24], x[:2, :, :24][:, :, ::-1]], axis=2))
    flip = CNNEnsemblePredictor([tiny_keras], tta="flip")
    np.testing.assert_allclose(flip.predict(sym)[0], one.predict(sym)[0], atol=1e-6)
    pf = flip.predict_proba(x)
    np.testing.assert_allclose(pf, (p1 + one.predict(x[:, :, ::-1])[0]) / 2, atol=1e-6)
    # save/load (the CNN copied into a models folder)
    root = tmp_path / "models"
    root.mkdir()
    shutil.copy(TINY_CNN, root / "tiny.keras")
    ens = CNNEnsemblePredictor.from_files([root / "tiny.keras"], tta="flip")
    desc = save_cnn_ensemble(ens, root / "cnn_ensemble" / "ensemble.json")
    assert json.loads(desc.read_text())["cnn"]["files"] == ["tiny.keras"]
    np.testing.assert_array_equal(load_cnn_ensemble_predictor(desc).predict_proba(x), ens.predict_proba(x))


def test_cnn_ensemble_multi_view_tta_matches_predict_tta_and_round_trips(tiny_keras, sample_data, tmp_path):
    """tta="flip-scale" averages the 6 views exactly like fer_hybrid.cnn.tta.predict_tta; the policy is saved."""
    from fer_hybrid.cnn.tta import keras_predict_fn, predict_tta

    x = sample_data.test.x[:8]
    ens = CNNEnsemblePredictor([tiny_keras], tta="flip-scale")
    assert len(ens.views) == 6 and ens.tta == "flip-scale"
    expected = predict_tta(keras_predict_fn(tiny_keras), x[..., None].astype(np.float32), "flip-scale")
    np.testing.assert_allclose(ens.predict_proba(x), expected, atol=1e-5)
    assert not np.allclose(ens.predict_proba(x), CNNEnsemblePredictor([tiny_keras], tta="flip").predict_proba(x))
    root = tmp_path / "models"
    root.mkdir()
    shutil.copy(TINY_CNN, root / "tiny.keras")
    saved = CNNEnsemblePredictor.from_files([root / "tiny.keras"], tta="flip-scale")
    desc = save_cnn_ensemble(saved, root / "cnn_ensemble" / "ensemble.json")
    assert json.loads(desc.read_text())["cnn"]["tta"] == "flip-scale"
    loaded = load_cnn_ensemble_predictor(desc)
    assert loaded.tta == "flip-scale"
    np.testing.assert_array_equal(loaded.predict_proba(x), saved.predict_proba(x))
    with pytest.raises(ValueError, match="unknown TTA policy 'bogus'; valid policies: flip"):
        CNNEnsemblePredictor([tiny_keras], tta="bogus")


def test_ensemble_selection_drops_a_useless_member_and_keeps_complementary_ones():
    rng = np.random.default_rng(0)
    y = rng.integers(0, K, 400)
    onehot = np.eye(K)[y]
    noise = rng.dirichlet(np.ones(K), 400)
    # a and b are each right on a different half; c is confidently wrong everywhere
    half = np.arange(400) < 200
    a = np.where(half[:, None], 0.6 * onehot + 0.4 * noise, noise)
    b = np.where(half[:, None], noise, 0.6 * onehot + 0.4 * noise)
    c = 0.9 * np.eye(K)[(y + 1) % K] + 0.02
    w = fz.ensemble_selection([a, b, c], y, rounds=20)
    assert w.shape == (3,) and w.sum() == pytest.approx(1.0)
    assert w[2] == 0 and w[0] > 0 and w[1] > 0
    assert fz.accuracy(w[0] * a + w[1] * b, y) > max(fz.accuracy(a, y), fz.accuracy(b, y))
    with pytest.raises(ValueError, match="at least one"):
        fz.ensemble_selection([], y)


def test_cnn_ensemble_weights_are_applied_saved_and_validated(tiny_keras, sample_data, tmp_path):
    x = sample_data.test.x
    p = CNNEnsemblePredictor([tiny_keras]).predict_proba(x)
    pf = CNNEnsemblePredictor([tiny_keras]).predict_proba(x[:, :, ::-1])
    # a two-member "ensemble" of the same net on plain and mirrored input via flip: weights 3:1 of one net = itself
    ens = CNNEnsemblePredictor([tiny_keras, tiny_keras], weights=[3, 1])
    np.testing.assert_allclose(ens.weights, [0.75, 0.25])
    np.testing.assert_allclose(ens.predict_proba(x), p, atol=1e-6)
    assert not np.allclose(p, pf)  # the fixture net is not mirror-symmetric, so flip is a real check below
    root = tmp_path / "models"
    root.mkdir()
    shutil.copy(TINY_CNN, root / "tiny.keras")
    ens = CNNEnsemblePredictor.from_files([root / "tiny.keras", root / "tiny.keras"], weights=[1, 0])
    desc = save_cnn_ensemble(ens, root / "cnn_ensemble" / "ensemble.json")
    assert json.loads(desc.read_text())["cnn"]["weights"] == [1.0, 0.0]
    np.testing.assert_array_equal(load_cnn_ensemble_predictor(desc).predict_proba(x), ens.predict_proba(x))
    for bad in ([1], [-1, 2], [0, 0], [np.nan, 1]):
        with pytest.raises(ValueError, match="weights must be 2"):
            CNNEnsemblePredictor([tiny_keras, tiny_keras], weights=bad)



def test_a_cnn_saved_with_flip_tta_in_its_graph_gives_the_embedding_of_both_views(sample_data, tmp_path):
    """A network wrapped by with_flip_tta (input -> [net, mirror -> net] -> average) loads as a member: its
    probabilities are the wrapped graph's and its embedding is the inner head_relu averaged over the face and
    its mirror, i.e. exactly what the plain network gives under tta="flip"."""
    import keras

    from fer_hybrid.cnn.export import with_flip_tta
    from fer_hybrid.cnn.vggbn import build_vggbn

    keras.utils.set_random_seed(3)
    net = build_vggbn(widths=(4, 4, 4, 4), dense=8)
    root = tmp_path / "models"
    root.mkdir()
    with_flip_tta(net).save(root / "flip.keras")
    x = sample_data.test.x[:6]
    wrapped = CNNEnsemblePredictor.from_files([root / "flip.keras"])
    p, e = wrapped.predict(x)
    assert p.shape == (6, K) and e.shape == (6, 8) and wrapped.embedding_dim == 8
    p_ref, e_ref = CNNEnsemblePredictor([net], tta="flip").predict(x)
    np.testing.assert_allclose(p, p_ref, atol=1e-6)
    np.testing.assert_allclose(e, e_ref, atol=1e-5)
    assert not np.allclose(e, CNNEnsemblePredictor([net]).predict(x)[1], atol=1e-5)  # the mirror view counts
    desc = save_cnn_ensemble(wrapped, root / "cnn_ensemble" / "ensemble.json")
    assert json.loads(desc.read_text())["cnn"]["embedding_layers"] == ["vggbn/head_relu"]
    np.testing.assert_array_equal(load_cnn_ensemble_predictor(desc).embed(x), e)

# ------------------------------------------------------------------------------------------
# hybrid predictor
# ------------------------------------------------------------------------------------------
class StubLandmarks:
    """Landmark predictor stand-in: constant probabilities, NaN for the rows listed in ``missing``."""

    classes = ("angry", "fear", "happy", "sad", "surprise")

    def __init__(self, missing=()):
        self.missing = list(missing)

    def predict(self, faces):
        n = len(faces)
        p = np.tile(soft(np.array([4]), 0.99), (n, 1))
        pts = np.zeros((n, 68, 2))
        p[self.missing] = np.nan
        pts[self.missing] = np.nan
        return p, pts


def test_fallback_rows_are_the_cnn_alone_and_flagged(tiny_keras, sample_data):
    x = sample_data.test.x[:6]
    cnn = CNNEnsemblePredictor([tiny_keras])
    hp = HybridPredictor(cnn, StubLandmarks(missing=[1, 4]), fz.LateFusion(weight=0.0).fit(
        {"cnn_proba": soft(np.array([0]), 0.5), "lm_proba": soft(np.array([0]), 0.5)}, np.array([0])))
    p = hp.predict_proba(x)
    assert hp.last_fallback.tolist() == [False, True, False, False, True, False]
    np.testing.assert_allclose(p[[1, 4]], cnn.predict_proba(x)[[1, 4]], atol=1e-6)
    assert (p[[0, 2, 3, 5]].argmax(1) == 4).all()  # weight 0 -> the landmark side answers
    assert hp.predict_proba(x[:0]).shape == (0, 5) and hp.last_fallback.shape == (0,)


class NoLandmarksAllowed(StubLandmarks):
    def predict(self, faces):
        raise AssertionError("a fusion that gives the landmarks weight 0 must not run the landmark stage")

    predict_frame = predict


def test_a_fusion_without_landmark_weight_skips_the_landmark_stage(tiny_keras, sample_data):
    x = sample_data.test.x[:4]
    cnn = CNNEnsemblePredictor([tiny_keras])
    one = fz.LateFusion(weight=1.0).fit({"cnn_proba": soft(np.array([0]), 0.5), "lm_proba": soft(np.array([0]), 0.5)},
                                        np.array([0]))
    hp = HybridPredictor(cnn, NoLandmarksAllowed(), one)
    assert not hp.uses_landmarks
    np.testing.assert_allclose(hp.predict_proba(x), cnn.predict_proba(x), atol=1e-6)
    frame = np.zeros((120, 160, 3), np.uint8)
    p, pts = hp.predict_frame(frame, np.array([[10, 10, 70, 70]]))
    assert p.shape == (1, 5) and np.isnan(pts).all() and not hp.last_fallback.any()
    assert HybridPredictor(cnn, StubLandmarks(), fz.LateFusion(weight=0.7).fit(
        {"cnn_proba": soft(np.array([0]), 0.5), "lm_proba": soft(np.array([0]), 0.5)}, np.array([0]))).uses_landmarks


@pytest.fixture(scope="module")
def models_root(sample_data, tmp_path_factory):
    """A models folder holding tiny_cnn.keras as 'vggbn.keras' and a tiny landmark ensemble."""
    from fer_hybrid.landmarks.extract import landmarks_batch
    from fer_hybrid.landmarks.features import LandmarkFeatures
    from fer_hybrid.landmarks.models import LandmarkEnsemble, make_member

    root = tmp_path_factory.mktemp("models")
    shutil.copy(TINY_CNN, root / "vggbn.keras")
    feats = LandmarkFeatures().fit(np.zeros((1, 68, 2)))
    X = feats.transform(landmarks_batch(sample_data.train.x))
    ens = LandmarkEnsemble({"logreg": make_member("logreg", {"C": 0.1})}, features=feats, n_jobs=1)
    ens.fit(X, sample_data.train.y).save(root / "landmarks")
    return root


def _parts(hp_cnn, lm, data):
    """Inputs of every fuser for the fixture's train and val splits."""
    from fer_hybrid.hybrid import landmark_features

    out = {}
    for s in ("train", "val"):
        x = data.split(s).x
        pc, emb = hp_cnn.predict(x)
        pl, pts = lm.predict(x)
        out[s] = {"cnn_proba": pc, "cnn_embedding": emb, "lm_proba": pl, "lm_features": landmark_features(lm, pts)}
    return out


@pytest.mark.parametrize("method", ["late", "stacking", "feature"])
def test_hybrid_save_load_round_trip_and_registry(method, models_root, sample_data):
    from fer_hybrid.landmarks.predictor import load_landmark_predictor

    lm_json = models_root / "landmarks" / "ensemble.json"
    lm = load_landmark_predictor(lm_json)
    cnn = CNNEnsemblePredictor.from_files([models_root / "vggbn.keras"])
    parts = _parts(cnn, lm, sample_data)
    yv = sample_data.val.y
    if method == "late":
        fuser = fz.LateFusion().fit(parts["val"], yv)
    elif method == "stacking":
        fuser = fz.StackingFusion(cv=3).fit(parts["val"], yv)
    else:
        fuser = fz.FeatureFusion(grid=[0.1], n_jobs=1).fit(parts["train"], sample_data.train.y, parts["val"], yv)
    hp = HybridPredictor(cnn, lm, fuser, landmark_model=lm_json)
    path = hp.save(models_root / "hybrid" / "hybrid.json", extra={"val_accuracy": fuser.val_accuracy_})
    desc = json.loads(path.read_text())
    assert desc["cnn"]["files"] == ["vggbn.keras"] and desc["landmarks"]["file"] == "landmarks/ensemble.json"
    assert desc["fusion"]["method"] == method and ("file" in desc["fusion"]) == (method != "late")

    x = sample_data.test.x
    expected = hp.predict_proba(x)
    assert expected.shape == (len(x), 5) and expected.dtype == np.float32
    np.testing.assert_allclose(expected.sum(1), 1, atol=1e-5)
    assert not hp.last_fallback.any()
    loaded = load_predictor("hybrid", root=models_root)
    assert isinstance(loaded, HybridPredictor) and loaded.name == "hybrid"
    np.testing.assert_array_equal(loaded.predict_proba(x), expected)
    np.testing.assert_array_equal(load_hybrid_predictor(path).predict_proba(list(x)), expected)


def test_a_hybrid_with_an_onnx_twin_runs_it_without_keras_and_gives_the_same_answers(models_root, sample_data,
                                                                                       tmp_path, monkeypatch):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("tf2onnx")
    from fer_hybrid.cnn.export import export_onnx
    from fer_hybrid.hybrid import OnnxCNN
    from fer_hybrid.keras_io import load_keras_model
    from fer_hybrid.landmarks.predictor import load_landmark_predictor

    lm_json = models_root / "landmarks" / "ensemble.json"
    lm = load_landmark_predictor(lm_json)
    cnn = CNNEnsemblePredictor.from_files([models_root / "vggbn.keras"])   # no TTA: the plain network
    twin = export_onnx(load_keras_model(models_root / "vggbn.keras"), models_root / "vggbn.onnx")
    fuser = fz.LateFusion().fit(_parts(cnn, lm, sample_data)["val"], sample_data.val.y)
    path = tmp_path / "hybrid" / "hybrid.json"
    keras_hp = HybridPredictor(cnn, lm, fuser, landmark_model=lm_json, cnn_onnx=twin)
    keras_hp.save(path, models_root=models_root)
    desc = json.loads(path.read_text())
    assert desc["cnn"]["onnx"]["file"] == "vggbn.onnx"
    import fer_hybrid.hybrid as hy

    monkeypatch.setattr(hy, "load_keras_model", lambda *a: pytest.fail("the ONNX twin must replace Keras"))
    loaded = load_hybrid_predictor(path)
    assert isinstance(loaded.cnn, OnnxCNN)
    x = sample_data.test.x
    np.testing.assert_allclose(loaded.predict_proba(x), keras_hp.predict_proba(x), atol=1e-4)
    desc["cnn"]["onnx"]["sha256"] = "0" * 64
    path.write_text(json.dumps(desc))
    with pytest.raises(ArtifactError, match="vggbn.onnx does not match its sha256"):
        load_hybrid_predictor(path)
    desc["cnn"]["onnx"] = {"file": "vggbn.keras", "sha256": "0" * 64}
    path.write_text(json.dumps(desc))
    with pytest.raises(ArtifactError, match="cnn.onnx"):
        load_hybrid_predictor(path)


def test_saving_late_fusion_over_a_learned_head_removes_the_stale_head(models_root, sample_data, tmp_path):
    from fer_hybrid.landmarks.predictor import load_landmark_predictor

    lm_json = models_root / "landmarks" / "ensemble.json"
    lm = load_landmark_predictor(lm_json)
    cnn = CNNEnsemblePredictor.from_files([models_root / "vggbn.keras"])
    val = _parts(cnn, lm, sample_data)["val"]
    path = tmp_path / "hybrid" / "hybrid.json"
    head = path.with_name("hybrid-fusion.skops")
    stacking = fz.StackingFusion(cv=3).fit(val, sample_data.val.y)
    HybridPredictor(cnn, lm, stacking, landmark_model=lm_json).save(path, models_root=models_root)
    assert head.exists() and json.loads(path.read_text())["fusion"]["file"] == head.name
    late = fz.LateFusion().fit(val, sample_data.val.y)
    HybridPredictor(cnn, lm, late, landmark_model=lm_json).save(path, models_root=models_root)
    assert not head.exists() and "file" not in json.loads(path.read_text())["fusion"]
    assert sorted(p.name for p in path.parent.iterdir()) == ["hybrid.json"]


def test_frame_api_gives_probabilities_and_frame_landmarks(models_root, sample_data):
    import cv2

    hp = load_predictor("hybrid", root=models_root)
    face = cv2.resize(sample_data.test.x[0], (96, 96))
    frame = np.full((200, 300, 3), 90, np.uint8)
    frame[50:146, 100:196] = face[..., None]
    boxes = np.array([[100, 50, 195, 145], [400, 400, 420, 420]])  # the second box lies outside the frame
    proba, pts = hp.predict_frame(frame, boxes)
    assert proba.shape == (2, 5) and pts.shape == (2, 68, 2)
    np.testing.assert_allclose(proba.sum(1), 1, atol=1e-5)  # the empty box falls back to the CNN, never NaN
    assert hp.last_fallback.tolist() == [False, True]
    inner = pts[0, 17:]
    assert (inner[:, 0] > 90).all() and (inner[:, 0] < 205).all() and (inner[:, 1] > 40).all()
    np.testing.assert_array_equal(hp.predict_proba_frame(frame, boxes), proba)
    assert hp.last_landmarks is not None and set(hp.last_timings) == {"landmarks", "classification"}


def test_changed_or_missing_parts_raise_artifact_error(models_root, tmp_path):
    root = tmp_path / "m"
    shutil.copytree(models_root, root)
    (root / "hybrid" / "hybrid.json").exists() or pytest.skip("round-trip test did not run first")
    (root / "vggbn.keras").write_bytes(TINY_CNN.read_bytes()[:-10])
    with pytest.raises(ArtifactError, match="sha256"):
        load_predictor("hybrid", root=root)
    (root / "vggbn.keras").unlink()
    with pytest.raises(ArtifactError, match="missing"):
        load_predictor("hybrid", root=root)
    (root / "hybrid" / "hybrid.json").write_text("{}")
    with pytest.raises(ArtifactError, match="not a fer_hybrid.hybrid"):
        load_predictor("hybrid", root=root)


# ------------------------------------------------------------------------------------------
# experiment scripts: clear exits without models / FER+ files
# ------------------------------------------------------------------------------------------
def _script(name):
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "experiments" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"_exp_{name}", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_hybrid_experiment_exits_2_naming_the_training_command(tmp_path, capsys):
    hybrid = _script("hybrid")
    assert hybrid.main(["--models", str(tmp_path), "--cnn", "no_such_cnn_xyz"]) == 2
    assert "no_such_cnn_xyz" in capsys.readouterr().err
    shutil.copy(TINY_CNN, tmp_path / "vggbn.keras")
    assert hybrid.main(["--models", str(tmp_path)]) == 2
    assert "python experiments/landmarks.py" in capsys.readouterr().err
    (tmp_path / "vggbn.keras").unlink()
    if not (Path(__file__).resolve().parents[1] / "experiments" / "checkpoints" / "vggbn" / "final.keras").exists():
        assert hybrid.main(["--models", str(tmp_path)]) == 2
        assert "cnn_transfer.py --backbone vggbn" in capsys.readouterr().err


def test_crosscheck_skips_cleanly_without_ferplus(tmp_path, capsys):
    assert _script("ferplus_crosscheck").main(["--ferplus-dir", str(tmp_path), "--reports", str(tmp_path)]) == 0
    assert "FER+ files not found" in capsys.readouterr().out


@pytest.mark.slow
def test_hybrid_experiment_end_to_end_on_the_fixture(models_root, sample_tar, tmp_path, capsys):
    """experiments/hybrid.py on the 50-image fixture with tiny models: reports, shipped descriptor, manifest."""
    from fer_hybrid.artifacts import read_manifest
    from fer_hybrid.reports import read_report

    root = tmp_path / "models"
    shutil.copytree(models_root, root, ignore=shutil.ignore_patterns("hybrid"))
    shutil.copy(TINY_CNN, root / "second.keras")
    reports = tmp_path / "reports"
    rc = _script("hybrid").main(["--models", str(root), "--data", str(sample_tar), "--reports", str(reports),
                                 "--cnn-ensemble", "vggbn,second", "--heads", "logreg"])
    assert rc == 0
    names = {p.parent.name for p in reports.rglob("report.json")}
    assert {"hybrid-late", "hybrid-stacking", "hybrid-feature-logreg"} <= names
    # the ensemble report is named after the members greedy selection on val kept, with their weights
    (ens,) = [n for n in names if n.startswith("cnn-ensemble-")]
    assert set(ens.removeprefix("cnn-ensemble-").split("+")) <= {"vggbn", "second"}
    weights = read_report(reports / ens / "report.json")["member_weights"]
    assert len(weights) == len(ens.removeprefix("cnn-ensemble-").split("+")) and sum(weights) == pytest.approx(1)
    chosen = [n for n in names if n.startswith("hybrid") and read_report(reports / n / "report.json").get("chosen")]
    assert len(chosen) == 1 and read_manifest(root)["models"]["hybrid"]["report"].endswith(f"{chosen[0]}/report.json")
    assert load_predictor("hybrid", root=root).predict_proba(np.zeros((2, 48, 48), np.uint8)).shape == (2, 5)
