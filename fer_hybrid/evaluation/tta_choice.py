"""Choosing the test-time augmentation (TTA) policy of a shipped Keras CNN on val, and its report fields.

The method of ``experiments/cnn_tta.py``: every policy of :mod:`fer_hybrid.cnn.tta` is scored on val; the best
val accuracy wins, ties going to fewer views (cheaper), then to the earlier policy; test is evaluated once, for
the chosen policy only.

>>> artifact, spec = keras_cnn_artifact("vggbn")                      # models/vggbn.keras + registry entry
>>> rows = compare_policies(predict_fn, data.val, ["none", "flip"])   # [{policy, views, accuracy, macro_f1, metrics}]
>>> best = choose_policy(rows)
>>> metrics = chosen_metrics(predict_fn, data, best)                  # {train (null), val, test}
>>> time_policies(model, "vggbn", ["none", best["policy"]], face)     # {policy: batch-1 ms per face}
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from ..cnn.tta import TTA_DESCRIPTIONS, TTAPredictor, policy_proba, predict_tta, tta_policy
from ..errors import ArtifactMissingError
from ..evaluate import evaluate_predictor, file_sha256, metrics_from_proba, ms_per_face
from ..labels import STUDY_EMOTIONS
from ..reports import ReportError, pyplot, read_report, save_figure
from .timing import paused

SELECTION = "best val accuracy; ties -> fewer views"
TRAIN_NOT_EVALUATED = "not evaluated with TTA (pass --train)"
BASE_FACTS = ("backbone", "image_size", "epochs", "best_epoch", "seconds_per_epoch")


class TTAInputError(ValueError):
    """A model or policy that a TTA comparison cannot use (unknown, not a Keras CNN); the message is one line."""


def keras_cnn_artifact(name: str, models_root: str | os.PathLike | None = None):
    """(artifact path, registry :class:`~fer_hybrid.predictors.ModelSpec`) of a registered Keras CNN.

    TTAInputError for an unknown or non-Keras model; ArtifactMissingError (naming the training command) when
    the file is not in ``models_root`` (default :func:`fer_hybrid.artifacts.models_dir`).
    """
    from ..artifacts import models_dir
    from ..predictors import model_spec

    try:
        spec = model_spec(name)
    except ValueError as e:
        raise TTAInputError(str(e)) from None
    if spec.kind not in ("cnn", "baseline") or not spec.artifact.endswith(".keras"):
        raise TTAInputError(f"model {name!r} is a {spec.kind} model; TTA applies to the Keras CNNs")
    path = Path(models_root or models_dir()) / spec.artifact
    if not path.exists():
        raise ArtifactMissingError(f"model {name!r} has no artifact at {path}; train it with `{spec.train_command}`")
    return path, spec


def checked_policies(policies: Sequence[str]) -> list[str]:
    """``policies`` as a list after checking every name; TTAInputError listing the valid names otherwise."""
    try:
        for p in policies:
            tta_policy(p)
    except ValueError as e:
        raise TTAInputError(str(e)) from None
    if not policies:
        raise TTAInputError("no TTA policy to compare")
    return list(policies)


def compare_policies(predict_fn: Callable[[np.ndarray], np.ndarray], split, policies: Sequence[str],
                     classes: Sequence[str] = STUDY_EMOTIONS, batch_size: int = 256,
                     progress: bool = False) -> list[dict]:
    """[{policy, views, accuracy, macro_f1, metrics}] of each policy on ``split`` (x, y), in the given order;
    every distinct view is predicted once (:func:`fer_hybrid.cnn.tta.policy_proba`)."""
    probas = policy_proba(predict_fn, split.x, policies, batch_size, progress=progress)
    rows = []
    for policy in policies:
        m = metrics_from_proba(split.y, probas[policy], classes)
        rows.append({"policy": policy, "views": len(tta_policy(policy)), "accuracy": m["accuracy"],
                     "macro_f1": m["macro_f1"], "metrics": m})
    return rows


def choose_policy(rows: Sequence[dict]) -> dict:
    """The row with the best accuracy; ties go to fewer views, then to the earlier row. ValueError if empty."""
    if not rows:
        raise ValueError("no TTA policy rows to choose from")
    return min(enumerate(rows), key=lambda ir: (-ir[1]["accuracy"], ir[1]["views"], ir[0]))[1]


def chosen_metrics(predict_fn: Callable[[np.ndarray], np.ndarray], data, best: dict, *, train: bool = False,
                   batch_size: int = 256) -> dict:
    """{train, val, test} metrics of the chosen policy (``best``, a row of :func:`compare_policies` on val).

    Val is the comparison's (not recomputed); test is evaluated here; train only when ``train`` (slow), else
    its scores are null with a note, so the report's overfitting gap is null rather than a mix of policies.
    """
    policy = best["policy"]
    splits = ("train", "test") if train else ("test",)
    m = evaluate_predictor(lambda x: predict_tta(predict_fn, x, policy, batch_size), data, splits, batch_size)
    if not train:
        m["train"] = {"n": len(data.train), "accuracy": None, "macro_f1": None, "note": TRAIN_NOT_EVALUATED}
    return {"train": m["train"], "val": best["metrics"], "test": m["test"]}


def time_policies(model, name: str, policies: Sequence[str], face: np.ndarray,
                  pid_file: str | os.PathLike | None = None) -> dict[str, float]:
    """{policy: batch-1 ms per face} through :class:`~fer_hybrid.cnn.tta.TTAPredictor` (one compiled
    tf.function each, traced before timing), with the process named in ``pid_file`` paused
    (:func:`fer_hybrid.evaluation.timing.paused`)."""
    predictors = {p: TTAPredictor(model, name, p) for p in dict.fromkeys(policies)}
    for pred in predictors.values():  # trace outside the paused window
        pred.predict_proba(face)
    with paused(pid_file):
        return {p: ms_per_face(pred.predict_proba, face) for p, pred in predictors.items()}


def val_lines(rows: Sequence[dict], best: dict) -> list[str]:
    """One printable line per policy: views, val accuracy and macro-F1, the chosen one marked."""
    return [f"val {r['policy']:<12} views {r['views']:>2}  acc {r['accuracy']:.4f}  macro-F1 {r['macro_f1']:.4f}"
            + ("  <- chosen" if r is best else "") for r in rows]


def save_policies_png(rows: Sequence[dict], best: dict, path: str | os.PathLike, title: str) -> Path:
    """Bar chart of val accuracy per policy (views in brackets), the chosen bar orange."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 3.6))
    names = [f"{r['policy']}\n({r['views']})" for r in rows]
    acc = [r["accuracy"] for r in rows]
    bars = ax.bar(names, acc, color=["tab:orange" if r is best else "tab:blue" for r in rows])
    ax.bar_label(bars, labels=[f"{a:.4f}" for a in acc], fontsize=8)
    ax.set_ylim(max(0.0, min(acc) - 0.02), min(1.0, max(acc) + 0.01))
    ax.set_ylabel("val accuracy")
    ax.set_title(title)
    fig.tight_layout()
    return save_figure(fig, path)


def base_model_facts(report_path: str | os.PathLike, artifact: str | os.PathLike,
                     root: str | os.PathLike | None = None) -> tuple[dict, str | None]:
    """Training facts (:data:`BASE_FACTS`) from the base model's report and that report's path (relative to
    ``root`` when under it), if the report describes this very file (same sha256); else ({}, None)."""
    path = Path(report_path)
    try:
        base = read_report(path)
    except (ReportError, OSError):
        return {}, None
    if (base.get("artifact") or {}).get("sha256") != file_sha256(artifact):
        return {}, None
    shown = str(path)
    if root is not None and path.resolve().is_relative_to(Path(root).resolve()):
        shown = path.resolve().relative_to(Path(root).resolve()).as_posix()
    return {k: base.get(k) for k in BASE_FACTS}, shown


def report_fields(rows: Sequence[dict], best: dict) -> dict:
    """The TTA keys of the report: tta, tta_views, tta_selection and the val table ``tta_val``."""
    return {"tta": best["policy"], "tta_views": best["views"], "tta_selection": SELECTION,
            "tta_val": [{k: r[k] for k in ("policy", "views", "accuracy", "macro_f1")} for r in rows]}


def report_notes(model: str, weights: str | None, rows: Sequence[dict], best: dict, *, train: bool,
                 base_found: bool) -> str:
    """The report's ``notes``: what was evaluated, the choice and the val table, what is null and why."""
    policy = best["policy"]
    table = "; ".join(f"{r['policy']} ({r['views']} view{'s' * (r['views'] > 1)}) {r['accuracy']:.4f} / "
                      f"{r['macro_f1']:.4f}" for r in rows)
    return (f"test-time augmentation of the shipped {model} model (no retraining); "
            + ("trained from random initialisation (weights=None), no pretrained weights are available offline; "
               if weights is None else f"initial weights: {weights}; ")
            + f"policy {policy!r} = {TTA_DESCRIPTIONS.get(policy, '')}, chosen by val accuracy (ties: fewer views) "
            f"among: {table} (val accuracy / macro-F1); test was evaluated only for the chosen policy"
            + ("" if train else "; train not evaluated with TTA (null)") + "; "
            + ("epochs and seconds per epoch are those of the base model's training run"
               if base_found else "the base model's training report was not found"))
