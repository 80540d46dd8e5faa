"""Training for every backbone: fine-tune all layers (the study's protocol) or head first, then all.

Keras callbacks do the work: EarlyStopping on val accuracy, BackupAndRestore-style resumption from the
last checkpoint (written atomically every epoch with the optimizer state), the best checkpoint by val
accuracy, per-epoch wall time. Distribution is tf.distribute (``default``/``mirrored``/``multiworker``);
mixed precision is bfloat16 on CPUs with AVX512-BF16, float16 on GPUs, else float32.

>>> cfg = TrainConfig(backbone="vggbn", epochs=40)
>>> result = fit(cfg, data, checkpoint_dir="experiments/checkpoints/vggbn")
"""
from __future__ import annotations

import dataclasses
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from .. import _atomic
from ..data import Augment, FER2013, make_dataset


@dataclasses.dataclass
class TrainConfig:
    """Hyper-parameters of one run (all recorded in the report)."""

    backbone: str = "vggbn"
    weights: str | None = None           # None | "imagenet" | "vggface" | path
    input_size: int | None = None        # None: the backbone's default
    epochs: int = 40
    batch_size: int = 64
    optimizer: str = "adamw"             # adam | adamw | sgd
    learning_rate: float = 1e-3
    weight_decay: float = 1e-4           # AdamW decoupled decay
    schedule: str = "cosine"             # cosine | plateau | constant
    warmup_epochs: int = 1
    label_smoothing: float = 0.0
    ferplus_mix: float = 0.0             # share of the FER+ vote distribution in the training targets
    distill_temperature: float = 0.0     # > 0: knowledge distillation (targets = [teacher proba, one-hot])
    distill_alpha: float = 0.0           # weight of the distillation term (1 - alpha on the FER2013 label)
    class_weights: bool = False
    mode: str = "all"                    # all | head-then-all
    head_epochs: int = 2
    patience: int = 10                   # early stopping on val accuracy
    epoch_size: int | None = None        # training samples per epoch, drawn from a reshuffled repeat of the
                                         # train split (None: one pass), e.g. the original size when the split
                                         # also holds fixed augmented views
    augment: dict = dataclasses.field(default_factory=lambda: dataclasses.asdict(Augment()))
    seed: int = 42
    precision: str = "auto"              # auto | float32 | mixed_bfloat16 | mixed_float16
    strategy: str = "default"            # default | mirrored | multiworker
    model_kwargs: dict = dataclasses.field(default_factory=dict)  # e.g. {"widths": [64, 128, 256, 512]} (vggbn)
    widen: bool = False                  # a narrower vggbn in ``weights`` is widened to model_kwargs["widths"]
    widen_noise: float = 0.0             # (Net2WiderNet, fer_hybrid.cnn.widen) with this noise on the copies

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclasses.dataclass
class TrainResult:
    model: Any                           # best-by-val model (float32 policy)
    history: dict
    seconds_per_epoch: float
    epochs_run: int
    best_epoch: int
    precision: str


# ---------------------------------------------------------------------------------------------
# Environment choices
# ---------------------------------------------------------------------------------------------
def cpu_has_bf16() -> bool:
    try:
        with open("/proc/cpuinfo") as f:
            return "avx512_bf16" in f.read()
    except OSError:
        return False


def resolve_precision(precision: str) -> str:
    import tensorflow as tf

    if precision != "auto":
        return precision
    if tf.config.list_physical_devices("GPU"):
        return "mixed_float16"
    return "mixed_bfloat16" if cpu_has_bf16() else "float32"


def make_strategy(name: str):
    import tensorflow as tf

    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multiworker":  # reads TF_CONFIG
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise ValueError(f"unknown strategy {name!r}; valid: default, mirrored, multiworker")


def set_seeds(seed: int) -> None:
    import keras

    keras.utils.set_random_seed(seed)


# ---------------------------------------------------------------------------------------------
# Model, optimizer, callbacks
# ---------------------------------------------------------------------------------------------
def build(cfg: TrainConfig, num_classes: int):
    """The backbone with ``cfg.weights``; a whole trained ``.keras`` model of the same backbone (warm start,
    e.g. a longer or distilled run) is loaded into every layer, whatever the backbone's own weight format. A
    file shipped with its flip TTA in the graph (``--flip-in-graph``) warm-starts from the network inside; with
    ``cfg.widen``, a narrower ``vggbn`` is first widened to ``cfg.model_kwargs["widths"]`` keeping its function
    (:func:`fer_hybrid.cnn.widen.widen_vggbn`, seeded by ``cfg.seed``).
    ValueError when the file's network does not match the backbone."""
    from ..keras_io import load_keras_model
    from .backbones import build_model
    from .export import is_flip_tta, without_flip_tta

    warm = cfg.weights is not None and str(cfg.weights).endswith(".keras")
    model = build_model(cfg.backbone, num_classes=num_classes, input_size=cfg.input_size,
                        weights=None if warm else cfg.weights, **cfg.model_kwargs)
    if warm:
        trained = load_keras_model(cfg.weights)
        trained = without_flip_tta(trained) if is_flip_tta(trained) else trained
        if cfg.widen:
            from .widen import widen_vggbn

            trained = widen_vggbn(trained, cfg.model_kwargs.get("widths", ()), seed=cfg.seed, noise=cfg.widen_noise)
        try:
            model.set_weights(trained.get_weights())
        except ValueError as e:
            raise ValueError(f"{cfg.weights} does not fit the {cfg.backbone} backbone: {str(e).splitlines()[0]}") from e
    return model


def make_optimizer(cfg: TrainConfig, steps_per_epoch: int, epochs: int, lr_scale: float = 1.0):
    import keras

    lr: Any = cfg.learning_rate * lr_scale
    if cfg.schedule == "cosine":
        total = max(1, steps_per_epoch * epochs)
        warm = min(total - 1, steps_per_epoch * cfg.warmup_epochs)
        lr = keras.optimizers.schedules.CosineDecay(
            0.0 if warm else lr, decay_steps=total - warm, alpha=0.01,
            warmup_target=lr if warm else None, warmup_steps=warm)
    elif cfg.schedule not in ("plateau", "constant"):
        raise ValueError(f"unknown schedule {cfg.schedule!r}; valid: cosine, plateau, constant")
    if cfg.optimizer == "adam":
        return keras.optimizers.Adam(lr)
    if cfg.optimizer == "adamw":
        return keras.optimizers.AdamW(lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "sgd":
        return keras.optimizers.SGD(lr, momentum=0.9, nesterov=True)
    raise ValueError(f"unknown optimizer {cfg.optimizer!r}; valid: adam, adamw, sgd")


def compile_model(model, optimizer, label_smoothing: float, soft_targets: bool = False,
                  distill: tuple[float, float] | None = None) -> None:
    """Loss and accuracy metric: sparse CE on int labels, CE on soft targets, or, with ``distill`` =
    (temperature, alpha), :class:`fer_hybrid.cnn.distill.DistillationLoss` on (n, 2k) targets."""
    import keras

    if distill is not None:
        from .distill import DistillationLoss, LabelAccuracy

        model.compile(optimizer=optimizer, loss=DistillationLoss(*distill), metrics=[LabelAccuracy()])
        return
    if label_smoothing or soft_targets:
        # CategoricalCrossentropy takes smoothing and soft targets; labels are one-hot encoded in the pipeline.
        loss = keras.losses.CategoricalCrossentropy(label_smoothing=label_smoothing)
        metrics = [keras.metrics.CategoricalAccuracy(name="accuracy")]
    else:
        loss = keras.losses.SparseCategoricalCrossentropy()
        metrics = [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]
    model.compile(optimizer=optimizer, loss=loss, metrics=metrics)


def balanced_class_weights(y: np.ndarray, num_classes: int) -> dict[int, float]:
    from sklearn.utils.class_weight import compute_class_weight

    w = compute_class_weight("balanced", classes=np.arange(num_classes), y=y)
    return {i: float(v) for i, v in enumerate(w)}


def _epoch_callbacks(ckpt_dir: Path, state: dict):
    import keras

    class EpochTimer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self._t0 = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            state.setdefault("epoch_seconds", []).append(time.perf_counter() - self._t0)

    class AtomicCheckpoints(keras.callbacks.Callback):
        """best.keras on val-accuracy improvement and last.keras + state.json every epoch, atomically."""

        def on_epoch_end(self, epoch, logs=None):
            logs = logs or {}
            for k, v in logs.items():
                state.setdefault("history", {}).setdefault(k, []).append(float(v))
            acc = float(logs.get("val_accuracy", -1))
            if acc > state.get("best_val_accuracy", -1):
                state["best_val_accuracy"], state["best_epoch"] = acc, epoch + 1
                with _atomic.atomic_path(ckpt_dir / "best.keras") as tmp:
                    self.model.save(tmp)
            state["epoch"] = epoch + 1
            with _atomic.atomic_path(ckpt_dir / "last.keras") as tmp:
                self.model.save(tmp)
            _atomic.write_text(ckpt_dir / "state.json", json.dumps(state, indent=1))

    return [EpochTimer(), AtomicCheckpoints()]


# ---------------------------------------------------------------------------------------------
# Fit
# ---------------------------------------------------------------------------------------------
def _datasets(cfg: TrainConfig, data: FER2013, batch_size: int, train_targets: np.ndarray | None = None):
    import tensorflow as tf

    aug = Augment(**cfg.augment)
    k = len(data.classes)
    onehot = lambda x, y: (x, tf.one_hot(y, k))  # noqa: E731
    y_train = data.train.y if train_targets is None else train_targets
    train = make_dataset(data.train.x, y_train, batch_size=batch_size, shuffle=True, augment=aug, seed=cfg.seed,
                         repeat=cfg.epoch_size is not None)
    val = make_dataset(data.val.x, data.val.y, batch_size=256)
    if cfg.distill_temperature:  # the label half is what LabelAccuracy scores; the teacher half is the label too
        val = val.map(lambda x, y: (x, tf.concat([tf.one_hot(y, k), tf.one_hot(y, k)], axis=-1)))
    elif train_targets is not None:
        val = val.map(onehot)
    elif cfg.label_smoothing:
        train, val = train.map(onehot), val.map(onehot)
    return train, val


def fit(cfg: TrainConfig, data: FER2013, checkpoint_dir: str | os.PathLike, resume: bool = True,
        verbose: int = 1, train_targets: np.ndarray | None = None) -> TrainResult:
    """Train ``cfg.backbone`` on ``data.train``, validate on ``data.val``; return the best-by-val model.

    ``train_targets``: optional float (n_train, k) soft targets (e.g. :func:`fer_hybrid.ferplus.soft_targets`)
    used instead of ``data.train.y``; validation always scores the FER2013 labels.
    Resumes from ``checkpoint_dir/last.keras`` when ``resume`` and a previous run left one.
    """
    import keras

    if cfg.epoch_size is not None and cfg.epoch_size < 1:
        raise ValueError(f"epoch_size must be a positive number of samples or None, got {cfg.epoch_size}")
    ckpt_dir = Path(checkpoint_dir)
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    precision = resolve_precision(cfg.precision)
    keras.mixed_precision.set_global_policy(precision)
    set_seeds(cfg.seed)
    strategy = make_strategy(cfg.strategy)
    batch_size = cfg.batch_size * strategy.num_replicas_in_sync
    width = len(data.classes) * (2 if cfg.distill_temperature else 1)
    if cfg.distill_temperature and train_targets is None:
        raise ValueError("distillation (distill_temperature > 0) needs train_targets = [teacher proba, one-hot]")
    if train_targets is not None and np.shape(train_targets) != (len(data.train), width):
        raise ValueError(f"train_targets has shape {np.shape(train_targets)}; expected "
                         f"{(len(data.train), width)} (one row per training image)")
    train_ds, val_ds = _datasets(cfg, data, batch_size, train_targets)
    steps = int(np.ceil((cfg.epoch_size or len(data.train)) / batch_size))
    k = len(data.classes)
    class_weight = balanced_class_weights(data.train.y, k) if cfg.class_weights else None

    state_file = ckpt_dir / "state.json"
    state: dict = {"config": cfg.to_dict(), "precision": precision}
    initial_epoch = 0
    with strategy.scope():
        if resume and (ckpt_dir / "last.keras").exists() and state_file.exists():
            from .. import cnn  # noqa: F401  registers custom layers

            state = json.loads(state_file.read_text())
            model = keras.models.load_model(ckpt_dir / "last.keras")  # compiled, with optimizer state
            initial_epoch = int(state.get("epoch", 0))
            if verbose:
                print(f"resuming {cfg.backbone} from epoch {initial_epoch} ({ckpt_dir / 'last.keras'})")
        else:
            model = build(cfg, k)
            if cfg.mode == "head-then-all" and cfg.head_epochs > 0:
                _fit_head(model, cfg, train_ds, val_ds, steps, class_weight, verbose, train_targets is not None)
            elif cfg.mode not in ("all", "head-then-all"):
                raise ValueError(f"unknown mode {cfg.mode!r}; valid: all, head-then-all")
            compile_model(model, make_optimizer(cfg, steps, cfg.epochs), cfg.label_smoothing,
                          soft_targets=train_targets is not None,
                          distill=(cfg.distill_temperature, cfg.distill_alpha) if cfg.distill_temperature else None)

    callbacks = _epoch_callbacks(ckpt_dir, state)
    callbacks.append(keras.callbacks.EarlyStopping(monitor="val_accuracy", mode="max", patience=cfg.patience))
    if cfg.schedule == "plateau":
        callbacks.append(keras.callbacks.ReduceLROnPlateau(monitor="val_accuracy", mode="max", factor=0.5,
                                                           patience=max(1, cfg.patience // 3), min_lr=1e-6))
    if initial_epoch < cfg.epochs:
        model.fit(train_ds, validation_data=val_ds, epochs=cfg.epochs, initial_epoch=initial_epoch,
                  steps_per_epoch=steps if cfg.epoch_size is not None else None,
                  class_weight=class_weight, callbacks=callbacks, verbose=verbose)

    best = export_float32(cfg, load_best(ckpt_dir), k)
    secs = state.get("epoch_seconds") or [float("nan")]
    return TrainResult(best, state.get("history", {}), float(np.median(secs)), int(state.get("epoch", 0)),
                       int(state.get("best_epoch", 0)), precision)


def _fit_head(model, cfg, train_ds, val_ds, steps, class_weight, verbose, soft_targets=False):
    """Warm up the new head with the backbone frozen (layers named like keras.applications / VGGFace convs)."""
    frozen = [l for l in model.layers if l.weights and not l.name.startswith(("head", "predictions", "fc"))]
    for layer in frozen:
        layer.trainable = False
    compile_model(model, make_optimizer(cfg, steps, cfg.head_epochs, lr_scale=1.0), cfg.label_smoothing,
                  soft_targets)
    model.fit(train_ds, validation_data=val_ds, epochs=cfg.head_epochs, class_weight=class_weight, verbose=verbose,
              steps_per_epoch=steps if cfg.epoch_size is not None else None)
    for layer in frozen:
        layer.trainable = True


def load_best(ckpt_dir: str | os.PathLike):
    from ..keras_io import load_keras_model

    return load_keras_model(Path(ckpt_dir) / "best.keras")


def export_float32(cfg: TrainConfig, model, num_classes: int):
    """The same network rebuilt under the float32 policy with the trained weights (for saving/inference)."""
    import keras

    keras.mixed_precision.set_global_policy("float32")
    clean = build(dataclasses.replace(cfg, weights=None), num_classes)
    clean.set_weights([np.asarray(w, dtype=np.float32) for w in model.get_weights()])
    return clean


def save_model(model, path: str | os.PathLike) -> Path:
    """Save a .keras file atomically."""
    with _atomic.atomic_path(path) as tmp:
        model.save(tmp)
    return Path(path)


def predict_proba(model, x: np.ndarray, tta: bool = False, batch_size: int = 256) -> np.ndarray:
    """Softmax (n, k) for uint8 (n, 48, 48); ``tta`` averages with the horizontally flipped faces."""
    import tensorflow as tf

    fn = tf.function(lambda t: model(t, training=False), reduce_retracing=True)
    out = []
    for i in range(0, len(x), batch_size):
        b = np.asarray(x[i:i + batch_size], np.float32)[..., None]
        p = fn(b).numpy()
        if tta:
            p = (p + fn(b[:, :, ::-1].copy()).numpy()) / 2
        out.append(p)
    return np.concatenate(out) if out else np.zeros((0, model.output_shape[-1]), np.float32)


def ship_model(model, path: str | os.PathLike, max_mb: float = 60) -> tuple[Path, str | None]:
    """Save ``model`` atomically at ``path`` (:func:`save_model`); returns (path, a warning when the file is
    larger than ``max_mb`` MB, else None)."""
    path = save_model(model, path)
    size_mb = path.stat().st_size / 2**20
    return path, (f"warning: {path} is {size_mb:.1f} MB (> {max_mb:g} MB limit)" if size_mb > max_mb else None)
