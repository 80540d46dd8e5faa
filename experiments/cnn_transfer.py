"""CNN track: train one backbone on FER2013-5, evaluate it, write its report, optionally ship it.

    python experiments/cnn_transfer.py --backbone vggbn --epochs 40 --ship
    python experiments/cnn_transfer.py --backbone vggface --weights vggface     # online users
    python experiments/cnn_transfer.py --backbone mobilenetv2 --weights imagenet --mode head-then-all
    python experiments/cnn_transfer.py --weights models/vggbn.keras --epochs 8 --lr 3e-4 --ferplus-mix 0.5

Method: the 5 study classes; train = Training, val = PublicTest (model selection, early stopping),
test = PrivateTest (reported once). All layers are fine-tuned (``--mode all``, the study's protocol).
Without network access here, weights default to None (random initialisation) and the report says so.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def parse_args(argv=None, default_backbone: str = "vggbn") -> argparse.Namespace:
    from fer_hybrid.cnn.train import TrainConfig

    d = TrainConfig()
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--backbone", default=default_backbone)
    p.add_argument("--weights", default=None, help="None (default), imagenet, vggface, or a weights file")
    p.add_argument("--data", default=None, help="FER2013 folder/.tar.gz/csv (default: $FER2013_PATH)")
    p.add_argument("--epochs", type=int, default=d.epochs)
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--image-size", type=int, default=None, help="network input size (default: the backbone's)")
    p.add_argument("--optimizer", default=d.optimizer, choices=["adam", "adamw", "sgd"])
    p.add_argument("--lr", type=float, default=d.learning_rate)
    p.add_argument("--schedule", default=d.schedule, choices=["cosine", "plateau", "constant"])
    p.add_argument("--label-smoothing", type=float, default=d.label_smoothing)
    p.add_argument("--ferplus-mix", type=float, default=d.ferplus_mix,
                   help="train on (1-m) * FER2013 one-hot + m * FER+ vote shares (default 0: FER2013 labels only; "
                        "FER+ files from $FERPLUS_DIR)")
    p.add_argument("--teacher", default=None,
                   help="distil from this registered model (its CNN ensemble, under its own TTA policy): targets = "
                        "[teacher probabilities on the training images, FER2013 one-hot]")
    p.add_argument("--kd-temperature", type=float, default=2.0, help="distillation temperature T (with --teacher)")
    p.add_argument("--kd-alpha", type=float, default=0.7,
                   help="weight of the distillation term; 1 - alpha goes to the FER2013 label (with --teacher)")
    p.add_argument("--class-weights", action="store_true")
    p.add_argument("--mode", default=d.mode, choices=["all", "head-then-all"])
    p.add_argument("--patience", type=int, default=d.patience)
    p.add_argument("--no-augment", action="store_true")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--precision", default=d.precision, choices=["auto", "float32", "mixed_bfloat16", "mixed_float16"])
    p.add_argument("--strategy", default=d.strategy, choices=["default", "mirrored", "multiworker"])
    p.add_argument("--tta", action="store_true", help="average predictions with the flipped face at evaluation")
    p.add_argument("--flip-in-graph", action="store_true",
                   help="ship the model with the flip TTA inside its graph, so the registry runs what the report "
                        "measures (evaluation then uses the shipped model exactly)")
    p.add_argument("--onnx", action="store_true",
                   help="also export the shipped model to ONNX (<name>.onnx beside it) and measure it against Keras")
    p.add_argument("--name", default=None, help="report name (default: the backbone)")
    p.add_argument("--reports", default=str(ROOT / "experiments" / "reports"))
    p.add_argument("--checkpoints", default=str(ROOT / "experiments" / "checkpoints"))
    p.add_argument("--ship", action="store_true", help="copy the trained model to models/ and the manifest")
    p.add_argument("--no-resume", action="store_true")
    p.add_argument("--max-train", type=int, default=None, help="use only the first N training images (smoke runs)")
    return p.parse_args(argv)


def teacher_key(name: str, cnn) -> str:
    """What the teacher's answers depend on: its CNN files' sha256, member weights and TTA policy (so that a
    descriptor edit that changes none of them keeps the cached targets); else the manifest's sha256."""
    from fer_hybrid import artifacts
    from fer_hybrid.evaluate import file_sha256

    if getattr(cnn, "files", None):
        return json.dumps({"cnn_sha256": [file_sha256(f) for f in cnn.files],
                           "weights": [round(float(w), 6) for w in cnn.weights], "tta": cnn.tta}, sort_keys=True)
    return artifacts.read_manifest().get("models", {}).get(name, {}).get("sha256", name)


def main(argv=None, default_backbone: str = "vggbn", kind: str = "cnn") -> int:
    args = parse_args(argv, default_backbone)
    from fer_hybrid import artifacts, reports
    from fer_hybrid.cnn.train import TrainConfig, fit, predict_proba, save_model
    from fer_hybrid.data import Augment, DataError, load_fer2013
    from fer_hybrid.evaluate import command_line, evaluate_predictor, ms_per_face
    from fer_hybrid.predictors import KerasPredictor

    name = args.name or args.backbone
    command = command_line()

    # 1. Data: FER2013 restricted to the five study emotions.
    try:
        data = load_fer2013(args.data)
    except (FileNotFoundError, DataError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.max_train:
        data.train = data.train.subset(slice(0, args.max_train))
    labels_trained_on, train_targets = "FER2013 (original labels)", None
    if args.ferplus_mix:
        from fer_hybrid.ferplus import FerPlusError, ferplus_vote_shares, soft_targets

        try:
            train_targets, n_voted = soft_targets(data.train, ferplus_vote_shares(classes=data.classes),
                                                  args.ferplus_mix, len(data.classes))
        except (FileNotFoundError, FerPlusError, ValueError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        labels_trained_on = (f"soft targets: {1 - args.ferplus_mix:g} x FER2013 one-hot + {args.ferplus_mix:g} x "
                             f"FER+ vote shares over the {len(data.classes)} classes ({n_voted} of {len(data.train)} training images "
                             "have FER+ votes; the rest keep the FER2013 label)")

    teacher_info = None
    if args.teacher:  # knowledge distillation: the teacher's probabilities on every training image, cached
        from fer_hybrid.cnn.distill import cached_teacher_proba, distillation_targets
        from fer_hybrid.data import cache_dir
        from fer_hybrid.predictors import load_predictor

        teacher = load_predictor(args.teacher)
        teacher_cnn = getattr(teacher, "cnn", teacher)  # a hybrid's CNN ensemble; else the model itself
        proba, teacher_info = cached_teacher_proba(teacher_cnn.predict_proba, data.train.x,
                                                   teacher_key(args.teacher, teacher_cnn), cache_dir())
        teacher_info.update(name=args.teacher, temperature=args.kd_temperature, alpha=args.kd_alpha,
                            tta=getattr(getattr(teacher, "cnn", teacher), "tta", None),
                            train_accuracy=float((proba.argmax(1) == data.train.y).mean()))
        train_targets = distillation_targets(proba, data.train.y, len(data.classes))
        labels_trained_on = (f"knowledge distillation from {args.teacher} (T={args.kd_temperature:g}, "
                             f"alpha={args.kd_alpha:g} on the teacher, {1 - args.kd_alpha:g} on the FER2013 label)")
        del teacher

    # 2. Training: all layers, AdamW + cosine schedule by default, augmentation, early stopping on val.
    cfg = TrainConfig(backbone=args.backbone, weights=args.weights, input_size=args.image_size, epochs=args.epochs,
                      batch_size=args.batch_size, optimizer=args.optimizer, learning_rate=args.lr,
                      schedule=args.schedule, label_smoothing=args.label_smoothing, ferplus_mix=args.ferplus_mix,
                      class_weights=args.class_weights,
                      distill_temperature=args.kd_temperature if args.teacher else 0.0,
                      distill_alpha=args.kd_alpha if args.teacher else 0.0,
                      mode=args.mode, patience=args.patience, seed=args.seed, precision=args.precision,
                      strategy=args.strategy,
                      augment=dataclasses.asdict(Augment.none() if args.no_augment else Augment()))
    result = fit(cfg, data, Path(args.checkpoints) / name, resume=not args.no_resume, train_targets=train_targets)
    model = result.model

    # 3. Evaluation on train / val / test (test touched once, here), and batch-1 latency, of what ships.
    shipped = model
    if args.flip_in_graph:
        from fer_hybrid.cnn.export import with_flip_tta

        shipped = with_flip_tta(model, name=name.replace("-", "_"))
    predictor = KerasPredictor(shipped, name)
    as_run = args.flip_in_graph or not args.tta
    metrics = evaluate_predictor(predictor.predict_proba if as_run else lambda x: predict_proba(model, x, tta=True),
                                 data)
    latency = ms_per_face(predictor.predict_proba, data.test.x[:1])

    # 4. Artifacts: the float32 model, optionally shipped in models/ with a manifest entry (and ONNX beside it).
    out_dir = Path(args.reports) / name
    final = save_model(shipped, Path(args.checkpoints) / name / "final.keras")
    artifact_path = final
    if args.ship:
        artifact_path = save_model(shipped, artifacts.models_dir() / f"{name}.keras")
        size_mb = artifact_path.stat().st_size / 2**20
        if size_mb > 60:
            print(f"warning: {artifact_path} is {size_mb:.1f} MB (> 60 MB limit)", file=sys.stderr)
    onnx_info = None
    if args.onnx:
        from fer_hybrid.cnn.export import export_onnx
        from fer_hybrid.onnx_model import OnnxPredictor

        onnx_path = export_onnx(shipped, artifact_path.with_suffix(".onnx"))
        onnx = OnnxPredictor(onnx_path, name)
        diff = float(np.abs(onnx.predict_proba(data.val.x) - predictor.predict_proba(data.val.x)).max())
        onnx_info = {"file": onnx_path.name, "sha256": reports.artifact_info(onnx_path, ROOT)["sha256"],
                     "max_abs_diff_vs_keras_val": diff,
                     "ms_per_face": ms_per_face(onnx.predict_proba, data.test.x[:1]), "keras_ms_per_face": latency}

    # 5. Report: same schema as every experiment, plus training curves.
    image_size = model.layers[1].output.shape[1] if args.image_size is None else args.image_size
    notes = ("trained from random initialisation (weights=None): no pretrained weights can be downloaded on "
             "this machine" if args.weights is None else f"initial weights: {args.weights}")
    if result.best_epoch >= result.epochs_run:
        notes += (f"; the best val accuracy came at the last of {result.epochs_run} epochs: the run was cut by its "
                  "epoch budget (CPU time), not by early stopping, so the model is under-trained")
    report = reports.make_report(
        name=name, kind=kind, weights=args.weights, metrics=metrics, command=command,
        seconds_per_epoch=result.seconds_per_epoch, ms_per_face=latency, params=int(model.count_params()),
        artifact=reports.artifact_info(artifact_path, ROOT), data={"source": Path(data.source).name, "sha256": data.sha256},
        backbone=args.backbone, image_size=image_size, epochs=result.epochs_run, best_epoch=result.best_epoch,
        precision=result.precision, tta=("flip (in the shipped graph)" if args.flip_in_graph else args.tta),
        evaluated_as_run=as_run, onnx=onnx_info, config=cfg.to_dict(), history=result.history,
        labels_trained_on=labels_trained_on, teacher=teacher_info,
        notes=notes, figures=["training_curves.png"])
    reports.save_history_png(result.history, out_dir / "training_curves.png", title=name)
    path = reports.write_report(report, out_dir)
    if args.ship:
        artifacts.update_manifest(name, artifact_path, command=command, data=report["data"], weights=args.weights,
                                  metrics={s: {"accuracy": metrics[s]["accuracy"], "macro_f1": metrics[s]["macro_f1"],
                                               "n": metrics[s]["n"]} for s in metrics},
                                  report=str(path.relative_to(ROOT)))
    print(json.dumps({"name": name, "test_accuracy": metrics["test"]["accuracy"],
                      "test_macro_f1": metrics["test"]["macro_f1"], "report": str(path)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
