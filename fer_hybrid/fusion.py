"""Fusion of a CNN with the landmark track: pure array math, no models loaded here.

Three fusers, all sklearn-like (constructor stores params, ``fit`` returns self) and all answering
``predict_proba(inputs) -> float64 (n, k)`` with a NaN row wherever the landmark side is missing:

- :class:`LateFusion` (``"late"``): ``w * p_cnn + (1 - w) * p_landmarks``; ``w`` on a grid, chosen by
  accuracy (ties: lower log-loss) on the data passed to ``fit`` (val).
- :class:`StackingFusion` (``"stacking"``): multinomial logistic regression on the concatenated
  log-probabilities ``[log p_cnn, log p_landmarks]`` (2k columns). Both base models were trained on
  *all* of train, so their train probabilities are over-confident and unusable for a meta-model; the
  stacker is therefore fit on val, with ``C`` chosen and its accuracy estimated by stratified k-fold
  cross-validation *within* val (``cv_accuracy_``), then refit on all of val.
- :class:`FeatureFusion` (``"feature"``): standardised ``[CNN embedding, landmark features]`` -> a
  logistic-regression or HistGradientBoosting head trained on train; ``C`` / settings chosen by val
  accuracy (``val_accuracy_``; HistGradientBoosting also early-stops on val).

Inputs are a dict with the keys in the fuser's ``inputs``: ``cnn_proba`` (n, k), ``lm_proba`` (n, k),
``cnn_embedding`` (n, d), ``lm_features`` (n, f). :func:`with_fallback` replaces the NaN rows by the CNN's
own probabilities and returns which rows fell back. :func:`fit_all` fits every variant, :func:`choose` keeps the
best by val accuracy (each fuser's ``selection_note`` says what that accuracy is) and :func:`head_params` counts
a head's fitted parameters.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

EPS = 1e-7
METHODS = ("late", "stacking", "feature")


def _finite_rows(*arrays: np.ndarray) -> np.ndarray:
    """bool (n,): rows finite in every array."""
    ok = None
    for a in arrays:
        a = np.asarray(a, dtype=np.float64)
        r = np.isfinite(a.reshape(len(a), -1)).all(axis=1)
        ok = r if ok is None else ok & r
    return ok


def accuracy(p: np.ndarray, y: np.ndarray) -> float:
    """Fraction of rows of ``p`` (n, k) whose argmax is the label ``y`` (n,); NaN when n = 0."""
    return float((np.asarray(p).argmax(1) == np.asarray(y)).mean()) if len(y) else float("nan")


def _log_loss(p: np.ndarray, y: np.ndarray) -> float:
    p = np.asarray(p, dtype=np.float64)
    return float(-np.log(np.clip(p[np.arange(len(y)), np.asarray(y)], 1e-12, None)).mean())


def _nan_rows(n: int, k: int) -> np.ndarray:
    return np.full((n, k), np.nan)


def with_fallback(fused: np.ndarray, cnn_proba: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(float32 (n, k) probabilities, bool (n,) fallback): NaN rows of ``fused`` replaced by ``cnn_proba``."""
    fused = np.asarray(fused, dtype=np.float64)
    fallback = ~_finite_rows(fused)
    out = np.where(fallback[:, None], np.asarray(cnn_proba, dtype=np.float64), fused)
    return out.astype(np.float32), fallback


class LateFusion:
    """Weighted average of CNN and landmark probabilities. ``weight``: fixed CNN weight, or None to fit."""

    method = "late"
    inputs = ("cnn_proba", "lm_proba")
    selection_note = "val accuracy at the weight chosen on val"  # what val_accuracy_ measures

    def __init__(self, weight: float | None = None, grid: Sequence[float] | None = None):
        self.weight = weight
        self.grid = grid

    def fit(self, X: Mapping[str, np.ndarray], y: np.ndarray) -> "LateFusion":
        """Choose the CNN weight on ``(X, y)`` (rows with landmarks only); sets ``weight_``, ``val_accuracy_``,
        ``scores_`` {weight: accuracy}."""
        pc, pl = (np.asarray(X[k], np.float64) for k in self.inputs)
        y = np.asarray(y)
        ok = _finite_rows(pc, pl)
        grid = np.round(np.linspace(0, 1, 21), 4) if self.grid is None else np.asarray(self.grid, np.float64)
        if self.weight is not None:
            grid = np.array([float(self.weight)])
        best, self.scores_ = (-1.0, np.inf, None), {}
        for w in grid:
            p = w * pc[ok] + (1 - w) * pl[ok]
            acc, ll = accuracy(p, y[ok]), _log_loss(p, y[ok])
            self.scores_[float(w)] = acc
            if acc > best[0] + 1e-12 or (abs(acc - best[0]) <= 1e-12 and ll < best[1]):
                best = (acc, ll, float(w))
        self.val_accuracy_, _, self.weight_ = best
        return self

    def predict_proba(self, X: Mapping[str, np.ndarray]) -> np.ndarray:
        w = self.weight_ if hasattr(self, "weight_") else self.weight
        if w is None:
            raise ValueError("LateFusion is not fitted and has no fixed weight")
        pc, pl = (np.asarray(X[k], np.float64) for k in self.inputs)
        return w * pc + (1 - w) * pl  # NaN landmark rows stay NaN

    def get_config(self) -> dict:
        return {"method": self.method, "weight_cnn": float(self.weight_ if hasattr(self, "weight_") else self.weight)}

    @property
    def uses_landmarks(self) -> bool:
        """False when the CNN weight is 1: the landmark probabilities are multiplied by 0."""
        return self.get_config()["weight_cnn"] < 1.0


class StackingFusion:
    """Logistic regression on ``[log p_cnn, log p_landmarks]``, fit on val with k-fold CV inside val."""

    method = "stacking"
    inputs = ("cnn_proba", "lm_proba")

    def __init__(self, Cs: Sequence[float] = (0.01, 0.1, 1.0, 10.0), cv: int = 5, random_state: int = 0):
        self.Cs = Cs
        self.cv = cv
        self.random_state = random_state

    @property
    def selection_note(self) -> str:
        return f"out-of-fold ({self.cv}-fold CV inside val)"

    def _design(self, X: Mapping[str, np.ndarray]) -> np.ndarray:
        return np.concatenate([np.log(np.clip(np.asarray(X[k], np.float64), EPS, 1.0)) for k in self.inputs], axis=1)

    def fit(self, X: Mapping[str, np.ndarray], y: np.ndarray) -> "StackingFusion":
        """Sets ``C_``, ``cv_accuracy_`` (out-of-fold accuracy on ``(X, y)``), ``cv_scores_`` {C: acc},
        ``model_`` (refit on all rows with landmarks) and ``classes_``."""
        from sklearn.linear_model import LogisticRegression
        from sklearn.model_selection import StratifiedKFold, cross_val_predict

        y = np.asarray(y)
        ok = _finite_rows(*(X[k] for k in self.inputs))
        Z, yy = self._design(X)[ok], y[ok]
        n_splits = int(min(self.cv, np.bincount(yy).min())) if len(yy) else 0
        if n_splits < 2:
            raise ValueError(f"stacking needs >= 2 examples of every class for {self.cv}-fold CV")
        folds = StratifiedKFold(n_splits, shuffle=True, random_state=self.random_state)
        self.cv_scores_ = {}
        for C in self.Cs:
            oof = cross_val_predict(LogisticRegression(C=C, max_iter=2000), Z, yy, cv=folds, method="predict_proba")
            self.cv_scores_[float(C)] = accuracy(oof, yy)
        self.C_ = max(self.cv_scores_, key=lambda c: (self.cv_scores_[c], -c))
        self.cv_accuracy_ = self.cv_scores_[self.C_]
        self.val_accuracy_ = self.cv_accuracy_  # the honest estimate: out-of-fold
        self.model_ = LogisticRegression(C=self.C_, max_iter=2000).fit(Z, yy)
        self.classes_ = self.model_.classes_
        return self

    def predict_proba(self, X: Mapping[str, np.ndarray]) -> np.ndarray:
        Z = self._design(X)
        ok = np.isfinite(Z).all(axis=1)
        k = np.asarray(X[self.inputs[0]]).shape[1]
        out = _nan_rows(len(Z), k)
        if ok.any():
            out[ok] = _full_columns(self.model_.predict_proba(Z[ok]), self.classes_, k)
        return out

    def get_config(self) -> dict:
        return {"method": self.method, "C": float(self.C_), "cv_folds": int(self.cv),
                "input": "log probabilities [cnn (k), landmarks (k)]", "fit_on": "val (out-of-fold CV for C)"}


def _full_columns(p: np.ndarray, classes: np.ndarray, k: int) -> np.ndarray:
    """(n, len(classes)) -> (n, k) with zero columns for classes the model never saw."""
    if p.shape[1] == k:
        return p
    out = np.zeros((len(p), k))
    out[:, np.asarray(classes, dtype=np.int64)] = p
    return out


class FeatureFusion:
    """Standardised ``[CNN embedding, landmark features]`` -> a head trained on train, chosen on val.

    ``head``: ``"logreg"`` (multinomial logistic regression; ``grid`` of C) or ``"hgb"``
    (HistGradientBoosting; ``grid`` of param dicts). Missing features in train/val rows are dropped
    from fitting; at prediction they give NaN rows (the caller falls back to the CNN).
    """

    method = "feature"
    inputs = ("cnn_embedding", "lm_features")
    selection_note = "val accuracy of the head trained on train"

    def __init__(self, head: str = "logreg", grid: Sequence | None = None, n_jobs: int = 2, random_state: int = 0):
        self.head = head
        self.grid = grid
        self.n_jobs = n_jobs
        self.random_state = random_state

    def _design(self, X: Mapping[str, np.ndarray]) -> np.ndarray:
        parts = [np.asarray(X[k], np.float64).reshape(len(X[k]), -1) for k in self.inputs]
        return np.concatenate(parts, axis=1)

    def _make(self, params):
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        if self.head == "logreg":
            from sklearn.linear_model import LogisticRegression

            return make_pipeline(StandardScaler(), LogisticRegression(C=float(params), max_iter=1000))
        if self.head == "hgb":
            from sklearn.ensemble import HistGradientBoostingClassifier

            return HistGradientBoostingClassifier(random_state=self.random_state, **dict(params))
        raise ValueError(f"unknown head {self.head!r}; valid: logreg, hgb")

    def default_grid(self) -> list:
        if self.head == "logreg":
            return [0.001, 0.01, 0.1]
        return [dict(learning_rate=0.1, max_iter=300, max_leaf_nodes=15, l2_regularization=1.0, early_stopping=True,
                     n_iter_no_change=20, max_bins=64)]

    def fit(self, X: Mapping[str, np.ndarray], y: np.ndarray, X_val: Mapping[str, np.ndarray],
            y_val: np.ndarray, progress: bool = False) -> "FeatureFusion":
        """Fit one head per grid entry on (X, y), keep the best by accuracy on (X_val, y_val).

        Sets ``model_``, ``params_``, ``val_accuracy_``, ``scores_`` [(params, val accuracy)]."""
        from threadpoolctl import threadpool_limits
        from tqdm.auto import tqdm

        Z, y = self._design(X), np.asarray(y)
        Zv, yv = self._design(X_val), np.asarray(y_val)
        ok, okv = np.isfinite(Z).all(1), np.isfinite(Zv).all(1)
        best, self.scores_ = (-1.0, None, None), []
        with threadpool_limits(self.n_jobs):
            for params in tqdm(list(self.grid if self.grid is not None else self.default_grid()),
                               desc=f"feature fusion ({self.head})", disable=not progress):
                model = self._make(params)
                if self.head == "hgb" and model.get_params().get("early_stopping") is True:
                    model.fit(Z[ok], y[ok], X_val=Zv[okv], y_val=yv[okv])  # early stopping on val, as the landmark track
                else:
                    model.fit(Z[ok], y[ok])
                acc = accuracy(model.predict_proba(Zv[okv]), yv[okv])
                self.scores_.append((params, acc))
                if acc > best[0]:
                    best = (acc, model, params)
        self.val_accuracy_, self.model_, self.params_ = best
        self.n_features_in_ = Z.shape[1]
        self.n_classes_ = int(max(y.max(initial=0), yv.max(initial=0))) + 1
        return self

    def predict_proba(self, X: Mapping[str, np.ndarray]) -> np.ndarray:
        from threadpoolctl import threadpool_limits

        Z = self._design(X)
        if Z.shape[1] != self.n_features_in_:
            raise ValueError(f"feature fusion expects {self.n_features_in_} columns, got {Z.shape[1]}")
        ok = np.isfinite(Z).all(axis=1)
        out = _nan_rows(len(Z), self.n_classes_)
        if ok.any():
            with threadpool_limits(self.n_jobs):
                out[ok] = _full_columns(self.model_.predict_proba(Z[ok]), self.model_.classes_, self.n_classes_)
        return out

    def get_config(self) -> dict:
        params = self.params_ if isinstance(self.params_, dict) else {"C": float(self.params_)}
        return {"method": self.method, "head": self.head, "params": params, "n_features": int(self.n_features_in_),
                "n_classes": int(self.n_classes_),
                "input": "standardised [cnn embedding, landmark features]" if self.head == "logreg"
                         else "[cnn embedding, landmark features]", "fit_on": "train (settings chosen on val)"}


def from_config(config: Mapping, model=None):
    """Rebuild a fitted fuser from :meth:`get_config` output and (stacking/feature) its fitted sklearn model."""
    method = config.get("method")
    if method == "late":
        f = LateFusion(weight=float(config["weight_cnn"]))
        f.weight_ = f.weight
        return f
    if model is None:
        raise ValueError(f"fusion {method!r} needs its fitted model")
    if method == "stacking":
        f = StackingFusion(Cs=(float(config["C"]),), cv=int(config.get("cv_folds", 5)))
        f.C_, f.model_, f.classes_ = float(config["C"]), model, model.classes_
        return f
    if method == "feature":
        f = FeatureFusion(head=config["head"])
        params = config["params"]
        f.params_ = float(params["C"]) if config["head"] == "logreg" else params
        f.model_, f.n_features_in_, f.n_classes_ = model, int(config["n_features"]), int(config["n_classes"])
        return f
    raise ValueError(f"unknown fusion method {method!r}; valid: {', '.join(METHODS)}")


def ensemble_selection(probas: Sequence[np.ndarray], y: np.ndarray, rounds: int = 25) -> np.ndarray:
    """float64 (m,) weights summing to 1 for averaging m models' (n, k) probabilities.

    Greedy forward selection with replacement (Caruana et al., 2004): start from the best single model,
    then ``rounds - 1`` times add the member (again, possibly) whose inclusion gives the highest accuracy
    on (probas, y) — ties broken by lower log-loss, then by order. Weights are the selection counts /
    rounds, so weak or redundant members end with weight 0. Fit it on val only.
    """
    probas = [np.asarray(p, dtype=np.float64) for p in probas]
    if not probas:
        raise ValueError("ensemble_selection needs at least one model")
    y = np.asarray(y)
    counts = np.zeros(len(probas))
    total = np.zeros_like(probas[0])
    for r in range(int(rounds)):
        scores = [(accuracy(total + p, y), -_log_loss((total + p) / (r + 1), y)) for p in probas]
        best = max(range(len(probas)), key=lambda i: scores[i])
        counts[best] += 1
        total += probas[best]
    return counts / counts.sum()


def fit_all(X: Mapping[str, np.ndarray], y: np.ndarray, X_val: Mapping[str, np.ndarray], y_val: np.ndarray,
            heads: Sequence[str] = ("logreg", "hgb"), n_jobs: int = 2, progress: bool = False) -> dict[str, object]:
    """{variant: fitted fuser} for every fusion: ``"late"`` and ``"stacking"`` fit on val (``X_val``, ``y_val``),
    then ``"feature-<head>"`` for each of ``heads``, trained on (``X``, ``y``) with settings chosen on val. Each
    fuser's ``val_accuracy_`` is what :func:`choose` compares (stacking: out-of-fold inside val)."""
    out = {"late": LateFusion().fit(X_val, y_val), "stacking": StackingFusion().fit(X_val, y_val)}
    for head in heads:
        out[f"feature-{head}"] = FeatureFusion(head=head, n_jobs=n_jobs).fit(X, y, X_val, y_val, progress=progress)
    return out


def choose(fusers: Sequence) -> object:
    """The fitted fuser with the highest ``val_accuracy_`` (first wins ties)."""
    return max(fusers, key=lambda f: f.val_accuracy_)


def head_params(fuser) -> int:
    """Fitted parameters of a fuser's head: 1 (late fusion's weight), coefficients + intercepts of a logistic
    regression (stacking, feature-logreg), or the leaves of a HistGradientBoosting head (feature-hgb)."""
    model = getattr(fuser, "model_", None)
    if model is None:
        return 1
    est = model.steps[-1][1] if hasattr(model, "steps") else model
    if hasattr(est, "coef_"):
        return int(est.coef_.size + est.intercept_.size)
    return int(sum(t.get_n_leaf_nodes() for ts in getattr(est, "_predictors", []) for t in ts))
