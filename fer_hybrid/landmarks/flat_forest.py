"""Fast small-batch prediction for fitted gradient-boosted trees (HistGradientBoosting and XGBoost).

scikit-learn predicts one tree at a time (one Python-level call and one OpenMP region per tree and
class): with hundreds of iterations x 5 classes that overhead dominates a single face, and XGBoost's own
single-row predict also pays per-tree costs. :class:`FlatForest` copies the fitted trees into
flat arrays once and walks every tree of every class together, one numpy step per tree level, so a
batch of one costs a fraction of a millisecond. It gives the same probabilities as the model's own
``predict_proba`` (to float rounding: the per-class sums run in a different order). Numeric splits only
(no categorical features), which is all the landmark features use.

Split semantics are kept exactly: HistGradientBoosting goes left when ``x <= threshold`` (float64);
XGBoost when ``x < threshold`` in float32, i.e. ``float32(x) <= nextafter(threshold, -inf)``. Missing
values (NaN) follow each split's learned default direction.

>>> fast = FlatForest(model)          # a fitted HistGradientBoostingClassifier or XGBClassifier
>>> fast.predict_proba(X)             # float64 (n, n_classes), X float (n, n_features), NaN allowed
"""
from __future__ import annotations

import json

import numpy as np

ROW_CHUNK = 512  # rows walked together (memory: ROW_CHUNK x n_trees int64 per array)


class FlatForest:
    """All trees of a fitted boosted classifier as flat node arrays; row ``t`` of ``columns`` (one-hot,
    (trees, raw-score columns)) says which class tree ``t`` adds to."""

    def __init__(self, model):
        kind = type(model).__name__
        if kind == "XGBClassifier":
            arrays = _xgboost_arrays(model)
        elif kind == "HistGradientBoostingClassifier":
            arrays = _hgb_arrays(model)
        else:
            raise ValueError(f"FlatForest needs a fitted HistGradientBoostingClassifier or XGBClassifier, got {kind}")
        (feature, threshold, missing_left, left, right, leaf, value, sizes, tree_class, n_classes,
         self.n_features, self.float32_inputs) = arrays
        n_columns = n_classes if n_classes > 2 else 1   # a binary model has one raw score (the logit)
        offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
        shift = np.repeat(offsets, sizes)
        index = np.arange(len(leaf), dtype=np.int64)
        # a leaf points to itself and sends every finite value "left": walking max_depth levels for every
        # tree parks each one on its leaf without a per-level leaf test
        self.feature = np.where(leaf, 0, feature).astype(np.int64)
        self.threshold = np.where(leaf, np.inf, threshold).astype(np.float64)
        self.missing_left = np.asarray(missing_left, bool) | leaf
        self.left = np.where(leaf, index, np.asarray(left, np.int64) + shift)
        self.right = np.where(leaf, index, np.asarray(right, np.int64) + shift)
        self.value = np.asarray(value, np.float64)
        self.roots = offsets
        self.max_depth = _max_depth(self.left, self.right, self.roots)
        self.columns = np.eye(n_columns)[np.asarray(tree_class)]
        if kind == "XGBClassifier":   # the intercept (base_score) as XGBoost applies it, read off one row
            self.baseline = np.zeros(n_columns)   # so that _raw below gives the bare leaf sum
            x0 = np.zeros((1, self.n_features), np.float32)
            margin = np.asarray(model.get_booster().inplace_predict(x0, predict_type="margin"), np.float64)
            self.baseline = margin.reshape(-1) - self._raw(x0.astype(np.float64))[0]
        else:
            self.baseline = np.asarray(model._baseline_prediction, np.float64).reshape(-1)

    def decision_function(self, X) -> np.ndarray:
        """Raw scores float64 (n, raw-score columns: classes, or 1 for binary) = baseline + sum of leaf values."""
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != self.n_features:
            raise ValueError(f"X must be (n, {self.n_features}), got {X.shape}")
        out = np.empty((len(X), self.columns.shape[1]))
        for s in range(0, len(X), ROW_CHUNK):
            out[s:s + ROW_CHUNK] = self._raw(X[s:s + ROW_CHUNK])
        return out

    def _raw(self, X: np.ndarray) -> np.ndarray:
        n = len(X)
        if self.float32_inputs:
            X = X.astype(np.float32).astype(np.float64)
        node = np.broadcast_to(self.roots, (n, len(self.roots))).copy()
        rows = np.arange(n)[:, None]
        finite = bool(np.isfinite(X).all())
        for _ in range(self.max_depth):
            x = X[rows, self.feature[node]]
            go_left = x <= self.threshold[node]
            if not finite:  # NaN follows each split's learned missing-value direction
                go_left = np.where(np.isnan(x), self.missing_left[node], go_left)
            node = np.where(go_left, self.left[node], self.right[node])
        return self.baseline + self.value[node] @ self.columns

    def predict_proba(self, X) -> np.ndarray:
        """float64 (n, n_classes): softmax of the raw scores (sigmoid for a binary model)."""
        raw = self.decision_function(X)
        if raw.shape[1] == 1:
            p1 = 1.0 / (1.0 + np.exp(-raw[:, 0]))
            return np.stack([1 - p1, p1], axis=1)
        z = np.exp(raw - raw.max(axis=1, keepdims=True))
        return z / z.sum(axis=1, keepdims=True)


def _max_depth(left: np.ndarray, right: np.ndarray, roots: np.ndarray) -> int:
    """Levels to walk from the roots until every tree sits on a leaf (leaves point to themselves)."""
    frontier, depth = roots, 0
    while True:
        nxt = np.concatenate([left[frontier], right[frontier]])
        moved = nxt != np.concatenate([frontier, frontier])
        if not moved.any():
            return depth
        frontier = np.unique(nxt[moved])
        depth += 1


def _hgb_arrays(model):
    predictors = getattr(model, "_predictors", None)
    if not predictors:
        raise ValueError("FlatForest needs a fitted HistGradientBoostingClassifier")
    if getattr(model, "_preprocessor", None) is not None or getattr(model, "is_categorical_", None) is not None:
        raise ValueError("FlatForest supports numeric features only (this model has categorical ones)")
    trees = [t.nodes for iteration in predictors for t in iteration]
    nodes = np.concatenate(trees)
    if nodes["is_categorical"].any():
        raise ValueError("FlatForest supports numeric splits only")
    per_iter = len(predictors[0])
    n_classes = per_iter if per_iter > 1 else 2
    tree_class = np.tile(np.arange(per_iter), len(predictors))
    return (nodes["feature_idx"], nodes["num_threshold"], nodes["missing_go_to_left"].astype(bool),
            nodes["left"], nodes["right"], nodes["is_leaf"].astype(bool), nodes["value"],
            np.array([len(t) for t in trees]), tree_class, n_classes, int(model.n_features_in_), False)


def _xgboost_arrays(model):
    booster = model.get_booster()   # NotFittedError (a ValueError) when not fitted
    learner = json.loads(booster.save_raw("json"))["learner"]
    gb = learner["gradient_booster"]
    if gb.get("name") != "gbtree":
        raise ValueError(f"FlatForest supports XGBoost tree boosters only, got {gb.get('name')!r}")
    trees = gb["model"]["trees"]
    if any(any(t["split_type"]) for t in trees):
        raise ValueError("FlatForest supports numeric splits only")
    cat = lambda key, dtype: np.concatenate([np.asarray(t[key], dtype) for t in trees])  # noqa: E731
    left, right = cat("left_children", np.int64), cat("right_children", np.int64)
    leaf = left == -1
    cond = cat("split_conditions", np.float32)
    # x < t in float32  <=>  x <= the float32 just below t
    threshold = np.where(leaf, np.inf, np.nextafter(cond, np.float32(-np.inf))).astype(np.float64)
    value = np.where(leaf, cond, 0.0)
    n_classes = int(learner["learner_model_param"].get("num_class", "0")) or 2
    tree_class = np.asarray(gb["model"]["tree_info"], np.int64)
    if n_classes == 2:
        tree_class = np.zeros_like(tree_class)
    sizes = np.array([len(t["left_children"]) for t in trees])
    return (cat("split_indices", np.int64), threshold, cat("default_left", np.int64).astype(bool),
            np.where(leaf, 0, left), np.where(leaf, 0, right), leaf, value, sizes, tree_class, n_classes,
            int(learner["learner_model_param"]["num_feature"]), True)
