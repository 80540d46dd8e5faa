"""A teacher for distillation: the weighted average of candidate CNNs chosen on val, with its report and descriptor.

    python experiments/teacher_ensemble.py --candidates vggbn,vggbn-s7-long,vggbn-kdu [--tta flip-scale]
                                           [--min-val ACC] [--data PATH] [--reports DIR]
    python experiments/cnn_transfer.py --teacher experiments/reports/cnn-ensemble-<members>/ensemble.json ...

Method (the numbered steps of :func:`run`): every candidate CNN (a registered name, or a run kept in
experiments/checkpoints/NAME/final.keras) predicts val and test under one TTA policy (cached); greedy ensemble
selection with replacement (Caruana et al. 2004) picks members and weights on val, as ``experiments/hybrid.py``
does for the shipped ``ensemble``, but without predicting the training set for members it drops. The selection
(every candidate's val and test accuracy, the members, weights and the teacher's val and test) is written first,
as ``selection.json`` + ``selection.md`` in the report's folder; with ``--min-val`` a teacher whose val accuracy
is not above it stops there (exit 1, one line), before the long training-set pass. The chosen
teacher then answers every training image once: those probabilities are its train accuracy here and, cached under
the same key, the targets ``cnn_transfer.py --teacher <descriptor>`` distils from (the time they took is in the
report). Train fits, val chooses, test is only reported. The report (kind ``cnn``, ``cnn-ensemble-<members>``)
has the loadable descriptor ``ensemble.json`` beside it; nothing in ``models/`` changes.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "fer2013" / "fer2013_images.tar.gz"


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--candidates", required=True,
                    help="comma-separated CNN names: registered, or experiments/checkpoints/NAME/final.keras")
    ap.add_argument("--tta", default="flip-scale", help="the TTA policy every member runs under")
    ap.add_argument("--min-val", type=float, default=None,
                    help="go on to the training set only if the teacher's val accuracy is above this (e.g. the "
                         "current teacher's); else stop after the selection record, exit 1")
    ap.add_argument("--data", default=None, help="FER2013 source (default $FER2013_PATH or ../shared/...)")
    ap.add_argument("--models", default=None, help="models folder (default fer_hybrid.artifacts.models_dir())")
    ap.add_argument("--reports", default=str(ROOT / "experiments" / "reports"))
    return ap.parse_args(argv)


def run(args: argparse.Namespace) -> int:
    from fer_hybrid import artifacts, ferplus, fusion_parts as fp
    from fer_hybrid.cnn.distill import cached_teacher_proba, teacher_key
    from fer_hybrid.cnn.tta import tta_policy
    from fer_hybrid.data import cache_dir, load_fer2013, resolve_source
    from fer_hybrid.evaluate import command_line
    from fer_hybrid.evaluation.fusion_report import Reporter, teacher_selection_markdown
    from fer_hybrid.hybrid import CNNEnsemblePredictor
    from fer_hybrid.reports import write_study

    candidates = list(dict.fromkeys(c.strip() for c in args.candidates.split(",") if c.strip()))
    if not candidates:
        print("error: --candidates names no CNN", file=sys.stderr)
        return 2
    try:
        tta_policy(args.tta)
    except ValueError as e:
        print(f"error: --tta: {e}", file=sys.stderr)
        return 2
    models_root = Path(args.models) if args.models else artifacts.models_dir()
    checkpoints = ROOT / "experiments" / "checkpoints"
    try:
        files = {n: fp.cnn_file(n, models_root, checkpoints, f"python experiments/cnn_transfer.py --name {n}")
                 for n in candidates}
    except FileNotFoundError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2

    # 1. Data: FER2013 restricted to the five study emotions; the FER+ majority labels of test when present.
    source = resolve_source(args.data or os.environ.get("FER2013_PATH") or DEFAULT_DATA)
    data = load_fer2013(source)
    rep = Reporter(Path(args.reports), data, ferplus.ferplus_majority_labels() if ferplus.available() else None,
                   None, command_line(), ROOT)

    # 2. Every candidate's probabilities on val and test under the policy (cached per file).
    parts = {n: fp.cnn_parts(f, data, [args.tta], splits=("val", "test")) for n, f in files.items()}
    accuracies = {n: {s: fp.accuracy(parts[n][f"{s}_p@{args.tta}"], data.split(s).y) for s in ("val", "test")}
                  for n in candidates}
    for n in candidates:
        print(f"candidate {n:24s} val {accuracies[n]['val']:.4f}")

    # 3. Members and weights by greedy ensemble selection on val.
    tta, chosen = fp.choose_cnn(parts, candidates, [args.tta], data.val.y)
    cnn = fp.combine_cnns([parts[m] for m in chosen], tta, list(chosen.values()))
    val = fp.accuracy(cnn["val"][0], data.val.y)
    print(f"teacher {'+'.join(chosen)} weights {[round(w, 3) for w in chosen.values()]} (TTA {tta}): val {val:.4f}")
    folder = Path(args.reports) / ("cnn-ensemble-" + "+".join(chosen))
    record = {"command": rep.command, "tta": tta, "candidates": accuracies, "members": chosen,
              "val_accuracy": val, "test_accuracy": fp.accuracy(cnn["test"][0], data.test.y),
              "min_val": args.min_val, "passed": args.min_val is None or val > args.min_val,
              "data": {"source": Path(data.source).name, "sha256": data.sha256}}
    write_study(record, teacher_selection_markdown(record), folder, "selection")
    if not record["passed"]:
        print(f"stopped: the teacher's val {val:.4f} is not above --min-val {args.min_val:.4f} "
              f"(selection in {folder / 'selection.json'})", file=sys.stderr)
        return 1

    # 4. The teacher's answers on every training image: its train accuracy, and the cached distillation targets.
    teacher = CNNEnsemblePredictor.from_files([files[m] for m in chosen], tta=tta, weights=list(chosen.values()))
    train_p, info = cached_teacher_proba(teacher.predict_proba, data.train.x, teacher_key("teacher", teacher),
                                         cache_dir())
    print(f"teacher on the {len(data.train)} training images: {info['seconds']:.1f} s "
          f"({'cached' if info['cached'] else 'computed'}) -> {info['cache']}")

    # 5. Its report and loadable descriptor (CNN files relative to the repository).
    rep.cnn_ensemble(chosen, tta, {**cnn, "train": (train_p, None)}, files, ROOT,
                     candidates=candidates,
                     train_targets={"seconds": info["seconds"], "cache": Path(info["cache"]).name},
                     purpose="a distillation teacher (cnn_transfer.py --teacher <its ensemble.json>); not shipped")
    return 0


def main(argv=None) -> int:
    return run(parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
