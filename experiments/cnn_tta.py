"""Test-time augmentation for a shipped CNN: choose the TTA policy on val, report it once on test.

    python experiments/cnn_tta.py --model vggbn
    python experiments/cnn_tta.py --model baseline --policies none flip flip-shift
    python experiments/cnn_tta.py --model vggbn --pause-pid-file /tmp/fer_training.pid   # clean timing

Method (library: fer_hybrid.evaluation.tta_choice, fer_hybrid.cnn.tta)
1. Data. FER2013 restricted to the five study emotions: train = Training, val = PublicTest,
   test = PrivateTest.
2. Model. The shipped Keras model ``models/<model>.keras`` as trained (no retraining here). It takes raw
   48x48 gray pixels in 0..255; resizing/normalisation are layers inside it.
3. Policies (fer_hybrid.cnn.tta). Each policy is a fixed set of views of a face (mirror, shifts of a few
   pixels, ten-crop, zoom, small rotations, reflected borders like the training augmentation); the
   prediction is the mean softmax over the views. Every policy is evaluated on val.
4. Choice. The policy with the best val accuracy wins (ties: fewer views, i.e. cheaper). Test is not
   looked at for the choice; it is evaluated once, for the chosen policy only (train too with --train,
   for the overfitting gap; otherwise the report's train scores are null).
5. Speed. Batch-1 latency of the chosen policy (and of "none" for reference) through one compiled
   tf.function. Run it on an idle machine, or pass ``--pause-pid-file`` to stop a background process
   (SIGSTOP, always SIGCONT afterwards) for the few seconds of the measurement; ``--no-timing`` omits it.
6. Report. experiments/reports/<model>-tta/ (report.json + report.md + confusion.png + val_policies.png),
   schema 1, with the val table of every policy.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REPORTS = ROOT / "experiments" / "reports"
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "fer2013" / "fer2013_images.tar.gz"


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="vggbn", help="a shipped Keras model name (vggbn, baseline, vggface, ...)")
    p.add_argument("--policies", nargs="+", default=None, help="TTA policies to compare on val (default: all)")
    p.add_argument("--data", default=None, help="FER2013 source (default: $FER2013_PATH or ../shared/...)")
    p.add_argument("--models", default=None, help="models folder (default: fer_hybrid.artifacts.models_dir())")
    p.add_argument("--reports", default=str(REPORTS))
    p.add_argument("--batch-size", type=int, default=256, help="images (faces x views) per forward pass")
    p.add_argument("--tf-threads", type=int, default=2, help="TensorFlow intra-op threads")
    p.add_argument("--train", action="store_true", help="also evaluate the chosen policy on train (slow)")
    p.add_argument("--no-timing", action="store_true", help="do not measure batch-1 latency")
    p.add_argument("--pause-pid-file", default=None,
                   help="file holding the pid of a background process to pause while timing")
    return p.parse_args(argv)


def run(args) -> Path:
    from fer_hybrid.keras_io import configure_tensorflow_threads

    configure_tensorflow_threads(args.tf_threads, 1)

    from fer_hybrid import reports
    from fer_hybrid.artifacts import read_manifest
    from fer_hybrid.cnn.tta import keras_predict_fn, list_tta
    from fer_hybrid.data import load_fer2013
    from fer_hybrid.evaluate import command_line
    from fer_hybrid.evaluation import tta_choice as tc
    from fer_hybrid.keras_io import load_keras_model

    if args.batch_size < 1:
        raise tc.TTAInputError(f"--batch-size must be >= 1, got {args.batch_size}")
    policies = tc.checked_policies(args.policies or list_tta())
    artifact, spec = tc.keras_cnn_artifact(args.model, args.models)

    # 1-2. Data and the shipped model, through one compiled function (float32 (m, 48, 48, 1) -> (m, 5)).
    data = load_fer2013(args.data or os.environ.get("FER2013_PATH") or DEFAULT_DATA)
    model = load_keras_model(artifact)
    predict_fn = keras_predict_fn(model)

    # 3-4. Every policy on val; the best by val accuracy is chosen. Test is untouched so far.
    rows = tc.compare_policies(predict_fn, data.val, policies, data.classes, args.batch_size, progress=True)
    best = tc.choose_policy(rows)
    policy = best["policy"]
    print("\n".join(tc.val_lines(rows, best)))

    # 4'. The chosen policy on test (evaluated once, here), and on train with --train (overfitting gap).
    metrics = tc.chosen_metrics(predict_fn, data, best, train=args.train, batch_size=args.batch_size)

    # 5. Batch-1 latency of the chosen policy (and of no TTA for reference).
    timed = {} if args.no_timing else tc.time_policies(model, args.model, ["none", policy], data.test.x[:1],
                                                       args.pause_pid_file)

    # 6. Report.
    out_dir = Path(args.reports) / f"{args.model}-tta"
    out_dir.mkdir(parents=True, exist_ok=True)
    tc.save_policies_png(rows, best, out_dir / "val_policies.png", f"{args.model}: val accuracy by TTA policy (views)")
    weights = read_manifest(args.models).get("models", {}).get(args.model, {}).get("weights")
    trained, base_report = tc.base_model_facts(Path(args.reports) / args.model / "report.json", artifact, ROOT)
    report = reports.make_report(
        name=out_dir.name, kind=spec.kind, weights=weights, metrics=metrics, command=command_line(),
        ms_per_face=timed.get(policy), params=int(model.count_params()),
        artifact=reports.artifact_info(artifact, ROOT), data={"source": Path(data.source).name, "sha256": data.sha256},
        **trained, base_model=args.model, base_report=base_report, **tc.report_fields(rows, best),
        ms_per_face_by_policy=timed or None, tf_intra_op_threads=args.tf_threads,
        notes=tc.report_notes(args.model, weights, rows, best, train=args.train, base_found=bool(trained)),
        figures=["val_policies.png"])
    path = reports.write_report(report, out_dir)
    print(json.dumps({"name": out_dir.name, "policy": policy, "val_accuracy": best["accuracy"],
                      "test_accuracy": metrics["test"]["accuracy"], "test_macro_f1": metrics["test"]["macro_f1"],
                      "ms_per_face": timed.get(policy), "report": str(path)}))
    return path


def main(argv=None) -> int:
    from fer_hybrid.data import DataError
    from fer_hybrid.errors import ArtifactError
    from fer_hybrid.evaluation.tta_choice import TTAInputError

    try:
        run(parse_args(argv))
    except (TTAInputError, ArtifactError, DataError, FileNotFoundError) as e:  # bad input, missing file or data
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
