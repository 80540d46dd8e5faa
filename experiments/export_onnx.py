"""Export a shipped CNN to ONNX with its flip TTA inside the graph, and measure it against Keras in one run.

    python experiments/export_onnx.py [--model best-val] [--ship] [--make-default]

Method:
1. The model: a shipped Keras CNN from the manifest; ``best-val`` (the default) takes the single Keras CNN
   with the best recorded val accuracy as the registry runs it (TTA included) - chosen on val, never on test.
2. The export: the network wrapped with :func:`fer_hybrid.cnn.export.with_flip_tta` (the registry's flip
   policy, in the graph) and written as ONNX (Keras 3 ``model.export``, tf2onnx underneath).
3. Agreement: the largest absolute difference between the ONNX and the registry's Keras probabilities on
   every val and test image; the bar is 1e-4.
4. Speed, same process, same thread count (by default as the Analyzer runs: 2, or 1 on one core): median batch-1 ms per face
   of both, alternating blocks so load changes hit both alike.
5. Accuracy of the ONNX model as run (train/val/test) in a standard report, ``experiments/reports/NAME-onnx``.
6. ``--ship`` writes ``models/NAME.onnx`` and the manifest entry ``NAME-onnx`` (loader ``onnx``);
   ``--make-default`` then makes the model the default if its val accuracy as run beats the current
   default's (chosen on val) and, when the default has an in-the-frame report, the Keras model's own in-frame
   report (``experiments/inframe.py --model NAME --variants V --splits val``, run before) is not lower on val:
   the ONNX entry when it agrees within 1e-4 and is faster, else the Keras entry. The decision and its
   reason go into the report (``default_decision``); a refusal exits 1 (the export and its entry stay).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="best-val", help="a shipped Keras CNN, or best-val (default)")
    ap.add_argument("--data", default=None, help="FER2013 folder/.tar.gz/csv (default: $FER2013_PATH)")
    ap.add_argument("--threads", type=int, default=None,
                    help="intra-op threads of both runtimes (default: as the Analyzer runs, keras_io.default_intra_op_threads)")
    ap.add_argument("--repeats", type=int, default=5, help="alternating timing blocks of 50 calls (default 5)")
    ap.add_argument("--ship", action="store_true", help="write models/NAME.onnx and its manifest entry")
    ap.add_argument("--make-default", action="store_true",
                    help="with --ship: make the faster agreeing form the default if it beats the default on val "
                         "(on the crops, and in the frame when the default has an in-frame report)")
    ap.add_argument("--reports", default=str(ROOT / "experiments" / "reports"))
    args = ap.parse_args(argv)
    if args.make_default and not args.ship:
        ap.error("--make-default needs --ship (only a shipped model can become the default)")
    if args.threads is None:
        from fer_hybrid.keras_io import default_intra_op_threads

        args.threads = default_intra_op_threads()
    os.environ.update({"TF_NUM_INTRAOP_THREADS": str(args.threads), "TF_NUM_INTEROP_THREADS": "1"})

    from fer_hybrid import artifacts, reports
    from fer_hybrid.data import load_fer2013
    from fer_hybrid.evaluate import command_line, evaluate_predictor
    from fer_hybrid.evaluation import inframe_report, onnx_check as O
    from fer_hybrid.artifacts import manifest_metrics
    from fer_hybrid.predictors import load_predictor, model_spec

    # 1. The model, chosen on val among the shipped single Keras CNNs.
    manifest = artifacts.read_manifest()["models"]
    keras_cnns = O.shipped_keras_cnns(manifest)
    try:
        name = O.choose_keras_cnn(keras_cnns, args.model)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    spec = model_spec(name)
    if spec.tta not in ("flip", "none"):
        print(f"error: {name} runs with TTA {spec.tta!r}; only 'flip' or 'none' can go into the graph", file=sys.stderr)
        return 2
    data = load_fer2013(args.data)
    keras_pred = load_predictor(name)

    # 2. The export: the registry's flip policy inside the graph.
    from fer_hybrid.cnn.export import export_onnx, with_flip_tta
    from fer_hybrid.onnx_model import OnnxPredictor

    graph = with_flip_tta(keras_pred.model, name=name.replace("-", "_")) if spec.tta == "flip" else keras_pred.model
    out = (artifacts.models_dir() if args.ship else ROOT / "experiments" / "checkpoints" / f"{name}-onnx") / f"{name}.onnx"
    out.parent.mkdir(parents=True, exist_ok=True)
    export_onnx(graph, out)
    onnx_pred = OnnxPredictor(out, f"{name}-onnx", threads=args.threads)

    # 3. Agreement with the registry's Keras predictor on every val and test image.
    diffs, keras_accuracy = O.agreement(keras_pred.predict_proba, onnx_pred.predict_proba, data)

    # 4. Speed, batch 1, alternating blocks in this one process.
    times, ms = O.alternating_ms({"keras": keras_pred.predict_proba, "onnx": onnx_pred.predict_proba},
                                 data.test.x[:1], args.repeats)
    load = os.getloadavg()[0]
    onnx = O.onnx_fields(diffs, ms, times, keras_accuracy, args.threads, load)

    # 5. The ONNX model's accuracy as run; with --make-default, the decision against the current default.
    metrics = evaluate_predictor(onnx_pred.predict_proba, data)
    decision = None
    if args.ship and args.make_default:
        current = artifacts.read_manifest()
        better, why = O.beats_default(
            current, metrics["val"]["accuracy"], inframe=inframe_report.find_report(args.reports, name),
            default_inframe=inframe_report.find_report(args.reports, current.get("default")))
        decision = {"made": better, "reason": why,
                    "default": (f"{name}-onnx" if onnx["agrees"] and onnx["faster"] else name) if better else None}
    report = reports.make_report(
        name=f"{name}-onnx", kind="cnn", weights=f"models/{spec.artifact}", metrics=metrics, command=command_line(),
        ms_per_face=ms["onnx"], artifact=reports.artifact_info(out, ROOT),
        data={"source": Path(data.source).name, "sha256": data.sha256},
        tta=f"{spec.tta} (in the ONNX graph)", evaluated_as_run=True, exported_from=name, onnx=onnx,
        default_decision=decision,
        notes=(f"{O.choice_note(name, args.model, keras_cnns)}; batch-1 ms per face of the registry's Keras "
               f"predictor ({spec.tta} TTA) and of the ONNX graph measured in one process with {args.threads} "
               f"thread(s), load average {load:.2f}" + (f"; --make-default: {decision['reason']}" if decision else "")))
    path = reports.write_report(report, Path(args.reports) / f"{name}-onnx")
    summary = {"model": name, "onnx": str(out), "max_abs_diff": diffs, "agrees": onnx["agrees"], "ms_per_face": ms,
               "val": metrics["val"]["accuracy"], "test": metrics["test"]["accuracy"], "report": str(path)}

    # 6. Ship, and choose the default form.
    if args.ship:
        artifacts.update_manifest(
            f"{name}-onnx", out, command=command_line(), data=report["data"], weights=f"models/{spec.artifact}",
            metrics=manifest_metrics(metrics), report=reports.repo_path(path, ROOT), kind="cnn", loader="onnx",
            description=f"{name} with its {spec.tta} TTA inside an ONNX graph, run by onnxruntime without TensorFlow",
            train_command=manifest[name].get("train_command") or manifest[name].get("command"))
        if decision:
            print(decision["reason"])
            if decision["made"]:
                artifacts.set_default(decision["default"])
                summary["default"] = decision["default"]
    print(json.dumps(summary))
    return 1 if decision and not decision["made"] else 0


if __name__ == "__main__":
    sys.exit(main())
