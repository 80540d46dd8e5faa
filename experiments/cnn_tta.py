"""Test-time augmentation for a shipped CNN: choose the TTA policy on val, report it once on test.

    python experiments/cnn_tta.py --model vggbn
    python experiments/cnn_tta.py --model baseline --policies none flip flip-shift
    python experiments/cnn_tta.py --model vggbn --pause-pid-file /tmp/fer_training.pid   # clean timing

Method
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
import contextlib
import json
import os
import signal
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REPORTS = ROOT / "experiments" / "reports"
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "fer2013" / "fer2013_images.tar.gz"
EXIT_BAD_INPUT = 2


class UsageError(Exception):
    """Bad command-line input (unknown model/policy, missing artifact or data): one line, exit 2."""


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


# ---------------------------------------------------------------------------------------------
# Steps
# ---------------------------------------------------------------------------------------------
def load_data(source):
    from fer_hybrid.data import DataError, load_fer2013

    if source is None and not os.environ.get("FER2013_PATH") and DEFAULT_DATA.exists():
        source = DEFAULT_DATA
    try:
        return load_fer2013(source)
    except (FileNotFoundError, DataError) as e:
        raise UsageError(str(e)) from None


def cnn_artifact(name: str, models_root):
    """(artifact path, registry spec) of a shipped Keras CNN; UsageError for a non-Keras or missing model."""
    from fer_hybrid.artifacts import models_dir
    from fer_hybrid.predictors import model_spec

    try:
        spec = model_spec(name)
    except ValueError as e:
        raise UsageError(str(e)) from None
    if spec.kind not in ("cnn", "baseline") or not spec.artifact.endswith(".keras"):
        raise UsageError(f"model {name!r} is a {spec.kind} model; TTA applies to the Keras CNNs")
    path = Path(models_root or models_dir()) / spec.artifact
    if not path.exists():
        raise UsageError(f"model {name!r} has no artifact at {path}; train it with `{spec.train_command}`")
    return path, spec


def load_cnn(path):
    from fer_hybrid.predictors import ArtifactError, load_keras_model

    try:
        return load_keras_model(path)
    except ArtifactError as e:
        raise UsageError(str(e)) from None


def compare_on_val(predict_fn, data, policies, batch_size):
    """[{policy, views, accuracy, macro_f1, metrics}] on val, in the given order (each distinct view predicted once)."""
    from fer_hybrid.cnn.tta import policy_proba, tta_policy
    from fer_hybrid.evaluate import metrics_from_proba

    probas = policy_proba(predict_fn, data.val.x, policies, batch_size, progress=True)
    rows = []
    for policy in policies:
        m = metrics_from_proba(data.val.y, probas[policy], data.classes)
        rows.append({"policy": policy, "views": len(tta_policy(policy)), "accuracy": m["accuracy"],
                     "macro_f1": m["macro_f1"], "metrics": m})
    return rows


def evaluate_policy(predict_fn, data, policy, splits, batch_size):
    """{split: metrics} of one policy; a split left out (train, optional) gets null scores."""
    from fer_hybrid.cnn.tta import predict_tta
    from fer_hybrid.evaluate import metrics_from_proba

    out = {}
    for s in ("train", "test"):
        split = data.split(s)
        if s in splits:
            out[s] = metrics_from_proba(split.y, predict_tta(predict_fn, split.x, policy, batch_size), data.classes)
        else:
            out[s] = {"n": len(split), "accuracy": None, "macro_f1": None,
                      "note": "not evaluated with TTA (pass --train)"}
    return out


def choose(rows):
    """The row with the best val accuracy; ties go to fewer views, then to the earlier policy."""
    return min(enumerate(rows), key=lambda ir: (-ir[1]["accuracy"], ir[1]["views"], ir[0]))[1]


@contextlib.contextmanager
def paused(pid_file):
    """SIGSTOP the process named in ``pid_file`` (if given and present) for the block; SIGCONT always."""
    pid = None
    if pid_file and Path(pid_file).exists():
        try:
            pid = int(Path(pid_file).read_text().split()[0])
            os.kill(pid, signal.SIGSTOP)
        except (ValueError, IndexError, ProcessLookupError, PermissionError) as e:
            print(f"warning: not pausing pid from {pid_file}: {e}", file=sys.stderr)
            pid = None
    try:
        yield pid
    finally:
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)


def time_policies(model, name, policies, face, pid_file):
    """{policy: batch-1 ms per face} through TTAPredictor (compiled tf.function), others paused."""
    from fer_hybrid.cnn.tta import TTAPredictor
    from fer_hybrid.evaluate import ms_per_face

    predictors = {p: TTAPredictor(model, name, p) for p in policies}
    for pred in predictors.values():  # trace outside the paused window
        pred.predict_proba(face)
    with paused(pid_file):
        return {p: ms_per_face(pred.predict_proba, face) for p, pred in predictors.items()}


def save_val_png(rows, chosen, path, title):
    from fer_hybrid.reports import pyplot, save_figure

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 3.6))
    names = [f"{r['policy']}\n({r['views']})" for r in rows]
    acc = [r["accuracy"] for r in rows]
    bars = ax.bar(names, acc, color=["tab:orange" if r is chosen else "tab:blue" for r in rows])
    ax.bar_label(bars, labels=[f"{a:.4f}" for a in acc], fontsize=8)
    lo = min(acc)
    ax.set_ylim(max(0.0, lo - 0.02), min(1.0, max(acc) + 0.01))
    ax.set_ylabel("val accuracy")
    ax.set_title(title)
    fig.tight_layout()
    return save_figure(fig, path)


def base_report_fields(reports_dir, name, artifact):
    """Training facts (backbone, image size, epochs, seconds/epoch) from the model's own report, if that
    report describes this very file (same sha256); else ({}, None)."""
    from fer_hybrid.evaluate import file_sha256
    from fer_hybrid.reports import ReportError, read_report

    path = Path(reports_dir) / name / "report.json"
    try:
        base = read_report(path)
    except (ReportError, OSError):
        return {}, None
    if (base.get("artifact") or {}).get("sha256") != file_sha256(artifact):
        return {}, None
    keep = ("backbone", "image_size", "epochs", "best_epoch", "seconds_per_epoch")
    shown = path.resolve().relative_to(ROOT).as_posix() if path.resolve().is_relative_to(ROOT) else str(path)
    return {k: base.get(k) for k in keep}, shown


# ---------------------------------------------------------------------------------------------
# Method
# ---------------------------------------------------------------------------------------------
def run(args) -> Path:
    from fer_hybrid.keras_io import configure_tensorflow_threads

    configure_tensorflow_threads(args.tf_threads, 1)

    from fer_hybrid import reports
    from fer_hybrid.artifacts import read_manifest
    from fer_hybrid.cnn.tta import TTA_DESCRIPTIONS, keras_predict_fn, list_tta, tta_policy
    from fer_hybrid.evaluate import command_line

    policies = args.policies or list_tta()
    if args.batch_size < 1:
        raise UsageError(f"--batch-size must be >= 1, got {args.batch_size}")
    try:
        for p in policies:
            tta_policy(p)
    except ValueError as e:
        raise UsageError(str(e)) from None
    artifact, spec = cnn_artifact(args.model, args.models)
    name = f"{args.model}-tta"

    # 1-2. Data and the shipped model, through one compiled function (float32 (m, 48, 48, 1) -> (m, 5)).
    data = load_data(args.data)
    model = load_cnn(artifact)
    predict_fn = keras_predict_fn(model)

    # 3-4. Every policy on val; the best by val accuracy is chosen. Test is untouched so far.
    rows = compare_on_val(predict_fn, data, policies, args.batch_size)
    best = choose(rows)
    policy = best["policy"]
    for r in rows:
        print(f"val {r['policy']:<12} views {r['views']:>2}  acc {r['accuracy']:.4f}  macro-F1 {r['macro_f1']:.4f}"
              + ("  <- chosen" if r is best else ""))

    # 4'. The chosen policy on test (evaluated once, here), and on train with --train (overfitting gap).
    metrics = evaluate_policy(predict_fn, data, policy, ("train", "test") if args.train else ("test",),
                              args.batch_size)
    metrics = {"train": metrics["train"], "val": best["metrics"], "test": metrics["test"]}

    # 5. Batch-1 latency of the chosen policy (and of no TTA for reference).
    timed = {} if args.no_timing else time_policies(model, args.model, list(dict.fromkeys(["none", policy])),
                                                     data.test.x[:1], args.pause_pid_file)

    # 6. Report.
    out_dir = Path(args.reports) / name
    out_dir.mkdir(parents=True, exist_ok=True)
    save_val_png(rows, best, out_dir / "val_policies.png", f"{args.model}: val accuracy by TTA policy (views)")
    weights = read_manifest(args.models).get("models", {}).get(args.model, {}).get("weights")
    trained, base_report = base_report_fields(args.reports, args.model, artifact)
    table = "; ".join(f"{r['policy']} ({r['views']} view{'s' * (r['views'] > 1)}) {r['accuracy']:.4f} / "
                      f"{r['macro_f1']:.4f}" for r in rows)
    notes = (f"test-time augmentation of the shipped {args.model} model (no retraining); "
             + ("trained from random initialisation (weights=None), no pretrained weights are available offline; "
                if weights is None else f"initial weights: {weights}; ")
             + f"policy {policy!r} = {TTA_DESCRIPTIONS.get(policy, '')}, chosen by val accuracy (ties: fewer views) "
             f"among: {table} (val accuracy / macro-F1); test was evaluated only for the chosen policy"
             + ("" if args.train else "; train not evaluated with TTA (null)") + "; "
             + ("epochs and seconds per epoch are those of the base model's training run"
                if trained else "the base model's training report was not found"))
    report = reports.make_report(
        name=name, kind=spec.kind, weights=weights, metrics=metrics, command=command_line(),
        ms_per_face=timed.get(policy), params=int(model.count_params()),
        artifact=reports.artifact_info(artifact, ROOT),
        data={"source": Path(data.source).name, "sha256": data.sha256},
        **trained, base_model=args.model, base_report=base_report, tta=policy,
        tta_views=len(tta_policy(policy)), tta_selection="best val accuracy; ties -> fewer views",
        tta_val=[{k: r[k] for k in ("policy", "views", "accuracy", "macro_f1")} for r in rows],
        ms_per_face_by_policy=timed or None, tf_intra_op_threads=args.tf_threads,
        notes=notes, figures=["val_policies.png"])
    path = reports.write_report(report, out_dir)
    print(json.dumps({"name": name, "policy": policy, "val_accuracy": best["accuracy"],
                      "test_accuracy": metrics["test"]["accuracy"], "test_macro_f1": metrics["test"]["macro_f1"],
                      "ms_per_face": timed.get(policy), "report": str(path)}))
    return path


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        run(args)
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    return 0


if __name__ == "__main__":
    sys.exit(main())
