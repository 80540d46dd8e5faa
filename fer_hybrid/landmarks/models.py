"""Classifiers on landmark features and their soft-voting ensemble ("the landmark ensemble").

Members (:data:`KINDS`), all taking float (n, n_features) from :class:`~.features.LandmarkFeatures`:

- ``xgboost``: ``xgboost.XGBClassifier`` (hist trees; early stopping on a validation set if given);
- ``hgb``: ``sklearn.ensemble.HistGradientBoostingClassifier``;
- ``logreg``: standardise -> multinomial logistic regression;
- ``mlp``: standardise -> ``sklearn.neural_network.MLPClassifier``.

:class:`LandmarkEnsemble` averages the members' probabilities with weights (chosen on validation
data by :func:`best_weights`), optionally also over the mirrored face (``tta_mirror``);
:meth:`LandmarkEnsemble.fit` can add the mirror images of the training faces as rows, and
:meth:`LandmarkEnsemble.choose_weights` sets the weights and mirror TTA from validation data. Rows whose
features are not finite (no landmarks) get NaN probabilities.

Saved as a folder: ``ensemble.json`` (descriptor: classes, feature settings, members, weights,
files with sha256), XGBoost members in its native ``.ubj`` format, sklearn members as ``.skops`` files
(:mod:`fer_hybrid.safe_io`: no pickle; loading refuses any type outside an explicit list, and never opens a
``.joblib``/``.pkl`` member). Every member file is checked against the descriptor's sha256 before it is read.

>>> ens = LandmarkEnsemble({"xgboost": make_member("xgboost", {...}), ...}, weights={...}).fit(F, y)
>>> ens.save("models/landmarks")          # -> models/landmarks/ensemble.json
>>> LandmarkEnsemble.load("models/landmarks/ensemble.json").predict_proba_points(points)
"""
from __future__ import annotations

import functools
import itertools
import json
import time
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from .. import _atomic
from ..artifacts import check_relative_file, check_sha
from ..errors import ArtifactError
from ..labels import STUDY_EMOTIONS
from ..safe_io import SKOPS_SUFFIX, file_sha256, load_sklearn, refuse_pickle, save_sklearn
from .features import LandmarkFeatures, mirror_points

KINDS = ("xgboost", "hgb", "logreg", "mlp")
FORMAT = "fer_hybrid.landmark_ensemble"
FORMAT_VERSION = 1
SMALL_BATCH = 64  # below this many rows, prediction runs on one thread


class EnsembleFileError(ArtifactError):
    """An ensemble descriptor or member file is missing, damaged, malformed, or of a refused format."""


@functools.lru_cache(maxsize=1)
def _controller():
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def threadpool_limits(n: int):
    """Context manager limiting BLAS/OpenMP threads to ``n`` (library scan cached: cheap per call)."""
    return _controller().limit(limits=n)


def make_member(kind: str, params: Mapping | None = None, n_jobs: int = 2, random_state: int = 0):
    """An unfitted classifier of ``kind`` with ``params`` (passed to the classifier itself)."""
    params = dict(params or {})
    if kind == "xgboost":
        from xgboost import XGBClassifier

        base = dict(tree_method="hist", eval_metric="mlogloss", n_jobs=n_jobs, random_state=random_state)
        return XGBClassifier(**{**base, **params})
    if kind == "hgb":
        from sklearn.ensemble import HistGradientBoostingClassifier

        return HistGradientBoostingClassifier(**{"random_state": random_state, **params})
    if kind in ("logreg", "mlp"):
        from sklearn.linear_model import LogisticRegression
        from sklearn.neural_network import MLPClassifier
        from sklearn.pipeline import Pipeline
        from sklearn.preprocessing import StandardScaler

        if kind == "logreg":
            clf = LogisticRegression(**{"max_iter": 2000, **params})
        else:
            clf = MLPClassifier(**{"random_state": random_state, "early_stopping": True, **params})
        return Pipeline([("scale", StandardScaler()), ("clf", clf)])
    raise ValueError(f"unknown member kind {kind!r}; valid: {', '.join(KINDS)}")


def member_kind(model) -> str:
    """The :data:`KINDS` entry of a fitted or unfitted member."""
    name = type(model).__name__
    if name == "XGBClassifier":
        return "xgboost"
    if name == "HistGradientBoostingClassifier":
        return "hgb"
    if name == "Pipeline":
        return "logreg" if type(model.steps[-1][1]).__name__ == "LogisticRegression" else "mlp"
    raise ValueError(f"unsupported member type {name}")


def fit_member(model, X: np.ndarray, y: np.ndarray, X_val: np.ndarray | None = None,
               y_val: np.ndarray | None = None, n_jobs: int = 2):
    """Fit one member. With (X_val, y_val) given, XGBoost with ``early_stopping_rounds`` stops on them and
    keeps only the trees up to the best iteration, and HistGradientBoosting with ``early_stopping=True``
    scores them for early stopping. Returns the fitted model."""
    kind = member_kind(model)
    with threadpool_limits(n_jobs):
        if kind == "xgboost" and X_val is not None and model.get_params().get("early_stopping_rounds"):
            model.fit(X, y, eval_set=[(X_val, y_val)], verbose=False)
            best = int(model.best_iteration)
            booster = model.get_booster()[: best + 1]
            model = _xgb_from_booster(booster, model.get_params())
        elif kind == "hgb" and X_val is not None and model.get_params().get("early_stopping") is True:
            model.fit(X, y, X_val=X_val, y_val=y_val)
        else:
            if kind == "xgboost":
                model.set_params(early_stopping_rounds=None)
            model.fit(X, y)
    return model


def _xgb_from_booster(booster, params: Mapping):
    """An XGBClassifier holding exactly ``booster`` (via a temporary native .ubj round trip)."""
    import tempfile

    from xgboost import XGBClassifier

    params = {k: v for k, v in params.items() if k != "early_stopping_rounds"}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "m.ubj"
        booster.save_model(path)
        model = XGBClassifier(**params)
        model.load_model(path)
    return model


def feature_importance(model, names: Sequence[str]) -> dict[str, float] | None:
    """{feature name: importance} (XGBoost gain, normalised to sum 1), or None for other members."""
    if member_kind(model) != "xgboost":
        return None
    gain = model.get_booster().get_score(importance_type="total_gain")
    total = sum(gain.values()) or 1.0
    out = {names[int(k[1:])] if k.startswith("f") and k[1:].isdigit() else k: v / total for k, v in gain.items()}
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))


def member_params(model) -> int:
    """Learned parameters of a fitted member: tree nodes for the boosted trees, weights + biases for the MLP and
    the logistic regression."""
    kind = member_kind(model)
    if kind == "xgboost":
        return int(sum(len(t.strip().splitlines()) for t in model.get_booster().get_dump()))
    if kind == "hgb":
        return int(sum(len(p.nodes) for it in model._predictors for p in it))
    clf = model.steps[-1][1]
    if kind == "logreg":
        return int(clf.coef_.size + clf.intercept_.size)
    return int(sum(w.size for w in clf.coefs_) + sum(b.size for b in clf.intercepts_))


def best_weights(probas: Mapping[str, np.ndarray], y: np.ndarray, step: float = 0.1) -> tuple[dict, float]:
    """Soft-vote weights on the simplex grid (multiples of ``step``) maximising accuracy on ``(probas, y)``.

    Ties are broken by lower log-loss. Returns ({member: weight}, accuracy).
    """
    names = list(probas)
    k = int(round(1 / step))
    stack = np.stack([np.asarray(probas[n], np.float64) for n in names])  # (m, n, c)
    y = np.asarray(y)
    best = (-1.0, np.inf, None)
    for combo in itertools.product(range(k + 1), repeat=len(names)):
        if sum(combo) != k:
            continue
        w = np.array(combo, np.float64) / k
        p = np.tensordot(w, stack, axes=1)
        acc = float((p.argmax(1) == y).mean())
        ll = float(-np.log(np.clip(p[np.arange(len(y)), y], 1e-12, None)).mean())
        if acc > best[0] + 1e-12 or (abs(acc - best[0]) <= 1e-12 and ll < best[1]):
            best = (acc, ll, w)
    return {n: float(v) for n, v in zip(names, best[2])}, best[0]


class LandmarkEnsemble:
    """Weighted soft vote of fitted members over :class:`LandmarkFeatures` columns.

    ``members`` {name: classifier}; ``weights`` {name: weight >= 0} (default equal); ``features``
    the transformer whose output the members read (used by :meth:`predict_proba_points`);
    ``tta_mirror``: also average over the horizontally mirrored landmarks; ``landmark_method``: the
    :data:`.extract.METHODS` entry whose points the members were trained on (saved with the ensemble,
    so whoever feeds it images uses the same method).
    """

    def __init__(self, members: Mapping, weights: Mapping[str, float] | None = None,
                 features: LandmarkFeatures | None = None, classes: Sequence[str] = STUDY_EMOTIONS,
                 tta_mirror: bool = False, n_jobs: int = 2, landmark_method: str = "fixed"):
        if not members:
            raise ValueError("an ensemble needs at least one member")
        self.members = dict(members)
        self.weights = dict(weights) if weights is not None else {n: 1.0 for n in self.members}
        unknown = set(self.weights) - set(self.members)
        if unknown:
            raise ValueError(f"weights for unknown member(s) {sorted(unknown)}; members: {list(self.members)}")
        self.features = features if features is not None else LandmarkFeatures()
        if not hasattr(self.features, "feature_names_"):
            self.features.fit(np.zeros((1, 68, 2)))
        self.classes = tuple(classes)
        self.tta_mirror = tta_mirror
        self.n_jobs = n_jobs
        self.landmark_method = landmark_method
        self.fit_seconds: dict[str, float] = {}
        self._flat: dict[str, tuple] = {}  # member name -> (model, FlatForest) for small batches

    # -- training ---------------------------------------------------------------------------
    def fit(self, X: np.ndarray, y: np.ndarray, X_val: np.ndarray | None = None, y_val: np.ndarray | None = None,
            X_mirror: np.ndarray | None = None):
        """Fit every member on features X (n, f) and labels y (n,); returns self. ``X_mirror`` (n, f): features
        of the mirror images of the same faces, appended as training rows with the same labels (mirror
        training); (X_val, y_val): early stopping (:func:`fit_member`)."""
        if X_mirror is not None:
            if np.shape(X_mirror) != np.shape(X):
                raise ValueError(f"X_mirror {np.shape(X_mirror)} must have the shape of X {np.shape(X)}")
            X, y = np.concatenate([X, X_mirror]), np.concatenate([y, y])
        for name in list(self.members):
            t0 = time.perf_counter()
            self.members[name] = fit_member(self.members[name], X, y, X_val, y_val, self.n_jobs)
            self.fit_seconds[name] = time.perf_counter() - t0
        return self

    def choose_weights(self, X_val: np.ndarray, y_val: np.ndarray, X_val_mirror: np.ndarray | None = None,
                       step: float = 0.1) -> dict[str, float]:
        """Set :attr:`weights` (:func:`best_weights` on the simplex grid of ``step``) and :attr:`tta_mirror` to
        what is most accurate on validation data: without TTA, and, given ``X_val_mirror`` (the features of the
        mirror images of the validation faces), with the member probabilities averaged over each face and its
        mirror image; mirror TTA only if strictly more accurate. Returns {"no_tta": val accuracy,
        "mirror_tta": val accuracy (only with ``X_val_mirror``)}."""
        p = self.member_proba(X_val)
        choice = {"no_tta": best_weights(p, y_val, step)}
        if X_val_mirror is not None:
            q = self.member_proba(X_val_mirror)
            choice["mirror_tta"] = best_weights({k: (p[k] + q[k]) / 2 for k in p}, y_val, step)
        self.tta_mirror = "mirror_tta" in choice and choice["mirror_tta"][1] > choice["no_tta"][1]
        self.weights = choice["mirror_tta" if self.tta_mirror else "no_tta"][0]
        return {k: v[1] for k, v in choice.items()}

    # -- prediction -------------------------------------------------------------------------
    def member_proba(self, X: np.ndarray, X_mirror: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """{member: float64 (n, c)}; NaN rows where X has non-finite values. ``X_mirror``: features of the
        mirror images of the same faces, averaged in when :attr:`tta_mirror` (ignored otherwise).

        Small batches (realtime: one face per call) take a fast path without per-call thread-pool
        juggling, the boosted members through :class:`.flat_forest.FlatForest` (all trees walked at once;
        sklearn's HistGradientBoosting predict pays a per-tree call overhead that dominates a single face).
        """
        X = np.asarray(X, dtype=np.float64)
        ok = np.isfinite(X).all(axis=1)
        small = ok.sum() < SMALL_BATCH
        out = {}
        for name, model in self.members.items():
            p = np.full((len(X), len(self.classes)), np.nan)
            if ok.any():
                p[ok] = self._small_batch(name, model, X[ok]) if small else self._large_batch(model, X[ok])
            out[name] = p
        if X_mirror is not None and self.tta_mirror:
            q = self.member_proba(X_mirror)
            out = {k: (out[k] + q[k]) / 2 for k in out}
        return out

    def _small_batch(self, name: str, model, X: np.ndarray) -> np.ndarray:
        if member_kind(model) in ("hgb", "xgboost"):
            cached = self._flat.get(name)
            if cached is None or cached[0] is not model:
                from .flat_forest import FlatForest

                cached = self._flat[name] = (model, FlatForest(model))
            return cached[1].predict_proba(X)
        return model.predict_proba(X)

    def _large_batch(self, model, X: np.ndarray) -> np.ndarray:
        kind = member_kind(model)
        # HistGradientBoosting opens an OpenMP region per tree: one thread is faster on 2 busy cores
        threads = 1 if kind == "hgb" else self.n_jobs
        with threadpool_limits(threads):
            if kind == "xgboost" and model.get_params().get("n_jobs") != threads:
                model.set_params(n_jobs=threads)
            return model.predict_proba(X)

    def combine(self, probas: Mapping[str, np.ndarray]) -> np.ndarray:
        """Weighted average of member probabilities (renormalised weights) -> float64 (n, c)."""
        total = sum(self.weights.get(n, 0.0) for n in probas)
        if total <= 0:
            raise ValueError("ensemble weights sum to zero")
        return sum(self.weights.get(n, 0.0) / total * p for n, p in probas.items())

    def predict_proba(self, X: np.ndarray, X_mirror: np.ndarray | None = None) -> np.ndarray:
        """float64 (n, c) from features (n, f); with :attr:`tta_mirror`, also from ``X_mirror`` (the features of
        the mirror images of the same faces), member probabilities averaged over both. From points:
        :meth:`predict_proba_points`."""
        return self.combine(self.member_proba(X, X_mirror))

    def predict_proba_points(self, points: np.ndarray) -> np.ndarray:
        """float64 (n, c) from landmarks (n, 68, 2); NaN rows for faces without landmarks."""
        p = self.predict_proba(self.features.transform(points))
        if self.tta_mirror:
            p = (p + self.predict_proba(self.features.transform(mirror_points(points)))) / 2
        return p

    def n_params(self, name: str | None = None) -> int:
        """Learned parameters (:func:`member_params`) of member ``name``, or of all members (None)."""
        if name is not None:
            return member_params(self.members[name])
        return sum(member_params(m) for m in self.members.values())

    # -- persistence ------------------------------------------------------------------------
    def save(self, folder: str | Path, extra: Mapping | None = None) -> Path:
        """Write members + ``ensemble.json`` into ``folder`` (atomically per file); returns the JSON path."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        entries = []
        for name, model in self.members.items():
            kind = member_kind(model)
            if kind == "xgboost":
                path = folder / f"{name}.ubj"
                with _atomic.atomic_path(path) as tmp:
                    model.save_model(tmp)
            else:
                path = save_sklearn(model, folder / f"{name}{SKOPS_SUFFIX}")
            entries.append({"name": name, "kind": kind, "file": path.name, "sha256": file_sha256(path),
                            "weight": float(self.weights.get(name, 0.0))})
        desc = {
            "format": FORMAT, "format_version": FORMAT_VERSION,
            "classes": list(self.classes),
            "features": {"class": "fer_hybrid.landmarks.features.LandmarkFeatures",
                         "params": self.features.get_params(),
                         "n_features": len(self.features.feature_names_)},
            "tta_mirror": self.tta_mirror,
            "landmark_method": self.landmark_method,
            "members": entries,
            **(dict(extra) if extra else {}),
        }
        out = folder / "ensemble.json"
        _atomic.write_text(out, json.dumps(desc, indent=2) + "\n")
        return out

    @classmethod
    def load(cls, path: str | Path, n_jobs: int = 2, verify: bool = True) -> "LandmarkEnsemble":
        """Read ``ensemble.json`` and its member files; EnsembleFileError on any problem."""
        from xgboost import XGBClassifier

        path = Path(path)
        desc = validate_descriptor(_atomic.read_json(path, EnsembleFileError, "ensemble descriptor"), path)
        members, weights = {}, {}
        for m in desc["members"]:
            f = path.parent / m["file"]
            try:
                refuse_pickle(f, path)  # by name, before anything is opened
            except ArtifactError as e:
                raise EnsembleFileError(str(e)) from None
            if not f.exists():
                raise EnsembleFileError(f"{path}: member file {f.name} is missing")
            if verify and file_sha256(f) != m["sha256"]:
                raise EnsembleFileError(f"{path}: member file {f.name} does not match its sha256 in {path.name} "
                                        "(damaged or replaced)")
            if m["kind"] == "xgboost":
                if f.suffix not in (".ubj", ".json"):
                    raise EnsembleFileError(f"{path}: xgboost member {f.name} must be an XGBoost .ubj or .json file")
                try:
                    model = XGBClassifier(n_jobs=n_jobs)
                    model.load_model(f)
                except Exception as e:  # xgboost raises many types for damaged files
                    raise EnsembleFileError(f"{path}: cannot load member {f.name}: {type(e).__name__}: {e}") from None
            else:
                try:
                    model = load_sklearn(f, path)
                except ArtifactError as e:
                    raise EnsembleFileError(str(e)) from None
            members[m["name"]] = model
            weights[m["name"]] = float(m["weight"])
        try:
            features = LandmarkFeatures(**desc["features"]["params"]).fit(np.zeros((1, 68, 2)))
        except TypeError as e:
            raise EnsembleFileError(f"{path}: bad feature settings ({e})") from None
        if len(features.feature_names_) != desc["features"]["n_features"]:
            raise EnsembleFileError(f"{path}: expects {desc['features']['n_features']} features but this version of "
                                    f"LandmarkFeatures makes {len(features.feature_names_)}")
        method = desc.get("landmark_method", "fixed")
        return cls(members, weights, features, tuple(desc["classes"]), bool(desc.get("tta_mirror")), n_jobs, method)


_MEMBER_KEYS = ("name", "kind", "file", "sha256", "weight")


def validate_descriptor(desc, path) -> dict:
    """``desc`` (a parsed ``ensemble.json`` at ``path``) if well formed; EnsembleFileError naming the file and
    the field otherwise: format and version, a non-empty "members" list of complete entries (name, a known
    kind, a relative file name, sha256, a finite weight >= 0; unique names), weights summing to > 0, a
    "features" section with params and n_features, a "classes" list of names."""
    def bad(field, expected, value):
        return EnsembleFileError(f"{path}: field {field!r} must be {expected}, got {type(value).__name__} {value!r:.60}")

    if not isinstance(desc, dict) or desc.get("format") != FORMAT or desc.get("format_version") != FORMAT_VERSION:
        raise EnsembleFileError(f"{path}: not a {FORMAT} v{FORMAT_VERSION} descriptor (fields 'format', 'format_version')")
    members = desc.get("members")
    if not isinstance(members, list) or not members:
        raise EnsembleFileError(f"{path}: field 'members' must be a non-empty list (damaged or not an ensemble)")
    names = set()
    for i, m in enumerate(members):
        missing = [k for k in _MEMBER_KEYS if not isinstance(m, dict) or k not in m]
        if missing:
            raise EnsembleFileError(f"{path}: member entry {i} (field 'members[{i}]') lacks {', '.join(missing)}")
        if not isinstance(m["name"], str) or not m["name"] or m["name"] in names:
            raise bad(f"members[{i}].name", "a unique non-empty string", m["name"])
        names.add(m["name"])
        if m["kind"] not in KINDS:
            raise EnsembleFileError(f"{path}: member {m['name']!r} has unknown kind {m['kind']!r} "
                                    f"(field 'members[{i}].kind'); valid: {', '.join(KINDS)}")
        try:
            check_relative_file(path, f"members[{i}].file", m["file"])
            check_sha(path, f"members[{i}].sha256", m["sha256"])
        except ArtifactError as e:
            raise EnsembleFileError(str(e)) from None
        w = m["weight"]
        if not isinstance(w, (int, float)) or isinstance(w, bool) or not np.isfinite(w) or w < 0:
            raise bad(f"members[{i}].weight", "a finite number >= 0", w)
    if sum(float(m["weight"]) for m in members) <= 0:
        raise EnsembleFileError(f"{path}: the members' weights (field 'members[*].weight') sum to <= 0")
    feats = desc.get("features")
    if not isinstance(feats, dict) or not isinstance(feats.get("params"), dict):
        raise bad("features", "an object with \"params\" (object) and \"n_features\" (integer)", feats)
    n = feats.get("n_features")
    if not isinstance(n, int) or isinstance(n, bool) or n <= 0:
        raise bad("features.n_features", "a positive integer", n)
    classes = desc.get("classes")
    if not isinstance(classes, list) or not classes or not all(isinstance(c, str) for c in classes):
        raise bad("classes", "a non-empty list of class names", classes)
    for key in ("tta_mirror",):
        if key in desc and not isinstance(desc[key], bool):
            raise bad(key, "true or false", desc[key])
    for key in ("landmark_method",):
        if key in desc and not isinstance(desc[key], str):
            raise bad(key, "a string", desc[key])
    if "box_scale" in desc and (not isinstance(desc["box_scale"], (int, float)) or isinstance(desc["box_scale"], bool)
                                or not np.isfinite(desc["box_scale"]) or desc["box_scale"] <= 0):
        raise bad("box_scale", "a finite number > 0", desc["box_scale"])
    return desc


def search(kind: str, grid: Sequence[Mapping], X: np.ndarray, y: np.ndarray, X_val: np.ndarray,
           y_val: np.ndarray, n_jobs: int = 2, progress: bool = True) -> tuple[object, dict, list[dict]]:
    """Fit ``kind`` with each params dict of ``grid`` on (X, y); keep the best by validation accuracy.

    Returns (best fitted model, its params, [{"params", "val_accuracy", "val_log_loss", "seconds",
    "n_trees"?}, ...]). Only validation data is used to choose; test data never enters.
    """
    from sklearn.metrics import log_loss
    from tqdm.auto import tqdm

    results, best = [], (-1.0, None, None)
    for params in tqdm(list(grid), desc=f"search {kind}", disable=not progress):
        t0 = time.perf_counter()
        model = fit_member(make_member(kind, params, n_jobs), X, y, X_val, y_val, n_jobs)
        seconds = time.perf_counter() - t0
        with threadpool_limits(n_jobs):
            p = model.predict_proba(X_val)
        acc = float((p.argmax(1) == np.asarray(y_val)).mean())
        row = {"params": dict(params), "val_accuracy": acc, "val_log_loss": float(log_loss(y_val, p, labels=range(p.shape[1]))),
               "seconds": seconds}
        if kind == "xgboost":
            row["n_trees_per_class"] = int(model.get_booster().num_boosted_rounds())
        results.append(row)
        if acc > best[0]:
            best = (acc, model, dict(params))
    return best[1], best[2], results


def permutation_importance(predict_proba, X: np.ndarray, y: np.ndarray, names: Sequence[str],
                           candidates: Sequence[str] | None = None, n_repeats: int = 3, max_rows: int = 1000,
                           seed: int = 0) -> dict[str, float]:
    """{feature: mean drop in accuracy when that column is shuffled}, over ``candidates`` (default all),
    on at most ``max_rows`` rows of (X, y). ``predict_proba``: (n, f) -> (n, c). Sorted, largest first."""
    rng = np.random.default_rng(seed)
    rows = rng.permutation(len(X))[:max_rows]
    X, y = np.array(X[rows], dtype=np.float64), np.asarray(y)[rows]
    base = float((predict_proba(X).argmax(1) == y).mean())
    index = {n: i for i, n in enumerate(names)}
    out = {}
    for name in (candidates if candidates is not None else names):
        j = index[name]
        keep = X[:, j].copy()
        drops = []
        for _ in range(n_repeats):
            X[:, j] = rng.permutation(keep)
            drops.append(base - float((predict_proba(X).argmax(1) == y).mean()))
        X[:, j] = keep
        out[name] = float(np.mean(drops))
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))


def coefficient_importance(model, names: Sequence[str]) -> dict[str, float]:
    """{feature: mean |coefficient|} of a standardised logistic regression pipeline, normalised to sum 1."""
    coef = np.abs(model.steps[-1][1].coef_).mean(axis=0)
    coef = coef / (coef.sum() or 1.0)
    return dict(sorted(zip(names, coef.tolist()), key=lambda kv: -kv[1]))


def member_importance(ensemble: "LandmarkEnsemble", name: str, X_val: np.ndarray, y_val: np.ndarray,
                      names: Sequence[str], n_candidates: int = 60) -> tuple[dict[str, float], str]:
    """({feature: importance}, how it was measured) of member ``name`` of ``ensemble``, or of the whole ensemble
    (``name="ensemble"``): XGBoost gain for ``xgboost``, mean |coefficient| for ``logreg``, otherwise the
    permutation importance on validation data (:func:`permutation_importance`, 2 repeats, at most 1500 rows)
    over the ``n_candidates`` features with the largest gain of the ensemble's ``xgboost`` member (to bound the
    cost). ValueError for an unknown name or when a permutation importance has no ``xgboost`` member."""
    if name != "ensemble" and name not in ensemble.members:
        raise ValueError(f"unknown member {name!r}; members: {', '.join(ensemble.members)} (or 'ensemble')")
    kind = member_kind(ensemble.members[name]) if name in ensemble.members else None
    if kind == "xgboost":
        return feature_importance(ensemble.members[name], names), "XGBoost total gain (share)"
    if kind == "logreg":
        return (coefficient_importance(ensemble.members[name], names),
                "mean |coefficient| on standardised features (share)")
    if "xgboost" not in ensemble.members:
        raise ValueError("a permutation importance picks its candidate features by the 'xgboost' member's gain; "
                         f"members: {', '.join(ensemble.members)}")
    candidates = list(feature_importance(ensemble.members["xgboost"], names))[:n_candidates]
    predict = ensemble.members[name].predict_proba if name in ensemble.members else ensemble.predict_proba
    return (permutation_importance(predict, X_val, y_val, names, candidates, n_repeats=2, max_rows=1500),
            "val accuracy drop when shuffled (permutation)")


def save_importance_png(importance: Mapping[str, float], path: str | Path, title: str = "", top: int = 20,
                        xlabel: str = "importance") -> Path:
    """Horizontal bar chart of the ``top`` largest importances, written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    items = sorted(importance.items(), key=lambda kv: -kv[1])[:top][::-1]
    fig, ax = plt.subplots(figsize=(7, 0.28 * len(items) + 1.2))
    ax.barh([k for k, _ in items], [v for _, v in items], color="#4c72b0")
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    fig.tight_layout()
    with _atomic.atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return Path(path)
