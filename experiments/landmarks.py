"""Landmark track: dlib 68 points -> geometry + local appearance at the landmarks -> gradient-boosted ensemble.

Method (each step a call into fer_hybrid.landmarks; ``sel`` is fer_hybrid.landmarks.selection)
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
4. Appearance choice on val (sel.screen_candidates). Every candidate in sel.CANDIDATES (or --candidates) is
   scored with one quick, fixed XGBoost (sel.SCREEN_XGB) on the training faces (no mirror images, to bound
   the cost) on appearance alone and on geometry + appearance; the candidate with the best geometry +
   appearance val accuracy is kept.
5. Ensembles (sel.fit_ablation). XGBoost (early stopping on val), HistGradientBoosting, an MLP and logistic
   regression with the settings chosen on val by the geometry-only run (sel.MEMBERS), fitted by
   LandmarkEnsemble.fit on the training faces plus their mirror images (flipped faces with mirrored
   landmarks); soft-vote weights on a 0.1 simplex grid and mirror TTA chosen on val by
   LandmarkEnsemble.choose_weights. Three feature sets, the ablation: geometry only, appearance only,
   geometry + appearance. The chosen model is saved to experiments/checkpoints/<name>/ (--save).
6. Evaluation. The chosen model on test through the predictor (images -> landmarks -> features -> ensemble),
   its batch-1 time, and its members and ensemble on the cached features of every split.
7. Shipping (--ship; sel.ship_if_better, sel.record_shipped): copied to models/landmarks/ and recorded in the
   manifest, only if its val accuracy beats the shipped landmark model's.
8. Reports of the geometry + appearance ensemble and its members (<name>-*, with feature importances); step 5
   writes those of the two ablation ensembles (<name>-geometry, <name>-appearance) and the screen + ablation
   tables (<name>-ablation/ablation.md).

``--reuse`` loads the saved model instead of steps 4-5, re-evaluates it, re-times batch-1 inference and
rewrites its reports (with ``--no-cache`` it also re-extracts, re-timing the extraction).

    python experiments/landmarks.py [--data PATH] [--n-jobs 1] [--name landmarks-app] [--candidates SPEC ...]
                                    [--appearance SPEC] [--save DIR] [--reuse] [--no-cache] [--ship] [--subset N]
                                    [--models DIR] [--reports DIR]

A SPEC is ``descriptor:sites:patch:cells:pca`` (e.g. ``hog:core:0.5:2:64``; pca ``none`` keeps raw columns).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from fer_hybrid import artifacts
from fer_hybrid.data import SPLITS, load_fer2013, resolve_source
from fer_hybrid.evaluate import command_line
from fer_hybrid.evaluation.landmark_report import LandmarkReports, member_metrics, predictor_timing
from fer_hybrid.landmarks import selection as sel
from fer_hybrid.landmarks.extract import extract_fer2013
from fer_hybrid.landmarks.predictor import load_landmark_predictor, save_landmark_model
from fer_hybrid.reports import artifact_info, repo_path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "fer2013" / "fer2013_images.tar.gz"


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=None, help="FER2013 source (default $FER2013_PATH or ../shared/...)")
    ap.add_argument("--n-jobs", type=int, default=1, help="threads for fitting, processes for landmark extraction")
    ap.add_argument("--name", default="landmarks-app", help="report prefix (default landmarks-app)")
    ap.add_argument("--candidates", nargs="+", default=list(sel.CANDIDATES), help="appearance SPECs scored on val")
    ap.add_argument("--appearance", default=None, help="skip the screen and use this SPEC")
    ap.add_argument("--save", default=None, help="model folder (default experiments/checkpoints/<name>)")
    ap.add_argument("--reuse", action="store_true", help="load the saved model instead of fitting")
    ap.add_argument("--no-cache", action="store_true", help="re-extract landmarks and appearance descriptors, "
                    "re-timing the extraction (run it with the machine otherwise idle) and refreshing the caches")
    ap.add_argument("--ship", action="store_true", help="copy the model to models/landmarks and record it in the "
                    "manifest if it beats the shipped landmark model on val")
    ap.add_argument("--subset", type=int, default=None, help="seeded subset of N training faces (smoke runs)")
    ap.add_argument("--models", default=None, help="models folder (default: fer_hybrid.artifacts.models_dir())")
    ap.add_argument("--reports", default=str(ROOT / "experiments" / "reports"), help="reports folder")
    return ap.parse_args(argv)


def run(args: argparse.Namespace) -> int:
    source = resolve_source(args.data or os.environ.get("FER2013_PATH") or DEFAULT_DATA)
    save_dir = Path(args.save) if args.save else ROOT / "experiments" / "checkpoints" / args.name
    saved = save_dir / "ensemble.json"
    candidates = [sel.parse_spec(s) for s in ([args.appearance] if args.appearance else args.candidates)]
    if args.reuse and not saved.exists():
        raise FileNotFoundError(f"{saved} not found: train it first (without --reuse)")
    if args.ship and args.subset:
        raise ValueError("a model trained on a --subset is not shipped")

    # 1. data (a seeded training subset for smoke runs)
    data = load_fer2013(source)
    keys, y = sel.study_splits(data, args.subset)
    meta = {"source": str(source), "sha256": data.sha256}
    print(f"data: {source} train {len(y['train'])} val {len(y['val'])} test {len(y['test'])}")
    # 2. landmarks (cached .npz; times are of the original extraction)
    ext = extract_fer2013(source, sel.METHOD, n_jobs=args.n_jobs, refresh=args.no_cache)
    points = {s: ext.points_for(keys[s]) for s in SPLITS}
    extraction = {"landmarks": sel.landmark_record(ext, points, y, data.classes)}
    print(f"landmarks[{sel.METHOD}]: {len(ext.keys)} images in {ext.seconds:.1f} s ({ext.n_jobs} processes)")
    # 3. geometric features of the faces and of their mirror images; appearance descriptors when asked (cached)
    feats = sel.TrackFeatures(points, lambda a: sel.fer2013_appearance(source, a, keys, n_jobs=args.n_jobs,
                                                                       refresh=args.no_cache))
    if args.reuse:
        predictor, training = load_landmark_predictor(saved, args.name), json.loads(saved.read_text())["training"]
        blocks = feats.appearance(predictor.appearance) if predictor.appearance is not None else None
        ens, (X, X_mirror) = predictor.ensemble, feats.matrices(predictor.features, blocks)
    else:
        # 4. appearance choice on val: a quick fixed XGBoost, appearance alone and with geometry
        screen, screen_geometry, app = sel.screen_candidates(candidates, feats, y, args.n_jobs, log=print)
        # 5. the three ensembles of the ablation (the chosen appearance, PCA refitted on train + mirror images)
        blocks = feats.appearance(app)
        fitted = sel.fit_ablation(feats, app, blocks, y, n_jobs=args.n_jobs, log=print)
        ens, X, X_mirror = fitted["both"].ensemble, fitted["both"].X, fitted["both"].X_mirror
        training = sel.training_record(app, fitted["both"], screen, screen_geometry, len(y["train"]), command_line(),
                                       args.subset)
        predictor = load_landmark_predictor(save_landmark_model(ens, save_dir, app, extra={
            "training": training, "box_scale": 1.0}), args.name)
    out = LandmarkReports(args.name, args.reports, training["command"], meta)
    if not args.reuse:   # step 5's reports and tables; the chosen ensemble's reports follow in step 8
        out.ablation(fitted, y, data.classes, training)
    extraction["appearance"] = blocks.record if blocks is not None else None

    # 6. the chosen model on test through the predictor (images -> landmarks -> features -> ensemble); batch-1 time;
    #    its members and ensemble on the cached features (mirror TTA as chosen)
    via_predictor, seconds, timing = predictor_timing(predictor, data.test.x, data.test.y, data.classes)
    print(f"test through the predictor (images -> landmarks -> features -> ensemble): acc "
          f"{via_predictor['accuracy']:.4f} in {seconds:.1f} s; batch-1 {timing['ms_per_face']:.2f} ms/face "
          f"(load {timing['load_average_1_5_15min'][0]:.1f})")
    metrics_of = member_metrics(ens, X, X_mirror, y, data.classes)

    # 7. ship (only with --ship, only if it beats the shipped model on val): the reports then name the shipped file
    models_root = (Path(args.models) if args.models else artifacts.models_dir()) if args.ship else None
    shipped = args.ship and sel.ship_if_better(saved, models_root, metrics_of["ensemble"]["val"]["accuracy"], log=print)

    # 8. reports of the members and the ensemble; then the manifest entry (it reads the ensemble report's timing)
    out.chosen(ens, metrics_of, X["val"], y["val"], predictor.features.feature_names(), training, timing=timing,
               extraction=extraction, artifact=artifact_info(shipped or saved, ROOT), upscale=ext.upscale,
               subset=args.subset, test_via_predictor=via_predictor["accuracy"], log=print)
    if shipped:
        path = out.folder("ensemble") / "report.json"
        sel.record_shipped(shipped, models_root, metrics_of["ensemble"], command=training["command"], data=meta,
                           report=repo_path(path, ROOT))
        print(f"manifest {models_root / 'manifest.json'}: landmarks -> {shipped}")
    return 0


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        return run(args)
    except (FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
