"""Choosing and fitting the landmark track on validation data: the steps of ``experiments/landmarks.py``.

- :func:`study_splits`: image keys and labels per split (a seeded training subset for smoke runs);
- :func:`landmark_record`: what a landmark extraction cost and where it failed;
- :class:`TrackFeatures`: geometric features of every split and of its mirror images, computed once, and the
  feature matrices of any :class:`~.appearance.FaceFeatures` from them and the raw appearance descriptors
  (:class:`AppearanceBlocks`, read by :func:`fer2013_appearance` from the FER2013 descriptor cache);
- :func:`parse_spec` / :func:`spec_of`: appearance settings as ``descriptor:sites:patch:cells:pca`` strings;
- :func:`screen_candidates`: every appearance candidate scored on val by one quick, fixed XGBoost
  (:func:`quick_val_accuracy`, :data:`SCREEN_XGB`), alone and with geometry; the best with geometry is chosen;
- :func:`fit_ensemble` / :func:`fit_ablation`: the soft-vote ensemble of :data:`MEMBERS` fitted on train + mirror
  images (:meth:`.models.LandmarkEnsemble.fit`), weights and mirror TTA chosen on val
  (:meth:`~.models.LandmarkEnsemble.choose_weights`), on geometry, appearance, and both (the ablation);
- :func:`split_probas`: member and ensemble probabilities per split (mirror TTA as chosen);
- :func:`training_record` / :func:`write_ablation`: what was chosen, and the screen + ablation tables;
- :func:`ship_if_better` / :func:`record_shipped`: copy a saved model into the models folder only if it beats
  the shipped one on val, and record it in the manifest.

Val (PublicTest) chooses every setting; test (PrivateTest) is only scored, by the caller. Dicts keyed by split
hold arrays in :data:`fer_hybrid.data.SPLITS` order.
"""
from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np

from .. import _atomic, artifacts
from ..data import SPLITS
from .appearance import FaceFeatures, LandmarkAppearance
from .extract import extract_appearance_fer2013, failure_rates
from .features import LandmarkFeatures, mirror_points
from .models import LandmarkEnsemble, make_member
from .predictor import model_files

METHOD = "fixed-mirror"  # the landmark method the geometry-only run chose on val
# appearance candidates scored on val: descriptor:sites:patch(inter-ocular units):cells:pca (descriptors
# compared at PCA 64; HOG also without PCA, at three patch sizes, 2x2 / 3x3 cells, three site sets)
CANDIDATES = ("hog:core:0.5:2:64", "lbp:core:0.5:2:64", "gabor:core:0.5:2:64",
              "hog:core:0.5:2:none", "hog:core:0.35:2:none", "hog:core:0.7:2:none", "hog:core:0.5:3:none",
              "hog:corners:0.5:2:none", "hog:full:0.5:2:none")
# the quick, fixed XGBoost of the screen
SCREEN_XGB = dict(n_estimators=400, learning_rate=0.25, max_depth=4, max_bin=32, subsample=0.8, colsample_bytree=0.3,
                  min_child_weight=5, reg_lambda=5, early_stopping_rounds=20)
# member settings: the val-best of the geometry-only run's grids (experiments/reports/landmarks-*/report.json "search")
MEMBERS = {
    "xgboost": dict(n_estimators=1500, learning_rate=0.12, max_bin=64, subsample=0.8, early_stopping_rounds=30,
                    max_depth=6, colsample_bytree=0.2, min_child_weight=10, reg_lambda=10, gamma=0.5),
    "hgb": dict(learning_rate=0.12, max_iter=800, early_stopping=True, n_iter_no_change=30, max_bins=64,
                max_leaf_nodes=31, min_samples_leaf=80, l2_regularization=30.0, max_features=0.2),
    "mlp": dict(hidden_layer_sizes=(512,), alpha=1e-1, learning_rate_init=1e-3, batch_size=256, max_iter=200,
                n_iter_no_change=10),
    "logreg": dict(C=0.01),
}
PARTS = ("geometry", "appearance", "both")
TITLES = {"xgboost": "XGBoost", "hgb": "HistGradientBoosting", "mlp": "MLP", "logreg": "logistic regression",
          "ensemble": "soft-vote ensemble"}
SPEC_FORMAT = "descriptor:sites:patch:cells:pca, e.g. hog:core:0.5:2:64"

Log = Callable[[str], object] | None


def _say(log: Log, message: str) -> None:
    if log is not None:
        log(message)


# ------------------------------------------------------------------------------------------------
# data and landmarks
# ------------------------------------------------------------------------------------------------
def study_splits(data, subset: int | None = None, seed: int = 0) -> tuple[dict, dict]:
    """({split: image keys}, {split: labels}) of a :class:`fer_hybrid.data.FER2013`; with ``subset``, a seeded
    random ``subset`` of the training faces (kept in their original order); val and test stay whole."""
    rows = np.arange(len(data.train.y))
    if subset:
        if subset < 0:
            raise ValueError(f"subset must be a positive number of training faces, got {subset}")
        rows = np.sort(np.random.default_rng(seed).permutation(len(rows))[:subset])
    keys = {"train": data.train.keys[rows], "val": data.val.keys, "test": data.test.keys}
    y = {"train": data.train.y[rows], "val": data.val.y, "test": data.test.y}
    return keys, y


def landmark_record(ext, points: Mapping[str, np.ndarray], y: Mapping[str, np.ndarray], classes: Sequence[str]) -> dict:
    """The report's record of a landmark extraction (:class:`.extract.Extraction`): method, size, time, and the
    failure rates (faces without landmarks) of all seven classes and, per class, of each split's ``points``."""
    failed = {s: ~np.isfinite(points[s]).all(axis=(1, 2)) for s in points}
    return {"method": ext.method, "n_images": len(ext.keys), "seconds": ext.seconds,
            "faces_per_second": ext.faces_per_second, "n_jobs": ext.n_jobs, "upscale": ext.upscale,
            "failure_rate_all_7_classes": float(ext.failed.mean()),
            "failure": {s: failure_rates(failed[s], y[s], classes) for s in points}}


# ------------------------------------------------------------------------------------------------
# features per split
# ------------------------------------------------------------------------------------------------
@dataclasses.dataclass
class AppearanceBlocks:
    """Raw appearance descriptors (before any PCA) per split, of the faces (``raw``) and of their mirror images
    (``raw_mirror``); ``record``: what their extraction cost (for the report)."""

    raw: dict
    raw_mirror: dict
    record: dict | None = None


def fer2013_appearance(source, app: LandmarkAppearance, keys: Mapping[str, np.ndarray], method: str = METHOD,
                       n_jobs: int = 1, refresh: bool = False) -> AppearanceBlocks:
    """:class:`AppearanceBlocks` of ``app``'s descriptor at the ``method`` landmarks of the FER2013 images
    ``keys`` {split: image keys}, from the descriptor cache (:func:`.extract.extract_appearance_fer2013`;
    ``refresh`` recomputes and re-times it)."""
    a = extract_appearance_fer2013(source, app, method, n_jobs=n_jobs, refresh=refresh)
    record = {"settings": app.descriptor_params(), "n_raw": app.n_raw, "seconds": a.seconds,
              "faces_per_second": 2 * len(a.keys) / a.seconds if a.seconds > 0 else None,
              "note": "one process; the faces and their mirror images (2 x n_images descriptors)"}
    return AppearanceBlocks({s: a.rows_for(k) for s, k in keys.items()},
                            {s: a.rows_for(k, mirror=True) for s, k in keys.items()}, record)


class TrackFeatures:
    """Feature blocks of the landmark track per split, for the faces and for their mirror images.

    ``points`` {split: float (n, 68, 2)} landmarks: the geometric features (:class:`.features.LandmarkFeatures`)
    ``G`` and ``G_mirror`` (of the mirrored landmarks) are computed here, once. ``appearance_of``: a
    LandmarkAppearance -> :class:`AppearanceBlocks` callable (e.g. :func:`fer2013_appearance` with the source and
    keys bound) for :meth:`appearance`.
    """

    def __init__(self, points: Mapping[str, np.ndarray],
                 appearance_of: Callable[[LandmarkAppearance], AppearanceBlocks] | None = None):
        if "train" not in points:
            raise ValueError(f"points need a 'train' split; got {', '.join(points) or 'none'}")
        self.geometry = LandmarkFeatures().fit(points["train"])
        self.G = {s: self.geometry.transform(p) for s, p in points.items()}
        self.G_mirror = {s: self.geometry.transform(mirror_points(p)) for s, p in points.items()}
        self.appearance_of = appearance_of

    def appearance(self, app: LandmarkAppearance) -> AppearanceBlocks:
        """The raw descriptors of ``app`` per split (through ``appearance_of``)."""
        if self.appearance_of is None:
            raise ValueError("these TrackFeatures were made without appearance_of: no appearance descriptors")
        return self.appearance_of(app)

    def matrices(self, features: FaceFeatures, blocks: AppearanceBlocks | None = None) -> tuple[dict, dict]:
        """({split: X}, {split: X of the mirror images}): float64 (n, f) columns of ``features`` (geometry from
        ``G``/``G_mirror``, appearance as ``features.appearance`` projects ``blocks``; each part only if on)."""
        app = features.appearance
        if app is not None and blocks is None:
            raise ValueError("features with appearance need its AppearanceBlocks")

        def side(G: dict, raw: dict | None) -> dict:
            return {s: features.combine(G[s] if features.geometry is not None else None,
                                        app.project(raw[s]) if app is not None else None) for s in G}

        return side(self.G, blocks and blocks.raw), side(self.G_mirror, blocks and blocks.raw_mirror)


# ------------------------------------------------------------------------------------------------
# appearance choice on val
# ------------------------------------------------------------------------------------------------
def parse_spec(spec: str) -> LandmarkAppearance:
    """LandmarkAppearance from ``descriptor:sites:patch:cells:pca`` (pca ``none`` keeps the raw columns);
    ValueError naming the SPEC format."""
    try:
        descriptor, sites, patch, cells, pca = spec.split(":")
        return LandmarkAppearance(descriptor, sites, float(patch), int(cells), pca=None if pca == "none" else int(pca))
    except ValueError as e:
        raise ValueError(f"bad appearance SPEC {spec!r} ({SPEC_FORMAT}): {e}") from None


def spec_of(app: LandmarkAppearance) -> str:
    """The ``descriptor:sites:patch:cells:pca`` SPEC of ``app`` (inverse of :func:`parse_spec`)."""
    p = app.get_params()
    return f"{p['descriptor']}:{p['sites']}:{p['patch']:g}:{p['cells']}:{p['pca'] if p['pca'] is not None else 'none'}"


def quick_val_accuracy(X_train: np.ndarray, y_train: np.ndarray, X_val: np.ndarray, y_val: np.ndarray,
                       params: Mapping = SCREEN_XGB, n_jobs: int = 1) -> float:
    """Val accuracy of one fixed XGBoost with ``params`` (early stopping on val) fitted on (X_train, y_train)."""
    ens = LandmarkEnsemble({"xgboost": make_member("xgboost", params, n_jobs)}, n_jobs=n_jobs)
    ens.fit(X_train, y_train, X_val, y_val)
    return float((ens.predict_proba(X_val).argmax(1) == y_val).mean())


def screen_candidates(candidates: Sequence[LandmarkAppearance], features: TrackFeatures, y: Mapping[str, np.ndarray],
                      n_jobs: int = 1, params: Mapping = SCREEN_XGB,
                      log: Log = None) -> tuple[list[dict], dict, LandmarkAppearance]:
    """Score every candidate on val with :func:`quick_val_accuracy` (training faces only, no mirror images) on
    appearance alone (``val_appearance``) and on geometry + appearance (``val_both``); each candidate's PCA is
    fitted on the training faces. Returns ([row per candidate], the geometry-only row, the candidate with the
    best ``val_both``, the first on ties)."""
    if not candidates:
        raise ValueError("no appearance candidates to screen")
    G, rows = features.G, []
    for app in candidates:
        blocks = features.appearance(app)
        app.fit(raw=blocks.raw["train"])
        A = {s: app.project(blocks.raw[s]) for s in ("train", "val")}
        row = {"spec": spec_of(app), "settings": app.get_params(), "n_raw": app.n_raw,
               "extraction_seconds": (blocks.record or {}).get("seconds")}
        for part, (tr, va) in {"appearance": (A["train"], A["val"]),
                               "both": (np.hstack([G["train"], A["train"]]), np.hstack([G["val"], A["val"]]))}.items():
            row[f"val_{part}"] = quick_val_accuracy(tr, y["train"], va, y["val"], params, n_jobs)
        rows.append(row)
        _say(log, f"screen {row['spec']}: appearance {row['val_appearance']:.4f}, geometry + appearance "
                  f"{row['val_both']:.4f}")
    row_geo = {"spec": "geometry only",
               "val_both": quick_val_accuracy(G["train"], y["train"], G["val"], y["val"], params, n_jobs)}
    _say(log, f"screen geometry only: {row_geo['val_both']:.4f}")
    best = max(range(len(rows)), key=lambda i: rows[i]["val_both"])
    _say(log, f"chosen appearance: {rows[best]['spec']}")
    return rows, row_geo, candidates[best]


# ------------------------------------------------------------------------------------------------
# ensembles (train + mirror images; weights and mirror TTA on val)
# ------------------------------------------------------------------------------------------------
def fit_ensemble(X: Mapping[str, np.ndarray], X_mirror: Mapping[str, np.ndarray], y: Mapping[str, np.ndarray],
                 members: Mapping[str, Mapping] = MEMBERS, n_jobs: int = 1,
                 method: str = METHOD) -> tuple[LandmarkEnsemble, dict]:
    """A :class:`.models.LandmarkEnsemble` of ``members`` {kind: params} fitted on the training faces plus their
    mirror images (early stopping on val), soft-vote weights (0.1 simplex grid) and mirror TTA chosen on val.
    Returns (ensemble, {"no_tta": val accuracy, "mirror_tta": val accuracy})."""
    ens = LandmarkEnsemble({k: make_member(k, params, n_jobs) for k, params in members.items()}, n_jobs=n_jobs,
                           landmark_method=method)
    ens.fit(X["train"], y["train"], X["val"], y["val"], X_mirror=X_mirror["train"])
    return ens, ens.choose_weights(X["val"], y["val"], X_mirror["val"])


@dataclasses.dataclass
class FittedPart:
    """One ensemble of the ablation: the ensemble, its features, their matrices per split (faces, mirror
    images) and the val accuracy of its weights without / with mirror TTA."""

    ensemble: LandmarkEnsemble
    features: FaceFeatures
    X: dict
    X_mirror: dict
    weights_val_accuracy: dict

    def record(self) -> dict:
        e = self.ensemble
        return {"n_features": self.X["train"].shape[1], "weights": e.weights, "mirror_tta": e.tta_mirror,
                "weights_val_accuracy": self.weights_val_accuracy, "fit_seconds": e.fit_seconds}

    def proba(self) -> dict:
        """{split: float64 (n, c)} ensemble probabilities (mirror TTA as chosen)."""
        return {s: self.ensemble.predict_proba(self.X[s], self.X_mirror[s]) for s in self.X}

    def describe(self, name: str, part: str, spec: str | None) -> dict:
        """The fields a report on this ensemble (``part`` of the ablation of run ``name``, appearance SPEC
        ``spec``) records about it: parameters, what it is, weights, mirror TTA, columns, appearance."""
        e, n = self.ensemble, self.X["train"].shape[1]
        return {"params": e.n_params(), "backbone": f"dlib 68 points -> {part} ({n} features) -> soft-vote ensemble",
                "notes": f"ablation of {name}: the same members, weights and TTA chosen on val, on {part} features "
                         "only; not saved", "ensemble_weights": e.weights, "mirror_tta": e.tta_mirror,
                "n_features": n, "appearance": spec if self.features.appearance is not None else None}


def fit_ablation(features: TrackFeatures, app: LandmarkAppearance, blocks: AppearanceBlocks,
                 y: Mapping[str, np.ndarray], members: Mapping[str, Mapping] = MEMBERS, n_jobs: int = 1,
                 parts: Sequence[str] = PARTS, method: str = METHOD, log: Log = None) -> dict[str, FittedPart]:
    """{part: :class:`FittedPart`} of :func:`fit_ensemble` on each of ``parts`` ("geometry", "appearance",
    "both"), after refitting ``app``'s PCA on the training faces and their mirror images (``blocks``)."""
    unknown = set(parts) - set(PARTS)
    if unknown:
        raise ValueError(f"unknown ablation part(s) {sorted(unknown)}; valid: {', '.join(PARTS)}")
    app.fit(raw=np.concatenate([blocks.raw["train"], blocks.raw_mirror["train"]]))
    fitted = {}
    for part in parts:
        feats = FaceFeatures(features.geometry if part != "appearance" else None, app if part != "geometry" else None)
        X, X_mirror = features.matrices(feats, blocks)
        ens, choice = fit_ensemble(X, X_mirror, y, members, n_jobs, method)
        fitted[part] = FittedPart(ens, feats, X, X_mirror, choice)
        _say(log, f"ensemble[{part}]: {X['train'].shape[1]} features, weights {ens.weights}, mirror TTA "
                  f"{ens.tta_mirror}, val {max(choice.values()):.4f}")
    return fitted


def split_probas(ens: LandmarkEnsemble, X: Mapping[str, np.ndarray], X_mirror: Mapping[str, np.ndarray]) -> dict:
    """{member or "ensemble": {split: float64 (n, c)}}: each member's probabilities (averaged with the mirror
    images' when the ensemble uses mirror TTA) and their weighted soft vote."""
    member_p = {s: ens.member_proba(X[s], X_mirror[s]) for s in X}
    out = {k: {s: member_p[s][k] for s in X} for k in ens.members}
    out["ensemble"] = {s: ens.combine(member_p[s]) for s in X}
    return out


def describe_chosen(ens: LandmarkEnsemble, key: str, training: Mapping, n_features: int, upscale: int,
                    when_timed: str = "") -> dict:
    """The fields a report on member ``key`` of the chosen model, or on the whole model (``key="ensemble"``),
    records about it: parameters, what it is (backbone, notes; ``when_timed`` ends the note on the batch-1
    timing), its inputs (landmark method, ``n_features`` columns, image size, landmark ``upscale``, appearance,
    mirror training), the member settings and fit seconds of ``training`` (:func:`training_record`), and for the
    ensemble its weights, mirror TTA and their val accuracy. ValueError for an unknown key."""
    if key != "ensemble" and key not in ens.members:
        raise ValueError(f"unknown member {key!r}; members: {', '.join(ens.members)} (or 'ensemble')")
    one, spec, title = key != "ensemble", training["appearance"], TITLES.get(key, key)
    out = {"params": ens.n_params(key if one else None),
           "backbone": f"dlib 68 points -> {n_features} features (geometry + appearance {spec}) -> {title}",
           "notes": f"{title} on {n_features} features: geometry and {spec} appearance at the landmarks of the "
                    f"eye-levelled 48 px face; settings chosen on val (PublicTest) only; landmarks: "
                    f"{training['landmark_method']} box on the {upscale}x upscaled image; trained on train + its mirror "
                    f"images ({training['n_train_rows']} rows); train metrics are on the original training faces; "
                    f"batch-1 timing is of the whole ensemble{when_timed}",
           "landmark_method": training["landmark_method"], "n_features": n_features, "image_size": 48,
           "upscale": upscale, "appearance": spec, "mirror_train": training["mirror_train"],
           "members": training["members"].get(key) if one else training["members"],
           "fit_seconds": training["fit_seconds"].get(key) if one else training["fit_seconds"]}
    if not one:
        out.update(ensemble_weights=ens.weights, mirror_tta=ens.tta_mirror,
                   weights_val_accuracy=training["weights_val_accuracy"])
    return out


# ------------------------------------------------------------------------------------------------
# records and tables
# ------------------------------------------------------------------------------------------------
def training_record(app: LandmarkAppearance, chosen: FittedPart, screen: list[dict], screen_geometry_only: dict,
                    n_train: int, command: str, subset: int | None = None, members: Mapping = MEMBERS,
                    screen_params: Mapping = SCREEN_XGB, method: str = METHOD) -> dict:
    """The ``"training"`` section saved with the chosen model (and read back by ``--reuse``): its appearance,
    members, the screen, and the fit; ``n_train`` training faces (mirror training doubles the rows)."""
    return {"landmark_method": method, "appearance": spec_of(app), "members": dict(members), "mirror_train": True,
            "n_train_rows": 2 * n_train, "command": command, "subset": subset, "screen": screen,
            "screen_geometry_only": screen_geometry_only, "screen_xgboost": dict(screen_params),
            "fit_seconds": chosen.ensemble.fit_seconds, "weights_val_accuracy": chosen.weights_val_accuracy}


def write_ablation(out_dir: str | Path, fitted: Mapping[str, FittedPart], metrics: Mapping[str, Mapping[str, dict]],
                   training: Mapping) -> Path:
    """``ablation.json`` + ``ablation.md`` in ``out_dir``: the val screen of appearance candidates (from
    ``training``, :func:`training_record`) and the ensembles of the ablation (``fitted``, :func:`fit_ablation`)
    with their val and test accuracy (``metrics`` {part: {split: {"accuracy": ...}}}). Returns the Markdown path."""
    out_dir = Path(out_dir)
    member_names = list(training["members"])
    screen, row_geo = training["screen"], training["screen_geometry_only"]
    rows = {part: {**f.record(), **{s: metrics[part][s]["accuracy"] for s in ("val", "test")}}
            for part, f in fitted.items()}
    out = {"screen": screen, "screen_geometry_only": row_geo, "screen_xgboost": training["screen_xgboost"],
           "ensembles": rows, "chosen_appearance": training["appearance"], "command": training["command"],
           "subset": training["subset"]}
    lines = ["# Landmark track: geometry vs appearance at the landmarks", "",
             f"Command: `{training['command']}`" + (f" (training subset of {training['subset']} faces)"
                                                     if training["subset"] else ""), "",
             "## Appearance screen (val only)", "",
             "One quick, fixed XGBoost (`screen_xgboost` in ablation.json) per candidate, trained on the training "
             "faces without mirror images, early stopping on val. SPEC = descriptor:sites:patch (inter-ocular units):"
             "cells:PCA columns.", "",
             "| SPEC | raw columns | val, appearance only | val, geometry + appearance |", "|---|---:|---:|---:|",
             f"| geometry only | – | – | {row_geo['val_both']:.4f} |"]
    lines += [f"| {r['spec']} | {r['n_raw']} | {r['val_appearance']:.4f} | {r['val_both']:.4f} |" for r in screen]
    lines += ["", f"Chosen on val: `{training['appearance']}`.", "",
              "## Ablation: the full ensemble on each feature set", "",
              "XGBoost, HistGradientBoosting, MLP and logistic regression trained on train + mirror images; weights "
              "and mirror TTA chosen on val; test reported once.", "",
              f"| features | columns | weights ({', '.join(member_names)}) | mirror TTA | val | test |",
              "|---|---:|---|---|---:|---:|"]
    for part, r in rows.items():
        w = ", ".join(f"{r['weights'].get(k, 0):.1f}" for k in member_names)
        lines.append(f"| {part} | {r['n_features']} | {w} | {r['mirror_tta']} | {r['val']:.4f} | {r['test']:.4f} |")
    out_dir.mkdir(parents=True, exist_ok=True)
    _atomic.write_text(out_dir / "ablation.json", json.dumps(out, indent=2, default=float) + "\n")
    return _atomic.write_text(out_dir / "ablation.md", "\n".join(lines) + "\n")


# ------------------------------------------------------------------------------------------------
# shipping
# ------------------------------------------------------------------------------------------------
def ship_if_better(json_path: str | Path, models_root: str | Path, val_accuracy: float, name: str = "landmarks",
                   log: Log = None) -> Path | None:
    """Copy the saved model ``json_path`` (``ensemble.json``) and every file it names into ``models_root/name/``
    if ``val_accuracy`` beats the val accuracy the manifest records for ``name`` (or nothing is recorded);
    files of the previous model that the new one does not use are removed. Returns the shipped
    ``ensemble.json``, None when not shipped."""
    json_path, ship_dir = Path(json_path), Path(models_root) / name
    shipped = artifacts.read_manifest(models_root).get("models", {}).get(name)
    if shipped and val_accuracy <= shipped["metrics"]["val"]["accuracy"]:
        _say(log, f"not shipped: val {val_accuracy:.4f} does not beat the shipped {name} model's "
                  f"{shipped['metrics']['val']['accuracy']:.4f}")
        return None
    old = model_files(ship_dir / "ensemble.json") if (ship_dir / "ensemble.json").exists() else []
    new = model_files(json_path)
    for f in [*new, json_path]:   # the descriptor last: it names the files already in place
        with _atomic.atomic_path(ship_dir / f.name) as tmp:
            shutil.copyfile(f, tmp)
    for f in old:
        if f.name not in {g.name for g in new}:
            f.unlink(missing_ok=True)
    _say(log, f"shipped to {ship_dir} (val {val_accuracy:.4f})")
    return ship_dir / "ensemble.json"


def record_shipped(json_path: str | Path, models_root: str | Path, metrics: Mapping[str, dict], *, command: str,
                   data: dict, report: str | None, name: str = "landmarks") -> dict:
    """Record the shipped model ``json_path`` (descriptor + every file it names) as ``name`` in the manifest of
    ``models_root`` with the accuracy and macro-F1 of ``metrics`` {split: metrics}; returns the entry."""
    return artifacts.update_manifest(
        name, json_path, root=models_root, weights=None, command=command, data=data,
        metrics={s: {"accuracy": metrics[s]["accuracy"], "macro_f1": metrics[s]["macro_f1"]} for s in SPLITS},
        report=report, extra_files=[str(f) for f in model_files(json_path)])
