"""CNN track: train one backbone on FER2013-5, evaluate it, write its report, optionally ship it.

    python experiments/cnn_transfer.py --backbone vggbn --epochs 40 --ship
    python experiments/cnn_transfer.py --backbone vggface --weights vggface     # online users
    python experiments/cnn_transfer.py --backbone mobilenetv2 --weights imagenet --mode head-then-all
    python experiments/cnn_transfer.py --weights models/vggbn.keras --epochs 8 --lr 3e-4 --ferplus-mix 0.5
    python experiments/cnn_transfer.py --weights models/vggbn-soup.keras --teacher ensemble --teacher-views 2 --tta
    python experiments/cnn_transfer.py --weights models/vggbn-kdv-soup.keras --teacher ensemble --framed-views 0 --tta
    python experiments/cnn_transfer.py --weights models/vggbn-kdv-soup.keras --widths 64-128-256-512 --widen \
        --teacher ensemble --framed-views 0 1      # a wider student that starts as the narrow one

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
    p.add_argument("--widths", default=None, metavar="W1-W2-W3-W4",
                   help="vggbn only: conv widths per block (default 48-96-192-384), e.g. 64-128-256-512")
    p.add_argument("--widen", action="store_true",
                   help="widen the narrower vggbn in --weights (.keras) to --widths keeping its function "
                        "(Net2WiderNet, fer_hybrid.cnn.widen) before training")
    p.add_argument("--widen-noise", type=float, default=0.01,
                   help="with --widen: noise on the copied channels, x the layer's kernel std (default 0.01)")
    p.add_argument("--image-size", type=int, default=None, help="network input size (default: the backbone's)")
    p.add_argument("--optimizer", default=d.optimizer, choices=["adam", "adamw", "sgd"])
    p.add_argument("--lr", type=float, default=d.learning_rate)
    p.add_argument("--schedule", default=d.schedule, choices=["cosine", "plateau", "constant"])
    p.add_argument("--label-smoothing", type=float, default=d.label_smoothing)
    p.add_argument("--ferplus-mix", type=float, default=d.ferplus_mix,
                   help="train on (1-m) * FER2013 one-hot + m * FER+ vote shares (default 0: FER2013 labels only; "
                        "FER+ files from $FERPLUS_DIR)")
    p.add_argument("--teacher", default=None,
                   help="distil from this registered model, or a CNN-ensemble descriptor .json (its CNN ensemble, "
                        "under its own TTA policy): targets = "
                        "[teacher probabilities on the training images, FER2013 one-hot]")
    p.add_argument("--kd-temperature", type=float, default=2.0, help="distillation temperature T (with --teacher)")
    p.add_argument("--kd-alpha", type=float, default=0.7,
                   help="weight of the distillation term; 1 - alpha goes to the FER2013 label (with --teacher)")
    p.add_argument("--teacher-views", type=int, default=0,
                   help="with --teacher: also distil on N fixed augmented views of every training image, each with "
                        "the teacher's answer on that view; epochs keep the original size, online augmentation is "
                        "the flip only (default 0: the original images with online augmentation)")
    p.add_argument("--teacher-views-tta", default="flip",
                   help="the teacher's TTA policy on the augmented views (flip-symmetric, so a view and its mirror "
                        "share one target)")
    p.add_argument("--teacher-views-seed", type=int, nargs="+", default=[0],
                   help="seed(s) of the augmented views: N views per seed, each seed's teacher answers cached on "
                        "their own, so adding a seed to an earlier run computes only the new views (default 0)")
    p.add_argument("--framed-views", type=int, nargs="+", default=None, metavar="SEED",
                   help="with --teacher: also distil on the Analyzer's crop of every training face found in one random "
                        "frame per seed (fer_hybrid.evaluation.framed_views), each with the teacher's answer on the "
                        "clean face; epochs keep the original size, online augmentation is the flip only")
    p.add_argument("--framed-jobs", type=int, default=2, help="processes rendering and detecting framed views")
    p.add_argument("--unlabelled-faces", default=None, metavar="CLASSES",
                   help="with --teacher: also the training faces of these FER2013 classes outside the study "
                        "(e.g. neutral,disgust), each with the teacher's probabilities as its only target")
    p.add_argument("--view-augment", type=float, default=0.0,
                   help="with --teacher-views: online augmentation on top of the fixed views, as a fraction of the "
                        "training augmentation's ranges (default 0: the flip only)")
    p.add_argument("--class-weights", action="store_true")
    p.add_argument("--mode", default=d.mode, choices=["all", "head-then-all"])
    p.add_argument("--patience", type=int, default=d.patience)
    p.add_argument("--no-augment", action="store_true")
    p.add_argument("--low-res", type=float, default=0.0,
                   help="degradation: max relative loss of resolution (0.5: down to 24 px and back), see "
                        "fer_hybrid.data.degrade")
    p.add_argument("--blur", type=float, default=0.0, help="degradation: max Gaussian blur sigma (px of 48)")
    p.add_argument("--noise", type=float, default=0.0, help="degradation: max Gaussian noise std (grey levels)")
    p.add_argument("--degrade-p", type=float, default=0.25, help="probability of each degradation per image")
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


def main(argv=None, default_backbone: str = "vggbn", kind: str = "cnn") -> int:
    args = parse_args(argv, default_backbone)
    from fer_hybrid import artifacts, reports
    from fer_hybrid.cnn.train import TrainConfig, fit, save_model, ship_model
    from fer_hybrid.cnn.vggbn import parse_widths
    from fer_hybrid.data import Augment, DataError, load_fer2013
    from fer_hybrid.evaluate import command_line
    from fer_hybrid.evaluation import transfer_report as T
    from fer_hybrid.artifacts import manifest_metrics

    name = args.name or args.backbone
    command = command_line()
    if args.teacher_views and not args.teacher or args.teacher_views < 0:
        print("error: --teacher-views needs --teacher and a count >= 0", file=sys.stderr)
        return 2
    if args.framed_views and (not args.teacher or args.teacher_views):
        print("error: --framed-views needs --teacher and excludes --teacher-views", file=sys.stderr)
        return 2
    if args.framed_views and (len(set(args.framed_views)) != len(args.framed_views) or args.framed_jobs < 1):
        print("error: --framed-views seeds must be distinct and --framed-jobs >= 1", file=sys.stderr)
        return 2
    if args.unlabelled_faces and not args.teacher:
        print("error: --unlabelled-faces needs --teacher", file=sys.stderr)
        return 2
    try:
        unlabelled = T.unlabelled_classes(args.unlabelled_faces) if args.unlabelled_faces else ()
    except ValueError as e:
        print(f"error: --unlabelled-faces: {e}", file=sys.stderr)
        return 2
    if args.view_augment and not (args.teacher_views or args.framed_views):
        print("error: --view-augment needs --teacher-views or --framed-views", file=sys.stderr)
        return 2
    try:
        model_kwargs = {"widths": list(parse_widths(args.widths))} if args.widths else {}
    except ValueError as e:
        print(f"error: --widths: {e}", file=sys.stderr)
        return 2
    if model_kwargs and args.backbone != "vggbn":
        print(f"error: --widths applies to the vggbn backbone, not {args.backbone}", file=sys.stderr)
        return 2
    if args.widen and not (model_kwargs and str(args.weights).endswith(".keras")) or args.widen_noise < 0:
        print("error: --widen needs --widths, a .keras file in --weights and --widen-noise >= 0", file=sys.stderr)
        return 2
    if len(set(args.teacher_views_seed)) != len(args.teacher_views_seed):
        print(f"error: --teacher-views-seed values must be distinct, got {args.teacher_views_seed}", file=sys.stderr)
        return 2

    try:
        augment = dataclasses.replace(Augment.none() if args.no_augment else Augment(), low_res=args.low_res,
                                      blur=args.blur, noise=args.noise, degrade_p=args.degrade_p)
        view_augment = augment.scaled(args.view_augment)  # online on top of fixed teacher views
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2

    # 1. Data: FER2013 restricted to the five study emotions; targets = labels, FER+ soft labels or a teacher's.
    try:
        data = load_fer2013(args.data)
    except (FileNotFoundError, DataError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.max_train:
        data.train = data.train.subset(slice(0, args.max_train))
    from fer_hybrid.ferplus import FerPlusError

    try:  # FER+ soft labels mixed in (--ferplus-mix), else the FER2013 labels
        train_targets, labels = (T.ferplus_mix_targets(data.train, data.classes, args.ferplus_mix)
                                 if args.ferplus_mix else (None, T.FER2013_LABELS))
    except (FileNotFoundError, FerPlusError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    teacher, train_data = None, data
    views = None  # distillation on fixed extra images of the training faces, each with its teacher target
    if args.teacher and args.framed_views:  # + the Analyzer's crops of the training faces in random frames
        views = lambda: T.distillation_with_framed_views(  # noqa: E731
            args.teacher, data.train, data.classes, args.kd_temperature, args.kd_alpha, args.framed_views,
            args.framed_jobs)
    elif args.teacher and args.teacher_views:  # + the teacher's answers on fixed views (flip, degradations online)
        views = lambda: T.distillation_with_views(  # noqa: E731
            args.teacher, data.train, data.classes, args.kd_temperature, args.kd_alpha, args.teacher_views,
            args.teacher_views_seed, args.teacher_views_tta)
    if views is not None:
        try:
            union, train_targets, teacher, labels = views()
        except (ValueError, FileNotFoundError) as e:  # no such teacher, unknown TTA policy, bad settings
            print(f"error: {e}", file=sys.stderr)
            return 2
        train_data = dataclasses.replace(data, train=union)
        augment = view_augment
    elif args.teacher:  # knowledge distillation: the teacher's probabilities on every training image, cached
        try:
            train_targets, teacher, labels = T.distillation_from(args.teacher, data.train, data.classes,
                                                                 args.kd_temperature, args.kd_alpha)
        except (ValueError, FileNotFoundError) as e:  # no such teacher, or one that cannot answer
            print(f"error: {e}", file=sys.stderr)
            return 2
    if unlabelled:  # + faces outside the study classes, answered by the teacher only
        try:
            union, train_targets, teacher, labels = T.with_unlabelled_faces(
                args.teacher, train_data.train, train_targets, teacher, labels, data.source, unlabelled)
        except (ValueError, DataError, FileNotFoundError) as e:
            print(f"error: --unlabelled-faces: {e}", file=sys.stderr)
            return 2
        train_data = dataclasses.replace(train_data, train=union)

    # 2. Training: all layers, AdamW + cosine schedule by default, augmentation, early stopping on val.
    cfg = TrainConfig(backbone=args.backbone, weights=args.weights, input_size=args.image_size, epochs=args.epochs,
                      batch_size=args.batch_size, optimizer=args.optimizer, learning_rate=args.lr,
                      schedule=args.schedule, label_smoothing=args.label_smoothing, ferplus_mix=args.ferplus_mix,
                      class_weights=args.class_weights,
                      distill_temperature=args.kd_temperature if args.teacher else 0.0,
                      distill_alpha=args.kd_alpha if args.teacher else 0.0,
                      mode=args.mode, patience=args.patience, seed=args.seed, precision=args.precision,
                      strategy=args.strategy, augment=dataclasses.asdict(augment),
                      epoch_size=len(data.train) if train_data is not data else None,
                      model_kwargs=model_kwargs, widen=args.widen, widen_noise=args.widen_noise if args.widen else 0.0)
    try:
        result = fit(cfg, train_data, Path(args.checkpoints) / name, resume=not args.no_resume,
                     train_targets=train_targets)
    except ValueError as e:  # a --weights network that does not fit the backbone or cannot be widened
        print(f"error: {e}", file=sys.stderr)
        return 2

    # 3. Evaluation on train / val / test (test touched once, here), and batch-1 latency, of what ships.
    shipped, predictor, metrics, latency, as_run = T.evaluate_shipped(result.model, name, data, args.flip_in_graph,
                                                                      args.tta)

    # 4. Artifacts: the float32 model, optionally shipped in models/ with a manifest entry (and ONNX beside it).
    artifact_path = save_model(shipped, Path(args.checkpoints) / name / "final.keras")
    if args.ship:
        artifact_path, warning = ship_model(shipped, artifacts.models_dir() / f"{name}.keras")
        if warning:
            print(warning, file=sys.stderr)
    onnx_info = None
    if args.onnx:
        from fer_hybrid.evaluation.onnx_check import export_and_check

        onnx_info = export_and_check(shipped, artifact_path.with_suffix(".onnx"), predictor.predict_proba,
                                     data.val.x, data.test.x[:1], latency, name, ROOT)

    # 5. Report: same schema as every experiment, plus training curves.
    report = T.transfer_report(
        name=name, kind=kind, cfg=cfg, result=result, metrics=metrics, latency=latency,
        artifact=reports.artifact_info(artifact_path, ROOT), data=data, command=command, image_size=args.image_size,
        flip_in_graph=args.flip_in_graph, tta=args.tta, as_run=as_run, onnx=onnx_info,
        labels_trained_on=labels, teacher=teacher)
    out_dir = Path(args.reports) / name
    reports.save_history_png(result.history, out_dir / "training_curves.png", title=name)
    path = reports.write_report(report, out_dir)
    if args.ship:
        artifacts.update_manifest(name, artifact_path, command=command, data=report["data"], weights=args.weights,
                                  metrics=manifest_metrics(metrics), report=reports.repo_path(path, ROOT))
    print(json.dumps({"name": name, "test_accuracy": metrics["test"]["accuracy"],
                      "test_macro_f1": metrics["test"]["macro_f1"], "report": str(path)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
