"""Experiment reports: one folder per experiment holding ``report.json`` + ``report.md`` + PNGs.

Every experiment writes the same schema (:data:`SCHEMA`), so :mod:`fer_hybrid.compare` can rank them.
Required keys (dotted paths) are listed in :data:`REQUIRED_KEYS`. Files are written atomically.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from . import _atomic
from .evaluate import accuracy_delta, environment, file_sha256
from .labels import STUDY_EMOTIONS

SCHEMA = 1
KINDS = ("baseline", "cnn", "landmarks", "hybrid", "peer")
REQUIRED_KEYS = (
    "schema", "name", "kind", "weights",
    "metrics.train.accuracy", "metrics.val.accuracy", "metrics.test.accuracy",
    "metrics.test.macro_f1", "metrics.test.n",
    "seconds_per_epoch", "ms_per_face", "params", "artifact", "command",
)


class ReportError(ValueError):
    """A report file is missing, unreadable, or does not follow the schema."""


def get_dotted(d: dict, dotted: str) -> Any:
    """``d["a"]["b"]`` for ``dotted="a.b"``; KeyError when a part is missing."""
    for part in dotted.split("."):
        if not isinstance(d, dict) or part not in d:
            raise KeyError(dotted)
        d = d[part]
    return d


def repo_path(path: str | os.PathLike, root: str | os.PathLike) -> str:
    """``path`` (resolved) relative to ``root`` (POSIX) when it lies under it, else absolute: how a manifest
    names a report, so a report folder outside the repository never fails the write."""
    path, root = Path(path).resolve(), Path(root).resolve()
    return path.relative_to(root).as_posix() if path.is_relative_to(root) else str(path)


def artifact_info(path: str | os.PathLike | None, root: str | os.PathLike | None = None) -> dict | None:
    """{"path": relative-or-absolute path, "sha256": ..., "bytes": ...} or None."""
    if path is None:
        return None
    p = Path(path)
    shown = p
    if root is not None:
        try:
            shown = p.resolve().relative_to(Path(root).resolve())
        except ValueError:
            pass
    return {"path": shown.as_posix(), "sha256": file_sha256(p), "bytes": p.stat().st_size}


def reported_artifact(report: dict, root: str | os.PathLike) -> Path:
    """The file a report evaluated (its ``artifact`` path under ``root``), checked against the report's sha256.
    ValueError when the report names no file, or the file is missing or differs (the report would not describe
    it)."""
    info = report.get("artifact") or {}
    if not info.get("path"):
        raise ValueError(f"report {report.get('name')!r} names no artifact")
    path = Path(root) / info["path"]
    if not path.exists() or file_sha256(path) != info.get("sha256"):
        raise ValueError(f"{path} is missing or not the file report {report.get('name')!r} evaluated (sha256 differs)")
    return path


def make_report(*, name: str, kind: str, weights: str | None, metrics: dict, command: str | None = None,
                seconds_per_epoch: float | None = None, ms_per_face: float | None = None,
                params: int | None = None, artifact: dict | None = None, data: dict | None = None,
                classes: Sequence[str] = STUDY_EMOTIONS, **extra: Any) -> dict:
    """Assemble a schema-1 report. ``metrics`` is {split: metrics dict from :mod:`evaluate`}.

    ``extra`` keys (e.g. ``backbone``, ``image_size``, ``epochs``, ``history``, ``notes``) are kept as-is.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown report kind {kind!r}; valid: {', '.join(KINDS)}")
    env = environment()
    report = {
        "schema": SCHEMA,
        "name": name,
        "kind": kind,
        "weights": weights,
        "classes": list(classes),
        "metrics": metrics,
        "delta_train_val": accuracy_delta(metrics),
        "seconds_per_epoch": seconds_per_epoch,
        "ms_per_face": ms_per_face,
        "params": params,
        "artifact": artifact,
        "data": data,
        "command": command or env["command"],
        "environment": env,
    }
    report.update(extra)
    validate(report)
    return report


def validate(report: dict, source: str = "report") -> dict:
    """Raise ReportError unless ``report`` has schema 1 and every required key."""
    if not isinstance(report, dict):
        raise ReportError(f"{source}: not a JSON object")
    if report.get("schema") != SCHEMA:
        raise ReportError(f"{source}: unsupported schema {report.get('schema')!r} (this version reads schema {SCHEMA})")
    missing = []
    for key in REQUIRED_KEYS:
        try:
            get_dotted(report, key)
        except KeyError:
            missing.append(key)
    if missing:
        raise ReportError(f"{source}: missing required key(s) {', '.join(missing)}")
    return report


def json_ready(obj: Any) -> Any:
    """JSON-safe copy: numpy scalars/arrays to Python, NaN/inf to None."""
    if isinstance(obj, dict):
        return {str(k): json_ready(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_ready(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return json_ready(obj.tolist())
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def fmt(v: Any, digits: int = 4) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def teacher_lines(teacher: dict | None) -> list[str]:
    """Markdown lines for a distilled model's ``teacher`` section (none without one)."""
    if not isinstance(teacher, dict):
        return []
    out = [f"- teacher: `{teacher.get('name')}` under its TTA `{teacher.get('tta')}`, T = "
           f"{fmt(teacher.get('temperature'), 2)}, alpha = {fmt(teacher.get('alpha'), 2)}; targets on the training "
           f"images took {fmt(teacher.get('seconds'), 1)} s (teacher accuracy on them "
           f"{fmt(teacher.get('train_accuracy'))})"]
    v = teacher.get("views")
    if isinstance(v, dict):
        seed = v.get("seed")
        seed_text = (f"seeds {', '.join(str(s) for s in seed)}; {fmt(v.get('copies_per_seed'))} per seed"
                     if isinstance(seed, list) else f"seed {fmt(seed)}")
        out.append(f"- teacher on {fmt(v.get('copies'))} fixed augmented view(s) of each training image "
                   f"({seed_text}), TTA `{v.get('tta')}`: {fmt(v.get('seconds'), 1)} s (teacher accuracy on "
                   f"them {fmt(v.get('train_accuracy'))})")
    f = teacher.get("framed_views")
    if isinstance(f, dict):
        groups = [g for g in f.get("groups", []) if isinstance(g, dict)]
        found = "; ".join(f"seed {g.get('seed')}: {fmt(g.get('found'))} of {fmt(g.get('n'))} faces found "
                          f"({fmt(g.get('found_share'), 3)}), {fmt(g.get('seconds'), 1)} s" for g in groups)
        out.append(f"- the Analyzer's crops of the training faces in random frames ({found}); target: "
                   f"{f.get('target')}")
    u = teacher.get("unlabelled_faces")
    if isinstance(u, dict):
        out.append(f"- {fmt(u.get('n'))} training faces outside the study ({', '.join(u.get('classes') or [])}): "
                   f"teacher targets {fmt(u.get('seconds'), 1)} s; target: {u.get('target')}")
    return out


def augmentation_lines(config: dict | None) -> list[str]:
    """Markdown lines for a CNN run's online augmentation (``config["augment"]``, a
    :class:`fer_hybrid.data.Augment` as a dict): its ranges, then its degradations if any (none without one)."""
    a = config.get("augment") if isinstance(config, dict) else None
    if not isinstance(a, dict):
        return []
    ranges = [f"{k} {fmt(float(a[k]), 2)}" for k in ("shift", "rotation", "zoom", "brightness", "contrast")
              if a.get(k)]
    out = [f"- online augmentation: {'flip' if a.get('flip') else 'no flip'}"
           + (f"; {', '.join(ranges)}" if ranges else "")]
    if a.get("degrade_p") and any(a.get(k) for k in ("low_res", "blur", "noise")):
        out.append(f"- training degradations, each with probability {fmt(float(a['degrade_p']), 2)} per image: "
                   f"resolution loss up to {fmt(float(a.get('low_res', 0)), 2)} of the side, blur sigma up to "
                   f"{fmt(float(a.get('blur', 0)), 2)} px, noise std up to {fmt(float(a.get('noise', 0)), 1)} grey levels")
    return out


def to_markdown(report: dict) -> str:
    """The Markdown twin of a report."""
    m = report["metrics"]
    lines = [f"# {report['name']}", "",
             f"- kind: `{report['kind']}`; initial weights: `{report['weights']}`"
             + (" (trained from random initialisation: no pretrained weights were available offline)"
                if report["weights"] is None and report["kind"] in ("cnn", "baseline") else ""),
             f"- command: `{report['command']}`"]
    for key in ("backbone", "image_size", "epochs", "best_epoch", "tta", "labels_trained_on", "notes"):
        if report.get(key) is not None:
            lines.append(f"- {key.replace('_', ' ')}: {report[key]}")
    lines += teacher_lines(report.get("teacher"))
    lines += augmentation_lines(report.get("config"))
    lines += ["", "| split | n | accuracy | macro-F1 |", "|---|---:|---:|---:|"]
    for s in ("train", "val", "test"):
        if isinstance(m.get(s), dict):
            lines.append(f"| {s} | {fmt(m[s].get('n'))} | {fmt(m[s].get('accuracy'))} | {fmt(m[s].get('macro_f1'))} |")
    fp = m.get("test_ferplus")
    if isinstance(fp, dict):  # experiments/ferplus_crosscheck.py: test split against the FER+ majority label
        lines.append(f"| test, FER+ majority labels ({fmt((fp.get('excluded') or {}).get('total'))} excluded) | "
                     f"{fmt(fp.get('n'))} | {fmt(fp.get('accuracy'))} | {fmt(fp.get('macro_f1'))} |")
    lines += ["", f"- train − val accuracy: {fmt(report.get('delta_train_val'))}",
              f"- seconds per epoch: {fmt(report['seconds_per_epoch'], 1)}",
              f"- batch-1 inference: {fmt(report['ms_per_face'], 2)} ms per face",
              f"- parameters: {fmt(report['params'])}"]
    if report.get("artifact"):
        a = report["artifact"]
        lines.append(f"- artifact: `{a.get('path')}` (sha256 `{a.get('sha256')}`)")
    if report.get("data"):
        d = report["data"]
        lines.append(f"- data: `{d.get('source')}` (sha256 `{d.get('sha256')}`)")
    test = m.get("test") or {}
    if test.get("per_class"):
        lines += ["", "## Test set per class", "", "| class | precision | recall | F1 | support |",
                  "|---|---:|---:|---:|---:|"]
        for c, v in test["per_class"].items():
            lines.append(f"| {c} | {fmt(v['precision'])} | {fmt(v['recall'])} | {fmt(v['f1'])} | {v['support']} |")
    if test.get("confusion_matrix"):
        classes = report.get("classes") or list(test.get("per_class", {}))
        lines += ["", "## Test confusion matrix (rows true, columns predicted)", "",
                  "| true \\ pred | " + " | ".join(classes) + " |", "|---|" + "---:|" * len(classes)]
        for c, row in zip(classes, test["confusion_matrix"]):
            lines.append(f"| {c} | " + " | ".join(str(v) for v in row) + " |")
    for png in report.get("figures", []):
        lines += ["", f"![{png}]({png})"]
    env = report.get("environment", {})
    if env:
        v = env.get("versions", {})
        lines += ["", "## Environment", "",
                  f"- {env.get('cpu')} × {env.get('cpu_count')} cores; GPU: {env.get('gpu') or 'none'}",
                  "- " + ", ".join(f"{k} {val}" for k, val in v.items() if val),
                  f"- date {env.get('date')}, git {env.get('git_commit')}"]
    return "\n".join(lines) + "\n"


def pyplot():
    """matplotlib.pyplot on the non-interactive Agg backend (safe without a display)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: str | os.PathLike, dpi: int = 110) -> Path:
    """Save a matplotlib figure as PNG atomically and close it."""
    with _atomic.atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, format="png")
    pyplot().close(fig)
    return Path(path)


def save_confusion_png(cm: Sequence[Sequence[int]], classes: Sequence[str], path: str | os.PathLike,
                       title: str = "") -> Path:
    from sklearn.metrics import ConfusionMatrixDisplay

    plt = pyplot()
    cm = np.asarray(cm)
    fig, ax = plt.subplots(figsize=(5.5, 5))
    ConfusionMatrixDisplay(cm, display_labels=list(classes)).plot(ax=ax, cmap="Blues", colorbar=False,
                                                                 values_format="d")
    ax.set_title(title)
    fig.tight_layout()
    return save_figure(fig, path)


def save_history_png(history: dict, path: str | os.PathLike, title: str = "") -> Path:
    """Training curves from a Keras-style history {"loss": [...], "val_loss": [...], "accuracy": [...], ...}."""
    fig, axes = pyplot().subplots(1, 2, figsize=(10, 4))
    for ax, key in zip(axes, ("loss", "accuracy")):
        for k in (key, f"val_{key}"):
            if history.get(k):
                ax.plot(range(1, len(history[k]) + 1), history[k], label=k)
        ax.set_xlabel("epoch")
        ax.set_title(key)
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, path, dpi=100)


def write_study(report: dict, markdown: str, out_dir: str | os.PathLike, stem: str) -> tuple[Path, Path]:
    """Write a study that is not one model's report (detectors, framing, a threshold sweep) as
    ``out_dir/stem.json`` (numpy values made JSON-ready) and ``out_dir/stem.md``, atomically."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    return (_atomic.write_text(out_dir / f"{stem}.json", json.dumps(json_ready(report), indent=2) + "\n"),
            _atomic.write_text(out_dir / f"{stem}.md", markdown))


def write_report(report: dict, out_dir: str | os.PathLike) -> Path:
    """Write ``out_dir/report.json``, ``report.md`` and ``confusion.png`` (test split); returns the JSON path."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    validate(report)
    report = dict(report)
    figures = list(report.get("figures", []))
    test = report["metrics"].get("test") or {}
    if test.get("confusion_matrix"):
        save_confusion_png(test["confusion_matrix"], report.get("classes", STUDY_EMOTIONS), out_dir / "confusion.png",
                           title=f"{report['name']} — test (n={test.get('n')})")
        if "confusion.png" not in figures:
            figures.insert(0, "confusion.png")
    report["figures"] = figures
    clean = json_ready(report)
    _atomic.write_text(out_dir / "report.md", to_markdown(clean))
    path = _atomic.write_text(out_dir / "report.json", json.dumps(clean, indent=2) + "\n")
    return path


def read_report(path: str | os.PathLike) -> dict:
    """Load and validate one report JSON; ReportError with the file name on any problem."""
    return validate(_atomic.read_json(path, ReportError, "report file"), str(path))


def report_predictor(predictor, data, out_dir: str | os.PathLike, *, kind: str, weights: str | None,
                     **fields: Any) -> tuple[Path, dict]:
    """Evaluate a predictor on train/val/test, time batch-1 inference, and write its report to ``out_dir``.

    ``fields`` go to :func:`make_report` (e.g. params, artifact, seconds_per_epoch, notes).
    """
    from .evaluate import evaluate_predictor, ms_per_face

    metrics = evaluate_predictor(predictor.predict_proba, data)
    fields.setdefault("ms_per_face", ms_per_face(predictor.predict_proba, data.test.x[:1]))
    fields.setdefault("data", {"source": Path(data.source).name, "sha256": data.sha256})
    report = make_report(name=fields.pop("name", predictor.name), kind=kind, weights=weights, metrics=metrics,
                         classes=data.classes, **fields)
    return write_report(report, out_dir), report


def find_reports(root: str | os.PathLike) -> list[Path]:
    """All ``report.json`` files under ``root`` (sorted)."""
    return sorted(Path(root).rglob("report.json"))
