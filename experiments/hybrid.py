"""Hybrid track: our CNN fused with the landmark ensemble, and an ensemble of our CNNs.

    python experiments/hybrid.py [--cnn vggbn] [--cnn-ensemble vggbn,vggbn_s2] [--tta none,flip,flip-scale]
                                 [--cnn-onnx NAME] [--heads logreg,hgb] [--data PATH] [--reports DIR] [--no-ship]

The numbered steps of :func:`run` are the method; the library code they call (fer_hybrid.fusion_parts, .fusion,
.evaluation.fusion_report) documents each step in full. Train fits, PublicTest ("val") chooses every setting, PrivateTest
("test") is only reported. Every variant gets a report (kind "hybrid") with a loadable descriptor in
<reports>/hybrid-<variant>/ and the CNN ensemble one (kind "cnn") in <reports>/cnn-ensemble-<members>/; each
carries test accuracy against the FER+ majority label when ../shared/data/ferplus is present and batch-1 latency
(run on an otherwise idle machine). A missing model exits 2 naming the command that trains it.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "fer2013" / "fer2013_images.tar.gz"


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cnn", default="vggbn", help="CNN name (models/NAME.keras or experiments/checkpoints/NAME/"
                                                  "final.keras) or a .keras path")
    ap.add_argument("--cnn-ensemble", default="", help="comma-separated CNN names for the ensemble report")
    ap.add_argument("--data", default=None, help="FER2013 source (default $FER2013_PATH or ../shared/...)")
    ap.add_argument("--models", default=None, help="models folder (default fer_hybrid.artifacts.models_dir())")
    ap.add_argument("--reports", default=str(ROOT / "experiments" / "reports"))
    ap.add_argument("--heads", default="logreg,hgb", help="feature-fusion heads to try (logreg, hgb)")
    ap.add_argument("--tta", default="none,flip,flip-scale", help="CNN TTA policies to choose from on val")
    ap.add_argument("--cnn-onnx", default=None, help="registered ONNX twin of --cnn (experiments/export_onnx.py) "
                                                     "that the shipped hybrid runs when its fusion needs no embedding")
    ap.add_argument("--no-ship", action="store_true", help="write reports only; do not touch models/")
    ap.add_argument("--n-jobs", type=int, default=2)
    return ap.parse_args(argv)


def train_command(name: str) -> str:
    from fer_hybrid.predictors import model_spec

    try:
        return model_spec(name).train_command + " --ship"
    except ValueError:
        return f"python experiments/cnn_transfer.py --backbone <backbone> --name {name} --ship"


def run(args: argparse.Namespace) -> int:
    from fer_hybrid import artifacts, ferplus, fusion_parts as fp
    from fer_hybrid.data import load_fer2013, resolve_source
    from fer_hybrid.evaluate import command_line
    from fer_hybrid.evaluation.fusion_report import Reporter
    from fer_hybrid.reports import read_report

    models_root = Path(args.models) if args.models else artifacts.models_dir()
    ensemble = [n for n in args.cnn_ensemble.split(",") if n]
    files = {n: fp.cnn_file(n, models_root, ROOT / "experiments" / "checkpoints", train_command(n))
             for n in dict.fromkeys([args.cnn] + ensemble)}
    lm_json = fp.landmark_file(models_root)
    policies, heads = [t for t in args.tta.split(",") if t], [h for h in args.heads.split(",") if h]

    # 1. Data: FER2013 restricted to the five study emotions; the FER+ majority labels of test when present.
    source = resolve_source(args.data or os.environ.get("FER2013_PATH") or DEFAULT_DATA)
    data = load_fer2013(source)
    rep = Reporter(Path(args.reports), data, ferplus.ferplus_majority_labels() if ferplus.available() else None,
                   artifacts.read_manifest(models_root)["models"].get(args.cnn, {}).get("weights"), command_line(), ROOT)
    print(f"data: {source} train {len(data.train)} val {len(data.val)} test {len(data.test)}; "
          f"FER+ {'yes' if rep.ferplus_labels is not None else 'absent (no test_ferplus)'}")

    # 2. Parts, computed once and cached: each CNN's softmax and penultimate embedding averaged over the views of
    #    every --tta policy; the landmark model's probabilities (as its shipped predictor computes them) and
    #    geometric features, from dlib's 68 points (NaN where none are found: those faces fall back to the CNN).
    parts = {n: fp.cnn_parts(f, data, policies) for n, f in files.items()}
    lm, lm_parts = fp.landmark_parts(lm_json, source, data, args.n_jobs)
    print(f"landmarks: {int(np.isnan(lm_parts['test_p']).any(1).sum())} test faces without landmarks")

    # 3. The CNN part, chosen on val: the TTA policy, and for --cnn-ensemble the members and weights by greedy
    #    ensemble selection with replacement (Caruana et al. 2004); the ensemble alone gets its own report.
    # 4. The fusions on it: late (w * p_cnn + (1 - w) * p_landmarks, w on a 0.05 grid chosen on val); stacking
    #    (logistic regression on [log p_cnn, log p_landmarks] fit on val, its C and accuracy by 5-fold CV inside
    #    val: the base models' train outputs are over-confident); feature (standardised [CNN embedding, landmark
    #    features] -> each of --heads, logistic regression or HistGradientBoosting, trained on train, chosen on val).
    variants = []
    for prefix, members in (("hybrid", [args.cnn]), ("hybrid-ens", ensemble)):
        if not members:
            continue
        tta, chosen = fp.choose_cnn(parts, members, policies, data.val.y)
        cnn = fp.combine_cnns([parts[m] for m in chosen], tta, list(chosen.values()))
        print(f"CNN {'+'.join(chosen)} weights {np.round(list(chosen.values()), 3).tolist()} (TTA {tta}): "
              f"val {fp.accuracy(cnn['val'][0], data.val.y):.4f}")
        variants += fp.fit_variants(prefix, chosen, tta, cnn, lm_parts, data.train.y, data.val.y, heads, args.n_jobs,
                                    progress=True)
        if prefix == "hybrid-ens":
            rep.cnn_ensemble(chosen, tta, cnn, files, files[members[0]].parent)

    # 5. The choice: the variant with the best val accuracy; every variant's report says whether it is the one.
    best = fp.choose_variant(variants)
    for v in variants:
        rep.variant(v, files, lm, lm_json, models_root, chosen=v is best)

    # 6. Ship it to models/hybrid/ (+ the manifest) only if it beats its own CNN part on val; with --cnn-onnx and a
    #    fusion that needs no CNN embedding, the shipped hybrid runs the ONNX twin (no TensorFlow at start-up).
    if args.no_ship:
        print(f"best by val: {best.name} ({best.val_accuracy:.4f}); not shipped (--no-ship)")
        return 0
    cnn_val = best.cnn_accuracy({"val": data.val.y})["val"]
    if not best.val_accuracy > cnn_val:
        print(f"not shipped: the best fusion {best.name} (val {best.val_accuracy:.4f}) does not beat its CNN part "
              f"{'+'.join(best.members)} (val {cnn_val:.4f}) on val", file=sys.stderr)
        return 1
    twin = None if best.needs_embedding else fp.onnx_twin(args.cnn_onnx, args.cnn, best.members, models_root, ROOT)
    rel = f"experiments/reports/{best.name}/report.json"
    ship = fp.ship_hybrid(best, files, lm, lm_json, models_root, read_report(rep.out_root / best.name / "report.json"),
                          rel, rep.command, rep.weights, twin)
    print(f"shipped {best.name} (val {best.val_accuracy:.4f}) -> {ship}")
    return 0


def main(argv=None) -> int:
    try:
        return run(parse_args(argv))
    except FileNotFoundError as e:  # ArtifactMissingError: the message names the command that makes the model
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
