"""Landmark members and ensemble on synthetic features: fit speed, NaN rows, weights, save/load."""
from __future__ import annotations

import json
import time

import numpy as np
import pytest

from fer_hybrid.landmarks.features import LandmarkFeatures
from fer_hybrid.landmarks.models import (KINDS, EnsembleFileError, LandmarkEnsemble, best_weights,
                                         feature_importance, make_member)

TINY = {"xgboost": {"n_estimators": 30, "max_depth": 2, "max_bin": 16, "learning_rate": 0.5,
                    "early_stopping_rounds": 3},
        "hgb": {"max_iter": 10, "max_depth": 3, "max_bins": 16},
        "logreg": {"C": 1.0},
        "mlp": {"hidden_layer_sizes": (16,), "max_iter": 50}}


def _synthetic(n=300, seed=0):
    """Features of the real width (so LandmarkFeatures' names fit) with a learnable 5-class signal."""
    rng = np.random.default_rng(seed)
    n_feat = len(LandmarkFeatures().fit(np.zeros((1, 68, 2))).feature_names_)
    y = rng.integers(0, 5, n)
    X = rng.normal(size=(n, n_feat))
    X[:, :5] += 2.5 * np.eye(5)[y]
    return X, y


def _tiny_ensemble(kinds=KINDS):
    return LandmarkEnsemble({k: make_member(k, TINY[k], n_jobs=1) for k in kinds}, n_jobs=1)


def test_tiny_ensemble_trains_in_seconds_and_learns():
    X, y = _synthetic()
    Xv, yv = _synthetic(150, seed=1)
    t0 = time.perf_counter()
    ens = _tiny_ensemble().fit(X, y, Xv, yv)
    assert time.perf_counter() - t0 < 30
    p = ens.predict_proba(Xv)
    assert p.shape == (150, 5)
    np.testing.assert_allclose(p.sum(1), 1, atol=1e-6)
    assert (p.argmax(1) == yv).mean() > 0.8
    assert ens.members["xgboost"].get_booster().num_boosted_rounds() <= 30


def test_nan_feature_rows_give_nan_probabilities():
    X, y = _synthetic()
    ens = _tiny_ensemble(("xgboost", "logreg")).fit(X, y)
    Xq = X[:4].copy()
    Xq[2] = np.nan
    p = ens.predict_proba(Xq)
    assert np.isnan(p[2]).all() and np.isfinite(p[[0, 1, 3]]).all()
    pts = np.full((1, 68, 2), np.nan)
    assert np.isnan(ens.predict_proba_points(pts)).all()


def test_save_load_round_trip_identical(tmp_path):
    X, y = _synthetic()
    ens = _tiny_ensemble().fit(X, y, *_synthetic(100, 2))
    ens.weights = {"xgboost": 0.4, "hgb": 0.3, "logreg": 0.2, "mlp": 0.1}
    path = ens.save(tmp_path / "lm")
    desc = json.loads(path.read_text())
    assert {m["file"] for m in desc["members"]} == {"xgboost.ubj", "hgb.skops", "logreg.skops", "mlp.skops"}
    back = LandmarkEnsemble.load(path, n_jobs=1)  # same thread count -> bit-identical float sums
    assert back.weights == ens.weights
    np.testing.assert_array_equal(back.predict_proba(X), ens.predict_proba(X))


def test_load_rejects_damaged_files(tmp_path):
    X, y = _synthetic()
    path = _tiny_ensemble(("xgboost",)).fit(X, y).save(tmp_path / "lm")
    (tmp_path / "lm" / "xgboost.ubj").write_bytes(b"garbage")
    with pytest.raises(EnsembleFileError, match="sha256"):
        LandmarkEnsemble.load(path)
    with pytest.raises(EnsembleFileError, match="no such"):
        LandmarkEnsemble.load(tmp_path / "nope.json")
    path.write_text("{}")
    with pytest.raises(EnsembleFileError, match="not a"):
        LandmarkEnsemble.load(path)


def test_best_weights_prefers_the_informative_member():
    y = np.array([0, 1, 2, 3, 4] * 20)
    good = np.eye(5)[y] * 0.8 + 0.04
    bad = np.roll(good, 1, axis=1)
    w, acc = best_weights({"good": good, "bad": bad}, y, step=0.25)
    assert acc == 1.0 and w["good"] > w["bad"]
    assert abs(sum(w.values()) - 1) < 1e-9


def test_feature_importance_names_columns():
    X, y = _synthetic()
    ens = _tiny_ensemble(("xgboost", "logreg")).fit(X, y)
    names = list(ens.features.get_feature_names_out())
    imp = feature_importance(ens.members["xgboost"], names)
    assert set(imp) <= set(names) and list(imp)[0] in names[:5]
    assert feature_importance(ens.members["logreg"], names) is None


def test_unknown_kind_and_bad_weights_raise():
    with pytest.raises(ValueError, match="valid: xgboost"):
        make_member("svm")
    with pytest.raises(ValueError, match="unknown member"):
        LandmarkEnsemble({"a": make_member("logreg")}, weights={"b": 1.0})


@pytest.mark.parametrize("damage, message", [
    (lambda d: d.pop("members"), "field 'members' must be a non-empty list"),
    (lambda d: d.update(members=[]), "field 'members' must be a non-empty list"),
    (lambda d: d["members"][0].pop("file"), r"member entry 0 \(field 'members\[0\]'\) lacks file"),
    (lambda d: d["members"][0].pop("sha256"), r"member entry 0 \(field 'members\[0\]'\) lacks sha256"),
    (lambda d: d["members"][0].update(kind="svm"), "unknown kind 'svm'"),
    (lambda d: d["members"][0].update(weight=0), r"weights \(field 'members\[\*\].weight'\) sum to <= 0"),
    (lambda d: d["members"][0].update(weight=-1), r"field 'members\[0\].weight' must be a finite number >= 0"),
    (lambda d: d["members"][0].update(weight="0.5"), r"field 'members\[0\].weight' must be a finite number >= 0, got str"),
    (lambda d: d["members"][0].update(file="/etc/passwd"), r"field 'members\[0\].file' must be a file name inside"),
    (lambda d: d["members"][0].update(file="../x.skops"), r"field 'members\[0\].file' must be a file name inside"),
    (lambda d: d["members"][0].update(sha256="abc"), r"field 'members\[0\].sha256' must be a sha256"),
    (lambda d: d.pop("features"), "field 'features' must be an object"),
    (lambda d: d["features"].update(n_features="678"), "field 'features.n_features' must be a positive integer"),
    (lambda d: d.update(classes="angry"), "field 'classes' must be a non-empty list"),
    (lambda d: d.update(tta_mirror="yes"), "field 'tta_mirror' must be true or false"),
    (lambda d: d.update(format_version=2), "not a fer_hybrid.landmark_ensemble v1 descriptor"),
])
def test_load_rejects_incomplete_descriptors_with_typed_error(tmp_path, damage, message):
    X, y = _synthetic()
    path = _tiny_ensemble(("logreg",)).fit(X, y).save(tmp_path / "lm")
    desc = json.loads(path.read_text())
    damage(desc)
    path.write_text(json.dumps(desc))
    with pytest.raises(EnsembleFileError, match=message) as info:
        LandmarkEnsemble.load(path)
    assert not isinstance(info.value, KeyError) and str(path) in str(info.value)


def test_load_reports_unreadable_json_as_typed_error(tmp_path):
    path = tmp_path / "ensemble.json"
    path.write_text("{not json")
    with pytest.raises(EnsembleFileError, match="not readable JSON"):
        LandmarkEnsemble.load(path)


def test_sklearn_members_are_skops_and_a_pickle_member_is_never_opened(tmp_path):
    """Members are .skops files; a descriptor naming a .joblib member is refused before the file is read."""
    X, y = _synthetic()
    path = _tiny_ensemble(("logreg",)).fit(X, y).save(tmp_path / "lm")
    assert (tmp_path / "lm" / "logreg.skops").exists() and not list((tmp_path / "lm").glob("*.joblib"))
    desc = json.loads(path.read_text())
    desc["members"][0]["file"] = "logreg.joblib"   # does not even exist: refused by name first
    path.write_text(json.dumps(desc))
    with pytest.raises(EnsembleFileError, match="logreg.joblib is a pickle file, which can run code"):
        LandmarkEnsemble.load(path)
