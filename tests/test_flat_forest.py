"""FlatForest: the flat-array small-batch path gives HistGradientBoosting's and XGBoost's own probabilities."""
from __future__ import annotations

import numpy as np
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier

from fer_hybrid.landmarks.flat_forest import FlatForest
from fer_hybrid.landmarks.models import SMALL_BATCH, LandmarkEnsemble, make_member


def _data(n_classes: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(400, 12))
    score = X[:, 0] + 0.5 * X[:, 1] ** 2 - X[:, 2] + 0.3 * rng.normal(size=len(X))
    y = np.digitize(score, np.quantile(score, np.linspace(0, 1, n_classes + 1)[1:-1]))  # n_classes levels
    X[rng.random(X.shape) < 0.05] = np.nan   # missing values take the learned missing-value branch
    return X, y


@pytest.mark.parametrize("n_classes", [2, 5])
def test_flat_forest_matches_sklearn(n_classes):
    X, y = _data(n_classes)
    model = HistGradientBoostingClassifier(max_iter=40, max_leaf_nodes=15, random_state=0).fit(X, y)
    fast = FlatForest(model)
    Xt, _ = _data(n_classes, seed=1)
    expected = model.predict_proba(Xt)
    got = fast.predict_proba(Xt)
    assert got.shape == (len(Xt), n_classes)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-10)
    np.testing.assert_allclose(fast.predict_proba(Xt[:1]), expected[:1], atol=1e-10)   # batch of one
    assert (got.argmax(1) == model.predict(Xt)).all()


@pytest.mark.parametrize("n_classes", [2, 5])
def test_flat_forest_matches_xgboost(n_classes):
    from xgboost import XGBClassifier

    X, y = _data(n_classes)
    model = XGBClassifier(n_estimators=30, max_depth=4, learning_rate=0.3, n_jobs=1, random_state=0).fit(X, y)
    fast = FlatForest(model)
    Xt, _ = _data(n_classes, seed=1)
    Xt = np.concatenate([Xt, X[:50]])   # training rows sit exactly on split thresholds' neighbourhoods
    expected = model.predict_proba(Xt)
    got = fast.predict_proba(Xt)
    assert got.shape == (len(Xt), n_classes)
    np.testing.assert_allclose(got, expected, atol=1e-5)   # XGBoost sums leaves in float32
    assert (got.argmax(1) == model.predict(Xt)).all()


def test_flat_forest_rejects_bad_input():
    with pytest.raises(ValueError, match="fitted HistGradientBoostingClassifier"):
        FlatForest(HistGradientBoostingClassifier())
    with pytest.raises(ValueError, match="HistGradientBoostingClassifier or XGBClassifier, got LogisticRegression"):
        from sklearn.linear_model import LogisticRegression

        FlatForest(LogisticRegression())
    X, y = _data(3)
    fast = FlatForest(HistGradientBoostingClassifier(max_iter=5).fit(X, y))
    with pytest.raises(ValueError, match=r"X must be \(n, 12\)"):
        fast.predict_proba(X[:, :5])


def test_ensemble_small_batches_equal_large_batches():
    """The realtime (small-batch) path and the bulk path give the same member probabilities."""
    X, y = _data(5)
    ens = LandmarkEnsemble({"hgb": make_member("hgb", {"max_iter": 20}),
                            "xgboost": make_member("xgboost", {"n_estimators": 10, "max_depth": 3}, n_jobs=1),
                            "logreg": make_member("logreg")},
                           features=None, n_jobs=1)
    ens.fit(np.nan_to_num(X), y)
    Xt = np.nan_to_num(_data(5, seed=2)[0])
    assert len(Xt) >= SMALL_BATCH
    bulk = ens.member_proba(Xt)
    rows = [ens.member_proba(Xt[i:i + 1]) for i in range(10)]
    for name in bulk:
        np.testing.assert_allclose(np.concatenate([r[name] for r in rows]), bulk[name][:10], atol=1e-6)
