"""Landmark track: dlib 68-point geometry -> boosted trees, MLP, logistic regression -> soft-vote ensemble.

Method
1. Data. FER2013 restricted to the five study emotions. Training fits, PublicTest ("val") chooses
   every setting (landmark method, hyper-parameters, ensemble weights, mirror TTA), PrivateTest
   ("test") is only reported.
2. Landmarks. dlib's 68-point shape predictor on each 48x48 image upscaled 4x, three ways: the fixed
   full-image box (FER2013 crops are pre-registered), the same averaged with the mirrored landmarks of
   the flipped image ("fixed-mirror"), and dlib's HOG detector. Each runs over all 35,887 images on all
   cores; we record time, faces/s and failure rates per split and class, and compare a fixed XGBoost
   on each. Of the methods the predictor can run on a face crop (the two fixed-box ones), the one with
   the better val accuracy is used; HOG is measured for comparison.
3. Features. LandmarkFeatures: eye-centred, inter-ocular-scaled, eye-line-de-rotated coordinates plus
   named distances, ratios, angles, curvatures, symmetry terms and key-point pairwise distances.
4. Members. XGBoost (early stopping on val), HistGradientBoosting, an MLP and logistic regression on
   standardised features, each with a small grid scored on val. Every member trains on the training
   faces plus their horizontal mirror images (mirror_points: x -> -x with the iBUG-68 left/right
   re-indexing), doubling the training set (``--no-mirror-train`` turns this off).
5. Ensemble. Soft vote with weights on a 0.1 simplex grid maximising val accuracy; mirror TTA kept
   only if it helps on val.
6. Results. A report per member and for the ensemble (kind "landmarks"), with confusion matrix and top-20
   feature importances; the ensemble is shipped in models/landmarks/ and recorded in the manifest.

``--reuse`` skips the fitting in steps 2-5: it loads the shipped ensemble and rewrites the reports; with
``--no-cache`` it also re-extracts (re-times) the chosen method's landmarks — run that with the machine
otherwise idle for honest speed numbers.

    python experiments/landmarks.py [--data PATH] [--n-jobs 2] [--no-mirror-train] [--reuse] [--no-cache]
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from fer_hybrid import artifacts
from fer_hybrid.data import SPLITS, load_fer2013, resolve_source
from fer_hybrid.evaluate import metrics_from_proba, ms_per_face
from fer_hybrid.landmarks import models as lm
from fer_hybrid.landmarks.extract import METHODS, extract_fer2013, failure_rates
from fer_hybrid.landmarks.features import LandmarkFeatures, mirror_augment
from fer_hybrid.landmarks.predictor import LandmarkPredictor
from fer_hybrid.reports import artifact_info, make_report, write_report

ROOT = Path(__file__).resolve().parent.parent
REPORTS = ROOT / "experiments" / "reports"
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "fer2013" / "fer2013_images.tar.gz"

# Small grids (the CPU budget is ~20 min on 2 shared cores); scored on val only. The members train on
# train + mirror images (2x the rows), so each grid holds the previous run's val-best setting (chosen
# without mirroring) and, where a fit is cheap, one more strongly regularised variant.
XGB_BASE = dict(n_estimators=1500, learning_rate=0.12, max_bin=64, subsample=0.8, early_stopping_rounds=30)
HGB_BASE = dict(learning_rate=0.12, max_iter=800, early_stopping=True, n_iter_no_change=30, max_bins=64)
GRIDS = {
    "xgboost": [dict(XGB_BASE, max_depth=6, colsample_bytree=0.2, min_child_weight=10, reg_lambda=10, gamma=0.5),
                dict(XGB_BASE, max_depth=5, colsample_bytree=0.3, min_child_weight=20, reg_lambda=30, gamma=1.0)],
    "hgb": [dict(HGB_BASE, max_leaf_nodes=31, min_samples_leaf=80, l2_regularization=30.0, max_features=0.2)],
    "mlp": [dict(hidden_layer_sizes=(512,), alpha=1e-1, learning_rate_init=1e-3, batch_size=256, max_iter=200,
                 n_iter_no_change=10)],
    "logreg": [dict(C=0.01), dict(C=0.003)],
}
# the landmark-method comparison uses one quick, fixed XGBoost for both methods
COMPARE_XGB = dict(n_estimators=300, learning_rate=0.25, max_depth=4, max_bin=32, subsample=0.8, colsample_bytree=0.3,
                   min_child_weight=5, reg_lambda=5, early_stopping_rounds=20)
CROP_METHODS = ("fixed", "fixed-mirror")  # what LandmarkPredictor can run on a face crop
TITLES = {"xgboost": "XGBoost", "hgb": "HistGradientBoosting", "mlp": "MLP", "logreg": "logistic regression",
          "ensemble": "soft-vote ensemble"}


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=None, help="FER2013 source (default $FER2013_PATH or ../shared/...)")
    ap.add_argument("--n-jobs", type=int, default=2, help="processes/threads for extraction and fitting")
    ap.add_argument("--reuse", action="store_true", help="load the shipped ensemble instead of fitting")
    ap.add_argument("--no-cache", action="store_true", help="re-extract landmarks (re-times the extraction)")
    ap.add_argument("--no-mirror-train", dest="mirror_train", action="store_false",
                    help="train the members on the training faces only (default: plus their mirror images)")
    ap.add_argument("--models", default=None, help="models folder (default: fer_hybrid.artifacts.models_dir())")
    ap.add_argument("--reports", default=str(REPORTS), help="reports folder (default experiments/reports)")
    return ap.parse_args(argv)


def proba_splits(predict, X: dict) -> dict:
    return {s: predict(X[s]) for s in SPLITS}


def metrics_all(proba: dict, data) -> dict:
    return {s: metrics_from_proba(data.split(s).y, proba[s], data.classes) for s in SPLITS}


def run(args: argparse.Namespace) -> int:
    import os

    source = resolve_source(args.data or os.environ.get("FER2013_PATH") or DEFAULT_DATA)
    models_root = Path(args.models) if args.models else artifacts.models_dir()
    ship_dir = models_root / "landmarks"

    # 1. data
    data = load_fer2013(source)
    print(f"data: {source} train {len(data.train)} val {len(data.val)} test {len(data.test)}")

    # 2. landmarks for all images by both methods (cached .npz; times are of the original extraction)
    shipped = json.loads((ship_dir / "ensemble.json").read_text())["training"] if args.reuse else None
    retime = [shipped["landmark_method"]] if args.reuse else list(METHODS)  # --reuse re-times the chosen one
    ext = {m: extract_fer2013(source, m, n_jobs=args.n_jobs, use_cache=not (args.no_cache and m in retime))
           for m in METHODS}
    points = {m: {s: ext[m].points_for(data.split(s).keys) for s in SPLITS} for m in METHODS}
    failed = {m: {s: ~np.isfinite(points[m][s]).all(axis=(1, 2)) for s in SPLITS} for m in METHODS}
    extraction = {m: {"n_images": len(e.keys), "seconds": e.seconds, "faces_per_second": e.faces_per_second,
                      "n_jobs": e.n_jobs, "upscale": e.upscale, "failure_rate_all_7_classes": float(e.failed.mean()),
                      "failure": {s: failure_rates(failed[m][s], data.split(s).y, data.classes) for s in SPLITS}}
                  for m, e in ext.items()}
    for m, e in extraction.items():
        print(f"landmarks[{m}]: {e['n_images']} images in {e['seconds']:.1f} s ({e['faces_per_second']:.0f} faces/s), "
              f"failure rate {e['failure_rate_all_7_classes']:.3f}")

    # 3. features
    feats = LandmarkFeatures().fit(points["fixed"]["train"])
    names = list(feats.get_feature_names_out())
    X = {m: {s: feats.transform(points[m][s]) for s in SPLITS} for m in METHODS}
    print(f"features: {len(names)} named columns")

    if args.reuse:
        ens = lm.LandmarkEnsemble.load(ship_dir / "ensemble.json", n_jobs=args.n_jobs)
        training = shipped
        method = training["landmark_method"]
    else:
        # 2b. choose the landmark method by a fixed XGBoost's val accuracy (failed rows abstain), trained as
        # the members will be (with the mirror images when --mirror-train)
        comparison = {}
        for m in METHODS:
            ok = ~failed[m]["train"]
            X_m, y_m = training_rows(feats, points[m]["train"][ok], data.train.y[ok], args.mirror_train)
            model = lm.fit_member(lm.make_member("xgboost", COMPARE_XGB, args.n_jobs), X_m, y_m,
                                  X[m]["val"][~failed[m]["val"]], data.val.y[~failed[m]["val"]], args.n_jobs)
            probe = lm.LandmarkEnsemble({"xgboost": model}, features=feats, n_jobs=args.n_jobs)
            met = metrics_all(proba_splits(probe.predict_proba, X[m]), data)
            comparison[m] = {s: {"accuracy": met[s]["accuracy"], "macro_f1": met[s]["macro_f1"],
                                 "n_abstained": met[s]["n_abstained"]} for s in SPLITS}
            comparison[m]["params"] = COMPARE_XGB
            comparison[m]["mirror_train"] = args.mirror_train
            print(f"method {m}: val acc {met['val']['accuracy']:.4f} (abstained {met['val']['n_abstained']})")
        method = max(CROP_METHODS, key=lambda m: comparison[m]["val"]["accuracy"])

        # 4. members: grid per member on val, fitted on train (+ its mirror images: twice the rows)
        X_fit, y_fit = training_rows(feats, points[method]["train"], data.train.y, args.mirror_train)
        print(f"members train on {len(y_fit)} rows (mirror images added: {args.mirror_train})")
        members, search = {}, {}
        for kind in ("xgboost", "hgb", "mlp", "logreg"):
            model, params, rows = lm.search(kind, GRIDS[kind], X_fit, y_fit, X[method]["val"],
                                            data.val.y, n_jobs=args.n_jobs)
            members[kind], search[kind] = model, {"chosen": params, "grid": rows}
            print(f"{kind}: best val acc {max(r['val_accuracy'] for r in rows):.4f} with {params}")

        # 5. ensemble weights (and mirror TTA) on val
        ens = lm.LandmarkEnsemble(members, features=feats, n_jobs=args.n_jobs, landmark_method=method)
        choice = {}
        for tta in (False, True):
            ens.tta_mirror = tta
            val_p = member_proba_points(ens, points[method]["val"])
            choice[tta] = lm.best_weights(val_p, data.val.y, step=0.1)
        tta = choice[True][1] > choice[False][1]
        ens.tta_mirror, ens.weights = tta, choice[tta][0]
        print(f"ensemble: weights {ens.weights}, mirror TTA {tta}, val acc {choice[tta][1]:.4f}")
        training = {"landmark_method": method, "method_comparison": comparison, "search": search,
                    "command": training_command(args), "mirror_train": args.mirror_train,
                    "n_train_rows": int(len(y_fit)),
                    "fit_seconds": {k: r["grid"][[x["params"] for x in r["grid"]].index(r["chosen"])]["seconds"]
                                    for k, r in search.items()},
                    "weights_val_accuracy": {"no_tta": choice[False][1], "mirror_tta": choice[True][1]}}
        ens.save(ship_dir, extra={"training": training, "box_scale": 1.0})

    # 6. evaluate every member and the ensemble on cached landmarks of the chosen method
    predictor = LandmarkPredictor(ens)  # runs ens.landmark_method, the method it was trained on
    face = data.test.x[0]
    ms = ms_per_face(lambda f: predictor.predict_proba(f[None]), face, repeats=100)
    t0 = time.perf_counter()
    via_predictor = metrics_from_proba(data.test.y, predictor.predict_proba(data.test.x), data.classes)
    print(f"test through the predictor (images -> landmarks -> ensemble): acc {via_predictor['accuracy']:.4f} "
          f"in {time.perf_counter() - t0:.1f} s; batch-1 {ms:.2f} ms/face")

    pts = points[method]
    member_p = {s: member_proba_points(ens, pts[s]) for s in SPLITS}
    results = {k: {s: member_p[s][k] for s in SPLITS} for k in ens.members}
    results["ensemble"] = {s: ens.combine(member_p[s]) for s in SPLITS}
    json_path = ship_dir / "ensemble.json"
    command = training.get("command", "python experiments/landmarks.py")
    common = dict(kind="landmarks", weights=None, command=command, mirror_train=training.get("mirror_train", False), ms_per_face=None, seconds_per_epoch=None,
                  data={"source": str(source), "sha256": data.sha256}, landmark_method=method,
                  landmark_extraction=extraction, n_features=len(names), image_size=48,
                  upscale=ext[method].upscale, method_comparison=training["method_comparison"])
    ens_metrics = None
    for key, proba in results.items():
        metrics = metrics_all(proba, data)
        out_dir = Path(args.reports) / f"landmarks-{key}"
        single = key != "ensemble"
        model = ens.members[key] if single else None
        imp, how = importance(key, model, ens, X[method]["val"], data.val.y, names)
        figures = ["importance.png"]
        lm.save_importance_png(imp, out_dir / "importance.png", f"landmarks-{key}: top-20 features",
                               xlabel=how)
        extra = {"search": training["search"].get(key), "fit_seconds": training["fit_seconds"].get(key),
                 "top_features": dict(list(imp.items())[:20]), "importance_method": how,
                 "ms_per_face_note": "batch-1 timing is of the whole shipped ensemble (landmarking dominates)"}
        if not single:
            extra.update(ensemble_weights=ens.weights, mirror_tta=ens.tta_mirror,
                         test_via_predictor=via_predictor["accuracy"],
                         weights_val_accuracy=training["weights_val_accuracy"])
        report = make_report(name=f"landmarks-{key}", metrics=metrics, params=n_params(ens, key),
                             artifact=artifact_info(json_path, ROOT), figures=figures,
                             backbone=f"dlib 68 points -> {len(names)} features -> {TITLES[key]}",
                             notes=f"{TITLES[key]} on {len(names)} landmark features; settings chosen on val "
                                   f"(PublicTest) only; landmarks: {method} box on the {ext[method].upscale}x upscaled "
                                   f"image, {extraction[method]['faces_per_second']:.0f} faces/s "
                                   f"({extraction[method]['seconds']:.1f} s for {extraction[method]['n_images']} images, "
                                   f"{ext[method].n_jobs} processes), failure rate "
                                   f"{extraction[method]['failure_rate_all_7_classes']:.3f}; "
                                   + (f"trained on train + its mirror images ({training['n_train_rows']} rows); "
                                      "train metrics are on the original training faces"
                                      if training.get("mirror_train") else "trained on the training faces only"),
                             **{**common, "ms_per_face": ms}, **extra)
        write_report(report, out_dir)
        print(f"{key:9s} train {metrics['train']['accuracy']:.4f} val {metrics['val']['accuracy']:.4f} "
              f"test {metrics['test']['accuracy']:.4f} macro-F1 {metrics['test']['macro_f1']:.4f}")
        if not single:
            ens_metrics = metrics

    # 7. ship: record the ensemble in the models manifest
    member_files = [ship_dir / m["file"] for m in json.loads(json_path.read_text())["members"]]
    artifacts.update_manifest(
        "landmarks", json_path, root=models_root, weights=None,
        command=command,  # the command that trained it; --reuse only re-evaluates/re-times
        data={"source": str(source), "sha256": data.sha256},
        metrics={s: {"accuracy": ens_metrics[s]["accuracy"], "macro_f1": ens_metrics[s]["macro_f1"]} for s in SPLITS},
        report="experiments/reports/landmarks-ensemble/report.json", extra_files=[str(f) for f in member_files])
    return 0


def training_rows(feats: LandmarkFeatures, points: np.ndarray, y: np.ndarray, mirror: bool):
    """(features (n or 2n, f), labels): the training faces, plus their mirror images when ``mirror``."""
    if mirror:
        points, y = mirror_augment(points, y)
    return feats.transform(points), y


def training_command(args: argparse.Namespace) -> str:
    """The command line that trains this setup (what reports and the manifest record)."""
    cmd = "python experiments/landmarks.py"
    if not args.mirror_train:
        cmd += " --no-mirror-train"
    if args.n_jobs != 2:
        cmd += f" --n-jobs {args.n_jobs}"
    return cmd


def member_proba_points(ens: lm.LandmarkEnsemble, points: np.ndarray) -> dict:
    """{member: (n, 5)} from landmarks, averaged with the mirrored face when the ensemble uses TTA."""
    from fer_hybrid.landmarks.features import mirror_points

    p = ens.member_proba(ens.features.transform(points))
    if ens.tta_mirror:
        q = ens.member_proba(ens.features.transform(mirror_points(points)))
        p = {k: (p[k] + q[k]) / 2 for k in p}
    return p


def importance(key: str, model, ens, X_val, y_val, names) -> tuple[dict, str]:
    """Top features: XGBoost gain; |coef| for logistic regression; otherwise permutation importance on val
    over the 60 features with the largest XGBoost gain (to bound the cost)."""
    if key == "xgboost":
        return lm.feature_importance(model, names), "XGBoost total gain (share)"
    if key == "logreg":
        return lm.coefficient_importance(model, names), "mean |coefficient| on standardised features (share)"
    candidates = list(lm.feature_importance(ens.members["xgboost"], names))[:60]
    predict = model.predict_proba if model is not None else ens.predict_proba
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
