"""Evaluation: classification metrics (sklearn.metrics), batch-1 latency, parameter counts, environment.

Probability matrices are float (n, k) in the order of the class list; a row of NaN means the model
abstained (e.g. no landmarks): it counts as an error for accuracy and is reported in ``n_abstained``.
"""
from __future__ import annotations

import datetime as _dt
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from sklearn import metrics as skm

from .safe_io import file_sha256  # noqa: F401  (one cached sha256 helper; re-exported)
from .labels import STUDY_EMOTIONS

ABSTAIN = -1


def predictions_from_proba(proba: np.ndarray) -> np.ndarray:
    """argmax per row as int64 (n,); rows containing NaN give ABSTAIN (-1)."""
    proba = np.asarray(proba, dtype=np.float64)
    pred = np.full(len(proba), ABSTAIN, dtype=np.int64)
    ok = np.isfinite(proba).all(axis=1)
    if ok.any():
        pred[ok] = proba[ok].argmax(axis=1)
    return pred


def classification_metrics(y_true: np.ndarray, y_pred: np.ndarray,
                           classes: Sequence[str] = STUDY_EMOTIONS) -> dict:
    """Accuracy, macro-F1, per-class precision/recall/F1/support and the confusion matrix.

    ``y_pred`` int (n,) may contain ABSTAIN (-1): it is wrong for accuracy/F1 and excluded from the
    confusion matrix (whose rows are true classes, columns predicted, in ``classes`` order).
    """
    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = np.asarray(y_pred, dtype=np.int64)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true {y_true.shape} and y_pred {y_pred.shape} differ in shape")
    labels = list(range(len(classes)))
    k = len(labels)
    answered = y_pred != ABSTAIN
    if not len(y_true):  # sklearn refuses empty inputs; an empty split has no scores
        p = r = f = np.zeros(k)
        s = np.zeros(k, dtype=np.int64)
    else:
        p, r, f, s = skm.precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    return {
        "n": int(len(y_true)),
        "accuracy": float(skm.accuracy_score(y_true, y_pred)) if len(y_true) else float("nan"),
        "macro_f1": float(f.mean()) if len(y_true) else float("nan"),
        "n_abstained": int((~answered).sum()),
        "per_class": {c: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]),
                          "support": int(s[i])} for i, c in enumerate(classes)},
        "confusion_matrix": (skm.confusion_matrix(y_true[answered], y_pred[answered], labels=labels).tolist()
                             if answered.any() else [[0] * k for _ in range(k)]),
    }


def metrics_from_proba(y_true: np.ndarray, proba: np.ndarray, classes: Sequence[str] = STUDY_EMOTIONS) -> dict:
    return classification_metrics(y_true, predictions_from_proba(proba), classes)


def evaluate_predictor(predict_proba: Callable[[np.ndarray], np.ndarray], data, splits=("train", "val", "test"),
                       batch_size: int = 512) -> dict:
    """{split: metrics} for a ``predict_proba`` (uint8 (n,48,48) -> (n,k)) over a :class:`data.FER2013`."""
    out = {}
    for s in splits:
        split = data.split(s)
        proba = np.concatenate([predict_proba(split.x[i:i + batch_size]) for i in range(0, len(split), batch_size)]) \
            if len(split) else np.zeros((0, len(data.classes)))
        out[s] = metrics_from_proba(split.y, proba, data.classes)
    return out


def accuracy_delta(metrics: dict) -> float | None:
    """Train minus val accuracy (the overfitting gap in the study's table); None if either is missing."""
    try:
        return float(metrics["train"]["accuracy"] - metrics["val"]["accuracy"])
    except (KeyError, TypeError):
        return None


def ms_per_face(predict_one: Callable[[np.ndarray], object], face: np.ndarray, repeats: int = 50,
                warmup: int = 5) -> float:
    """Median wall-clock milliseconds of ``predict_one(face)`` over ``repeats`` calls after ``warmup``."""
    for _ in range(warmup):
        predict_one(face)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        predict_one(face)
        times.append(time.perf_counter() - t0)
    return float(np.median(times) * 1e3)


def _version(module: str) -> str | None:
    try:
        mod = __import__(module)
    except Exception:  # an absent optional library is simply not recorded
        return None
    return getattr(mod, "__version__", getattr(mod, "VERSION", None))


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def git_commit(cwd: str | os.PathLike | None = None) -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd or Path(__file__).parent, capture_output=True,
                             text=True, timeout=5)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd or Path(__file__).parent,
                               capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def environment() -> dict:
    """Library versions, CPU, cores, OS, date and git commit of this run."""
    versions = {m: _version(m) for m in ("numpy", "tensorflow", "keras", "sklearn", "xgboost", "dlib", "cv2")}
    versions["python"] = platform.python_version()
    return {
        "versions": versions,
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "gpu": _gpus(),
        "platform": platform.platform(),
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "git_commit": git_commit(),
        "command": command_line(),
    }


def command_line(argv: list[str] | None = None) -> str:
    """This process's command as a user would type it from the repo root (``python experiments/x.py ...``)."""
    import shlex

    argv = list(sys.argv if argv is None else argv)
    if not argv or not argv[0]:
        return "python"
    script = Path(argv[0])
    root = Path(__file__).resolve().parent.parent
    try:
        shown = script.resolve().relative_to(root).as_posix()
    except ValueError:
        shown = script.as_posix()
    if shown.startswith("fer_hybrid/") and shown.endswith(".py"):
        shown = "-m " + shown[:-3].replace("/", ".").removesuffix(".__main__")
    return "python " + " ".join(shlex.quote(a) for a in [shown, *argv[1:]])


def _gpus() -> list[str]:
    if "tensorflow" not in sys.modules:
        return []
    import tensorflow as tf

    return [d.name for d in tf.config.list_physical_devices("GPU")]
