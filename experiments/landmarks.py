"""Landmark track: dlib 68 points -> geometry + local appearance at the landmarks -> gradient-boosted ensemble.

Method
1. Data. FER2013 restricted to the five study emotions. Training fits, PublicTest ("val") chooses every
   setting (descriptor, patch, site set, PCA size, ensemble weights, mirror TTA), PrivateTest ("test") is
   only reported.
2. Landmarks. dlib's 68-point shape predictor on each 48x48 image upscaled 4x with the full-image box,
   averaged with the mirrored landmarks of the flipped image (``fixed-mirror``: the method the geometry-only
   run chose on val, see ``method_comparison`` in experiments/reports/landmarks-ensemble). All 35,887
   images, cached as .npz by data sha256.
3. Features. Geometry: LandmarkFeatures (eye-centred, inter-ocular-scaled, de-rotated coordinates, named
   distances, ratios, angles, curvatures, symmetry terms, key-point pairwise distances). Appearance:
   LandmarkAppearance (HOG / LBP / Gabor on small patches of the eye-levelled face around sites at the
   landmarks: brows, glabella, eye corners, nose, nasolabial folds, mouth corners and lips), reduced by a
   PCA fitted on the training faces. Raw descriptors are cached by data sha256 + settings.
4. Appearance choice on val. Every candidate in CANDIDATES (or --candidates) is scored with one quick,
   fixed XGBoost on the training faces (no mirror images, to bound the cost) on appearance alone and on
   geometry + appearance; the candidate with the best geometry + appearance val accuracy is kept.
5. Ensembles. XGBoost (early stopping on val), HistGradientBoosting, an MLP and logistic regression with
   the settings chosen on val by the geometry-only run (MEMBERS), fitted by LandmarkEnsemble.fit on the
   training faces plus their mirror images (flipped faces with mirrored landmarks); soft-vote weights on a
   0.1 simplex grid and mirror TTA chosen on val. Three feature sets, the ablation: geometry only,
   appearance only, geometry + appearance.
6. Results. Reports for the geometry + appearance ensemble and its members (<name>-*), for the two ablation
   ensembles (<name>-geometry, <name>-appearance), and the screen + ablation tables
   (<name>-ablation/ablation.md). The chosen model is saved to experiments/checkpoints/<name>/ (--save).

``--reuse`` loads the saved model instead of fitting, re-evaluates it (test through the predictor too),
re-times batch-1 inference and rewrites its reports (with ``--no-cache`` it also re-extracts, re-timing the
extraction); ``--ship`` then copies it to models/landmarks/ and records it in the manifest, only if its val
accuracy beats the shipped landmark model's.

    python experiments/landmarks.py [--data PATH] [--n-jobs 1] [--name landmarks-app] [--candidates SPEC ...]
                                    [--appearance SPEC] [--save DIR] [--reuse] [--no-cache] [--ship] [--subset N]

A SPEC is ``descriptor:sites:patch:cells:pca`` (e.g. ``hog:core:0.5:2:64``; pca ``none`` keeps raw columns).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np

from fer_hybrid import _atomic, artifacts
from fer_hybrid.data import SPLITS, load_fer2013, resolve_source
from fer_hybrid.evaluate import metrics_from_proba, ms_per_face
from fer_hybrid.landmarks import models as lm
from fer_hybrid.landmarks.appearance import FaceFeatures, LandmarkAppearance
from fer_hybrid.landmarks.extract import extract_appearance_fer2013, extract_fer2013, failure_rates
from fer_hybrid.landmarks.features import LandmarkFeatures, mirror_points
from fer_hybrid.landmarks.predictor import load_landmark_predictor, model_files, save_landmark_model
from fer_hybrid.reports import artifact_info, make_report, write_report

ROOT = Path(__file__).resolve().parent.parent
REPORTS = ROOT / "experiments" / "reports"
CHECKPOINTS = ROOT / "experiments" / "checkpoints"
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "fer2013" / "fer2013_images.tar.gz"
METHOD = "fixed-mirror"

# appearance candidates scored on val (step 4): descriptor:sites:patch(inter-ocular units):cells:pca
# (descriptors compared at PCA 64; HOG also without PCA, at three patch sizes, 2x2 / 3x3 cells, three site sets)
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


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=None, help="FER2013 source (default $FER2013_PATH or ../shared/...)")
    ap.add_argument("--n-jobs", type=int, default=1, help="threads for fitting, processes for landmark extraction")
    ap.add_argument("--name", default="landmarks-app", help="report prefix (default landmarks-app)")
    ap.add_argument("--candidates", nargs="+", default=list(CANDIDATES), help="appearance SPECs scored on val")
    ap.add_argument("--appearance", default=None, help="skip the screen and use this SPEC")
    ap.add_argument("--save", default=None, help="model folder (default experiments/checkpoints/<name>)")
    ap.add_argument("--reuse", action="store_true", help="load the saved model instead of fitting")
    ap.add_argument("--no-cache", action="store_true", help="re-extract landmarks and appearance descriptors, re-timing "
                                                             "the extraction (run it with the machine otherwise idle) "
                                                             "and refreshing the caches")
    ap.add_argument("--ship", action="store_true", help="copy the model to models/landmarks and record it in the manifest "
                                                         "if it beats the shipped landmark model on val")
    ap.add_argument("--subset", type=int, default=None, help="seeded subset of N training faces (smoke runs)")
    ap.add_argument("--models", default=None, help="models folder (default: fer_hybrid.artifacts.models_dir())")
    ap.add_argument("--reports", default=str(REPORTS), help="reports folder (default experiments/reports)")
    return ap.parse_args(argv)


def parse_spec(spec: str) -> LandmarkAppearance:
    """LandmarkAppearance from ``descriptor:sites:patch:cells:pca``; ValueError naming the SPEC format."""
    try:
        descriptor, sites, patch, cells, pca = spec.split(":")
        return LandmarkAppearance(descriptor, sites, float(patch), int(cells), pca=None if pca == "none" else int(pca))
    except ValueError as e:
        raise ValueError(f"bad appearance SPEC {spec!r} (descriptor:sites:patch:cells:pca, e.g. hog:core:0.5:2:64): "
                         f"{e}") from None


def run(args: argparse.Namespace) -> int:
    source = resolve_source(args.data or os.environ.get("FER2013_PATH") or DEFAULT_DATA)
    save_dir = Path(args.save) if args.save else CHECKPOINTS / args.name
    reports = Path(args.reports)
    candidates = [parse_spec(s) for s in ([args.appearance] if args.appearance else args.candidates)]
    if args.reuse and not (save_dir / "ensemble.json").exists():
        raise FileNotFoundError(f"{save_dir / 'ensemble.json'} not found: train it first (without --reuse)")

    # 1. data (a seeded training subset for smoke runs)
    data = load_fer2013(source)
    train_rows = np.arange(len(data.train.y))
    if args.subset:
        train_rows = np.sort(np.random.default_rng(0).permutation(len(train_rows))[:args.subset])
    y = {"train": data.train.y[train_rows], "val": data.val.y, "test": data.test.y}
    keys = {"train": data.train.keys[train_rows], "val": data.val.keys, "test": data.test.keys}
    print(f"data: {source} train {len(y['train'])} val {len(y['val'])} test {len(y['test'])}")

    # 2. landmarks (cached .npz; times are of the original extraction)
    ext = extract_fer2013(source, METHOD, n_jobs=args.n_jobs, refresh=args.no_cache)
    points = {s: ext.points_for(keys[s]) for s in SPLITS}
    failed = {s: ~np.isfinite(points[s]).all(axis=(1, 2)) for s in SPLITS}
    extraction = {"landmarks": {"method": METHOD, "n_images": len(ext.keys), "seconds": ext.seconds,
                                "faces_per_second": ext.faces_per_second, "n_jobs": ext.n_jobs, "upscale": ext.upscale,
                                "failure_rate_all_7_classes": float(ext.failed.mean()),
                                "failure": {s: failure_rates(failed[s], y[s], data.classes) for s in SPLITS}}}
    print(f"landmarks[{METHOD}]: {len(ext.keys)} images in {ext.seconds:.1f} s ({ext.n_jobs} processes)")

    # 3. geometric features of the faces and of their mirror images
    geometry = LandmarkFeatures().fit(points["train"])
    G = {s: geometry.transform(points[s]) for s in SPLITS}
    G_mirror = {s: geometry.transform(mirror_points(points[s])) for s in SPLITS}

    def raw_appearance(app: LandmarkAppearance) -> tuple[dict, dict, dict]:
        """({split: raw}, {split: raw of the mirror images}, extraction record), cached per settings."""
        a = extract_appearance_fer2013(source, app, METHOD, n_jobs=args.n_jobs, refresh=args.no_cache)
        rec = {"settings": app.descriptor_params(), "n_raw": app.n_raw, "seconds": a.seconds,
               "faces_per_second": 2 * len(a.keys) / a.seconds if a.seconds > 0 else None,
               "note": "one process; the faces and their mirror images (2 x n_images descriptors)"}
        return ({s: a.rows_for(keys[s]) for s in SPLITS}, {s: a.rows_for(keys[s], mirror=True) for s in SPLITS}, rec)

    if args.reuse:
        predictor = load_landmark_predictor(save_dir / "ensemble.json", args.name)
        training = json.loads((save_dir / "ensemble.json").read_text())["training"]
        app = predictor.appearance
        raw, raw_mirror, extraction["appearance"] = raw_appearance(app) if app is not None else ({}, {}, None)
        X = {s: predictor.features.combine(G[s], app.project(raw[s]) if app else None) for s in SPLITS}
        X_mirror = {s: predictor.features.combine(G_mirror[s], app.project(raw_mirror[s]) if app else None)
                    for s in SPLITS}
        ens = predictor.ensemble
    else:
        # 4. appearance choice on val: quick fixed XGBoost, appearance alone and with geometry
        screen = []
        for app in candidates:
            raw, _, rec = raw_appearance(app)
            app.fit(raw=raw["train"])
            A = {s: app.project(raw[s]) for s in ("train", "val")}
            row = {"spec": spec_of(app), "settings": app.get_params(), "n_raw": app.n_raw,
                   "extraction_seconds": rec["seconds"]}
            for part, (tr, va) in {"appearance": (A["train"], A["val"]),
                                   "both": (np.hstack([G["train"], A["train"]]), np.hstack([G["val"], A["val"]]))}.items():
                row[f"val_{part}"] = quick_val(tr, y["train"], va, y["val"], args.n_jobs)
            screen.append(row)
            print(f"screen {row['spec']}: appearance {row['val_appearance']:.4f}, geometry + appearance "
                  f"{row['val_both']:.4f}")
        row_geo = {"spec": "geometry only", "val_both": quick_val(G["train"], y["train"], G["val"], y["val"], args.n_jobs)}
        print(f"screen geometry only: {row_geo['val_both']:.4f}")
        best = max(range(len(screen)), key=lambda i: screen[i]["val_both"])
        app = candidates[best]
        print(f"chosen appearance: {spec_of(app)}")

        # 5. the three ensembles of the ablation (the chosen appearance, PCA refitted on train + mirror images)
        raw, raw_mirror, extraction["appearance"] = raw_appearance(app)
        app.fit(raw=np.concatenate([raw["train"], raw_mirror["train"]]))
        ablation, fitted = {}, {}
        for part in PARTS:
            feats = FaceFeatures(geometry if part != "appearance" else None, app if part != "geometry" else None)
            Xp = {s: feats.combine(G[s] if feats.geometry else None, app.project(raw[s]) if feats.appearance else None)
                  for s in SPLITS}
            Xp_mirror = {s: feats.combine(G_mirror[s] if feats.geometry else None,
                                          app.project(raw_mirror[s]) if feats.appearance else None) for s in SPLITS}
            ens, choice = fit_ensemble(Xp, Xp_mirror, y, args.n_jobs)
            fitted[part] = (ens, feats, Xp, Xp_mirror)
            ablation[part] = {"n_features": Xp["train"].shape[1], "weights": ens.weights, "mirror_tta": ens.tta_mirror,
                              "weights_val_accuracy": choice, "fit_seconds": ens.fit_seconds}
            print(f"ensemble[{part}]: {Xp['train'].shape[1]} features, weights {ens.weights}, mirror TTA "
                  f"{ens.tta_mirror}, val {max(choice.values()):.4f}")
        ens, feats, X, X_mirror = fitted["both"]
        training = {"landmark_method": METHOD, "appearance": spec_of(app), "members": MEMBERS,
                    "mirror_train": True, "n_train_rows": 2 * len(y["train"]), "command": command_line(args),
                    "subset": args.subset, "screen": screen, "screen_geometry_only": row_geo,
                    "screen_xgboost": SCREEN_XGB, "fit_seconds": ens.fit_seconds,
                    "weights_val_accuracy": ablation["both"]["weights_val_accuracy"]}
        save_landmark_model(ens, save_dir, app, extra={"training": training, "box_scale": 1.0})
        predictor = load_landmark_predictor(save_dir / "ensemble.json", args.name)
        write_ablation(reports / f"{args.name}-ablation", screen, row_geo, ablation, fitted, y, data, training)
        for part in ("geometry", "appearance"):
            e, f, Xp, Xp_mirror = fitted[part]
            metrics = {s: metrics_from_proba(y[s], proba_of(e, Xp[s], Xp_mirror[s]), data.classes) for s in SPLITS}
            write_report(make_report(
                name=f"{args.name}-{part}", kind="landmarks", weights=None, command=training["command"], metrics=metrics,
                params=n_params(e, "ensemble"), backbone=f"dlib 68 points -> {part} ({Xp['train'].shape[1]} features) "
                                                         f"-> soft-vote ensemble",
                notes=f"ablation of {args.name}: the same members, weights and TTA chosen on val, on {part} features "
                      f"only; not saved", data={"source": str(source), "sha256": data.sha256},
                ensemble_weights=e.weights, mirror_tta=e.tta_mirror, n_features=Xp["train"].shape[1],
                appearance=spec_of(app) if part != "geometry" else None), reports / f"{args.name}-{part}")

    # 6. evaluate the chosen model: members and ensemble on cached features, test also through the predictor
    t0 = time.perf_counter()
    via_predictor = metrics_from_proba(data.test.y, predictor.predict_proba(data.test.x), data.classes)
    seconds_test = time.perf_counter() - t0
    face = data.test.x[0]
    load = os.getloadavg()
    ms = ms_per_face(lambda f: predictor.predict_proba(f[None]), face, repeats=200)
    timing = {"ms_per_face": ms, "load_average_1_5_15min": list(load), "cpu_count": os.cpu_count(),
              "note": "median of 200 batch-1 calls (gray 48x48 face -> landmarks -> features -> ensemble); the "
                      "load average shows whether other work shared the cores"}
    print(f"test through the predictor (images -> landmarks -> features -> ensemble): acc "
          f"{via_predictor['accuracy']:.4f} in {seconds_test:.1f} s; batch-1 {ms:.2f} ms/face (load {load[0]:.1f})")

    member_p = {s: ens.member_proba(X[s]) for s in SPLITS}
    if ens.tta_mirror:
        member_m = {s: ens.member_proba(X_mirror[s]) for s in SPLITS}
        member_p = {s: {k: (member_p[s][k] + member_m[s][k]) / 2 for k in member_p[s]} for s in SPLITS}
    results = {k: {s: member_p[s][k] for s in SPLITS} for k in ens.members}
    results["ensemble"] = {s: ens.combine(member_p[s]) for s in SPLITS}
    names = predictor.features.feature_names()
    json_path = save_dir / "ensemble.json"
    app_spec = training.get("appearance")
    common = dict(kind="landmarks", weights=None, command=training["command"], seconds_per_epoch=None,
                  data={"source": str(source), "sha256": data.sha256}, landmark_method=METHOD,
                  extraction=extraction, n_features=len(names), image_size=48, upscale=ext.upscale,
                  appearance=app_spec, mirror_train=True, timing=timing, subset=args.subset)
    metrics_of = {key: {s: metrics_from_proba(y[s], proba[s], data.classes) for s in SPLITS}
                  for key, proba in results.items()}

    # 7. ship (only with --ship, only if it beats the shipped model on val): the reports then name the shipped file
    shipped = ship_files(save_dir, metrics_of["ensemble"], args) if args.ship else None
    json_path = shipped or json_path

    # 8. reports of the members and the ensemble
    for key, metrics in metrics_of.items():
        out_dir = reports / f"{args.name}-{key}"
        single = key != "ensemble"
        imp, how = importance(key, ens, X["val"], y["val"], names)
        lm.save_importance_png(imp, out_dir / "importance.png", f"{args.name}-{key}: top-20 features", xlabel=how)
        extra = {"members": MEMBERS.get(key) if single else MEMBERS, "fit_seconds": training["fit_seconds"].get(key)
                 if single else training["fit_seconds"], "top_features": dict(list(imp.items())[:20]),
                 "importance_method": how}
        if not single:
            extra.update(ensemble_weights=ens.weights, mirror_tta=ens.tta_mirror,
                         test_via_predictor=via_predictor["accuracy"],
                         weights_val_accuracy=training["weights_val_accuracy"])
        report = make_report(
            name=f"{args.name}-{key}", metrics=metrics, params=n_params(ens, key), ms_per_face=ms,
            artifact=artifact_info(json_path, ROOT), figures=["importance.png"],
            backbone=f"dlib 68 points -> {len(names)} features (geometry + appearance {app_spec}) -> {TITLES[key]}",
            notes=f"{TITLES[key]} on {len(names)} features: geometry and {app_spec} appearance at the landmarks of the "
                  f"eye-levelled 48 px face; settings chosen on val (PublicTest) only; landmarks: {METHOD} box on the "
                  f"{ext.upscale}x upscaled image; trained on train + its mirror images ({training['n_train_rows']} rows); "
                  "train metrics are on the original training faces; batch-1 timing is of the whole ensemble "
                  f"(load average {load[0]:.1f} on {os.cpu_count()} cores when timed)",
            **common, **extra)
        write_report(report, out_dir)
        print(f"{key:9s} train {metrics['train']['accuracy']:.4f} val {metrics['val']['accuracy']:.4f} "
              f"test {metrics['test']['accuracy']:.4f} macro-F1 {metrics['test']['macro_f1']:.4f}")
    if shipped:   # after the reports: the manifest entry reads the ensemble report (ms per face)
        record_in_manifest(shipped, metrics_of["ensemble"], training["command"], source, data, args,
                           reports / f"{args.name}-ensemble")
    return 0


def spec_of(app: LandmarkAppearance) -> str:
    p = app.get_params()
    return f"{p['descriptor']}:{p['sites']}:{p['patch']:g}:{p['cells']}:{p['pca'] if p['pca'] is not None else 'none'}"


def quick_val(X_train, y_train, X_val, y_val, n_jobs: int) -> float:
    """Val accuracy of the screen's quick, fixed XGBoost (early stopping on val) fitted on (X_train, y_train)."""
    ens = lm.LandmarkEnsemble({"xgboost": lm.make_member("xgboost", SCREEN_XGB, n_jobs)}, n_jobs=n_jobs)
    ens.fit(X_train, y_train, X_val, y_val)
    return float((ens.predict_proba(X_val).argmax(1) == y_val).mean())


def fit_ensemble(X: dict, X_mirror: dict, y: dict, n_jobs: int) -> tuple[lm.LandmarkEnsemble, dict]:
    """LandmarkEnsemble of MEMBERS fitted on train + mirror images; weights and mirror TTA chosen on val.
    Returns (ensemble, {"no_tta": val accuracy, "mirror_tta": val accuracy})."""
    members = {k: lm.make_member(k, params, n_jobs) for k, params in MEMBERS.items()}
    ens = lm.LandmarkEnsemble(members, n_jobs=n_jobs, landmark_method=METHOD)
    ens.fit(np.concatenate([X["train"], X_mirror["train"]]), np.concatenate([y["train"], y["train"]]),
            X["val"], y["val"])
    p = ens.member_proba(X["val"])
    q = ens.member_proba(X_mirror["val"])
    choice = {"no_tta": lm.best_weights(p, y["val"]), "mirror_tta": lm.best_weights({k: (p[k] + q[k]) / 2 for k in p},
                                                                                     y["val"])}
    tta = choice["mirror_tta"][1] > choice["no_tta"][1]
    ens.tta_mirror, ens.weights = tta, choice["mirror_tta" if tta else "no_tta"][0]
    return ens, {k: v[1] for k, v in choice.items()}


def proba_of(ens: lm.LandmarkEnsemble, X: np.ndarray, X_mirror: np.ndarray) -> np.ndarray:
    p = ens.predict_proba(X)
    return (p + ens.predict_proba(X_mirror)) / 2 if ens.tta_mirror else p


def write_ablation(out_dir: Path, screen, row_geo, ablation, fitted, y, data, training) -> None:
    """ablation.json + ablation.md: the val screen of appearance candidates and the three ensembles (val, test)."""
    rows = {}
    for part, (e, _, Xp, Xp_mirror) in fitted.items():
        p = {s: proba_of(e, Xp[s], Xp_mirror[s]) for s in ("val", "test")}
        rows[part] = {**ablation[part], **{s: metrics_from_proba(y[s], p[s], data.classes)["accuracy"] for s in p}}
    out = {"screen": screen, "screen_geometry_only": row_geo, "screen_xgboost": SCREEN_XGB, "ensembles": rows,
           "chosen_appearance": training["appearance"], "command": training["command"], "subset": training["subset"]}
    lines = ["# Landmark track: geometry vs appearance at the landmarks", "",
             f"Command: `{training['command']}`" + (f" (training subset of {training['subset']} faces)"
                                                     if training["subset"] else ""), "",
             "## Appearance screen (val only)", "",
             "One quick, fixed XGBoost (`screen_xgboost` in ablation.json) per candidate, trained on the training "
             "faces without mirror images, early stopping on val. SPEC = descriptor:sites:patch (inter-ocular units):"
             "cells:PCA columns.", "",
             "| SPEC | raw columns | val, appearance only | val, geometry + appearance |", "|---|---:|---:|---:|",
             f"| geometry only | – | – | {row_geo['val_both']:.4f} |"]
    for r in screen:
        lines.append(f"| {r['spec']} | {r['n_raw']} | {r['val_appearance']:.4f} | {r['val_both']:.4f} |")
    lines += ["", f"Chosen on val: `{training['appearance']}`.", "",
              "## Ablation: the full ensemble on each feature set", "",
              "XGBoost, HistGradientBoosting, MLP and logistic regression trained on train + mirror images; weights "
              "and mirror TTA chosen on val; test reported once.", "",
              "| features | columns | weights (xgboost, hgb, mlp, logreg) | mirror TTA | val | test |",
              "|---|---:|---|---|---:|---:|"]
    for part, r in rows.items():
        w = ", ".join(f"{r['weights'].get(k, 0):.1f}" for k in MEMBERS)
        lines.append(f"| {part} | {r['n_features']} | {w} | {r['mirror_tta']} | {r['val']:.4f} | {r['test']:.4f} |")
    out_dir.mkdir(parents=True, exist_ok=True)
    _atomic.write_text(out_dir / "ablation.json", json.dumps(out, indent=2, default=float) + "\n")
    _atomic.write_text(out_dir / "ablation.md", "\n".join(lines) + "\n")


def ship_files(save_dir: Path, metrics: dict, args) -> Path | None:
    """Copy the saved model into models/landmarks/ if it beats the shipped landmark model on val (per the
    manifest); files of the previous model that the new one does not use are removed. Returns the shipped
    ``ensemble.json`` (None when not shipped)."""
    if args.subset:
        raise ValueError("a model trained on a --subset is not shipped")
    models_root = Path(args.models) if args.models else artifacts.models_dir()
    ship_dir = models_root / "landmarks"
    shipped = artifacts.read_manifest(models_root).get("models", {}).get("landmarks")
    val = metrics["val"]["accuracy"]
    if shipped and val <= shipped["metrics"]["val"]["accuracy"]:
        print(f"not shipped: val {val:.4f} does not beat the shipped landmark model's "
              f"{shipped['metrics']['val']['accuracy']:.4f}")
        return None
    old = model_files(ship_dir / "ensemble.json") if (ship_dir / "ensemble.json").exists() else []
    src_json = save_dir / "ensemble.json"
    new = model_files(src_json)
    for f in new:
        with _atomic.atomic_path(ship_dir / f.name) as tmp:
            shutil.copyfile(f, tmp)
    with _atomic.atomic_path(ship_dir / "ensemble.json") as tmp:
        shutil.copyfile(src_json, tmp)
    for f in old:
        if f.name not in {g.name for g in new}:
            f.unlink(missing_ok=True)
    print(f"shipped to {ship_dir} (val {val:.4f})")
    return ship_dir / "ensemble.json"


def record_in_manifest(json_path: Path, metrics: dict, command: str, source, data, args, report_dir: Path) -> None:
    """Record the shipped landmark model (descriptor + every file it names) in the models manifest."""
    models_root = Path(args.models) if args.models else artifacts.models_dir()
    new = model_files(json_path)
    artifacts.update_manifest(
        "landmarks", json_path, root=models_root, weights=None, command=command,
        data={"source": str(source), "sha256": data.sha256},
        metrics={s: {"accuracy": metrics[s]["accuracy"], "macro_f1": metrics[s]["macro_f1"]} for s in SPLITS},
        report=str((report_dir / "report.json").relative_to(ROOT)) if report_dir.is_relative_to(ROOT)
        else str(report_dir / "report.json"),
        extra_files=[str(f) for f in new])
    print(f"manifest {models_root / 'manifest.json'}: landmarks -> {json_path}")


def command_line(args: argparse.Namespace) -> str:
    """The command line that trains this setup (what reports and the manifest record)."""
    cmd = "python experiments/landmarks.py"
    if args.n_jobs != 1:
        cmd += f" --n-jobs {args.n_jobs}"
    if args.name != "landmarks-app":
        cmd += f" --name {args.name}"
    if args.appearance:
        cmd += f" --appearance {args.appearance}"
    elif list(args.candidates) != list(CANDIDATES):
        cmd += " --candidates " + " ".join(args.candidates)
    if args.save:
        cmd += f" --save {args.save}"
    if args.subset:
        cmd += f" --subset {args.subset}"
    return cmd


def importance(key: str, ens: lm.LandmarkEnsemble, X_val, y_val, names) -> tuple[dict, str]:
    """Top features: XGBoost gain; |coef| for logistic regression; otherwise permutation importance on val
    over the 60 features with the largest XGBoost gain (to bound the cost)."""
    if key == "xgboost":
        return lm.feature_importance(ens.members[key], names), "XGBoost total gain (share)"
    if key == "logreg":
        return lm.coefficient_importance(ens.members[key], names), "mean |coefficient| on standardised features (share)"
    candidates = list(lm.feature_importance(ens.members["xgboost"], names))[:60]
    predict = ens.members[key].predict_proba if key in ens.members else ens.predict_proba
    return (lm.permutation_importance(predict, X_val, y_val, names, candidates, n_repeats=2, max_rows=1500),
            "val accuracy drop when shuffled (permutation)")


def n_params(ens: lm.LandmarkEnsemble, key: str) -> int:
    """Learned parameters: tree nodes for boosted trees, weights+biases for MLP/logistic regression."""
    def count(model) -> int:
        kind = lm.member_kind(model)
        if kind == "xgboost":
            return int(sum(len(t.strip().splitlines()) for t in model.get_booster().get_dump()))
        if kind == "hgb":
            return int(sum(len(p.nodes) for it in model._predictors for p in it))
        clf = model.steps[-1][1]
        if kind == "logreg":
            return int(clf.coef_.size + clf.intercept_.size)
        return int(sum(w.size for w in clf.coefs_) + sum(b.size for b in clf.intercepts_))
    return count(ens.members[key]) if key in ens.members else sum(count(m) for m in ens.members.values())


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        return run(args)
    except (FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
