"""Exploratory data analysis of FER2013: class counts, sample faces, mean faces, duplicates, load times.

:func:`run_eda` writes into one folder: ``README.md`` (the summary), ``eda.json`` (the same numbers),
``counts.png`` (class counts per split), ``samples.png`` (a row of training faces per class) and
``mean_faces.png`` (the per-class mean training face). Load times are measured with a fresh
temporary cache (``$FER_HYBRID_CACHE``): the first load decodes every image, the second reads the .npz.

CLI: ``python experiments/eda.py [--data PATH] [--out experiments/reports/eda]``.
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from . import _atomic
from .data import SPLITS, DataError, FER2013, duplicate_report, load_fer2013
from .evaluate import cpu_model, command_line, git_commit
from .labels import FER2013_EMOTIONS, STUDY_EMOTIONS
from .reports import pyplot, save_figure
from .cli_args import OneLineParser

SPLIT_NAMES = {"train": "train (Training)", "val": "val (PublicTest)", "test": "test (PrivateTest)"}


@contextlib.contextmanager
def _env(name: str, value: str) -> Iterator[None]:
    old = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = old


def timed_loads(source: str | os.PathLike | None) -> tuple[dict, FER2013, FER2013]:
    """Load all 7 classes twice with a fresh temporary cache: (times, data7, data5).

    ``times`` = {"first_load_s": decode + cache write, "cached_load_s": second load from the .npz}.
    """
    with tempfile.TemporaryDirectory(prefix="fer_hybrid_eda_cache_") as tmp, _env("FER_HYBRID_CACHE", tmp):
        t0 = time.perf_counter()
        load_fer2013(source, FER2013_EMOTIONS)
        first = time.perf_counter() - t0
        t0 = time.perf_counter()
        data7 = load_fer2013(source, FER2013_EMOTIONS)
        cached = time.perf_counter() - t0
        data5 = load_fer2013(source, STUDY_EMOTIONS)
    return {"first_load_s": round(first, 3), "cached_load_s": round(cached, 3)}, data7, data5


def count_table(data: FER2013) -> dict[str, dict[str, int]]:
    """{split: {class: count, ..., "total": n}} plus a "total" split summing the three."""
    counts = data.counts()
    table = {s: {**counts[s], "total": sum(counts[s].values())} for s in SPLITS}
    table["total"] = {c: sum(table[s][c] for s in SPLITS) for c in [*data.classes, "total"]}
    return table


def count_markdown(table: dict[str, dict[str, int]], classes: Sequence[str]) -> str:
    """Classes as rows, splits (+ total) as columns, with a total row."""
    splits = [*SPLITS, "total"]
    lines = ["| class | " + " | ".join(SPLIT_NAMES.get(s, s) for s in splits) + " |",
             "|---|" + "---:|" * len(splits)]
    for c in [*classes, "total"]:
        label = f"**{c}**" if c == "total" else c
        lines.append(f"| {label} | " + " | ".join(f"{table[s][c]:,}" for s in splits) + " |")
    return "\n".join(lines)


def duplicate_markdown(dups: dict) -> str:
    lines = ["| where | duplicated images (groups) | rows involved | groups with conflicting labels |",
             "|---|---:|---:|---:|"]
    for s in SPLITS:
        d = dups["within"][s]
        lines.append(f"| within {s} | {d['groups']:,} | {d['images']:,} | {d['label_conflicts']:,} |")
    for pair, d in dups["across"].items():
        lines.append(f"| across {pair} | {d['groups']:,} | {d['images']:,} | {d['label_conflicts']:,} |")
    return "\n".join(lines)


def _save(fig, path: Path) -> Path:
    return save_figure(fig, path, dpi=100)


def save_counts_png(table: dict, classes: Sequence[str], path: Path) -> Path:
    """Grouped bars: images per class for each split."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(9, 4))
    width = 0.8 / len(SPLITS)
    pos = np.arange(len(classes))
    for i, s in enumerate(SPLITS):
        ax.bar(pos + i * width, [table[s][c] for c in classes], width, label=SPLIT_NAMES[s])
    ax.set_xticks(pos + width, classes)
    ax.set_ylabel("images")
    ax.set_title("FER2013 images per class and split")
    ax.legend()
    fig.tight_layout()
    return _save(fig, path)


def save_sample_grid(data: FER2013, path: Path, per_class: int = 10, split: str = "train", seed: int = 0) -> Path:
    """One row per class of up to ``per_class`` random faces from ``split`` (fixed ``seed``)."""
    plt = pyplot()
    rng = np.random.default_rng(seed)
    part = data.split(split)
    fig, axes = plt.subplots(len(data.classes), per_class, figsize=(per_class * 0.9, len(data.classes) * 1.0),
                             squeeze=False)
    for i, c in enumerate(data.classes):
        idx = np.flatnonzero(part.y == i)
        idx = rng.choice(idx, size=min(per_class, len(idx)), replace=False) if len(idx) else idx
        for j, ax in enumerate(axes[i]):
            ax.set_xticks([])
            ax.set_yticks([])
            for sp in ax.spines.values():
                sp.set_visible(False)
            if j < len(idx):
                ax.imshow(part.x[idx[j]], cmap="gray", vmin=0, vmax=255)
        axes[i, 0].set_ylabel(c, rotation=0, ha="right", va="center", fontsize=9)
    fig.suptitle(f"Random {split} faces per class (seed {seed})")
    fig.tight_layout()
    return _save(fig, path)


def mean_faces(data: FER2013, split: str = "train") -> np.ndarray:
    """float32 (k, 48, 48): mean pixel value per class (NaN for a class with no image)."""
    part = data.split(split)
    out = np.full((len(data.classes), *part.x.shape[1:]), np.nan, dtype=np.float32)
    for i in range(len(data.classes)):
        m = part.y == i
        if m.any():
            out[i] = part.x[m].mean(axis=0, dtype=np.float64)
    return out


def save_mean_faces(data: FER2013, path: Path, split: str = "train") -> Path:
    plt = pyplot()
    means = mean_faces(data, split)
    counts = data.counts()[split]
    fig, axes = plt.subplots(1, len(data.classes), figsize=(1.7 * len(data.classes), 2.6), squeeze=False)
    for ax, c, img in zip(axes[0], data.classes, means):
        ax.imshow(np.nan_to_num(img), cmap="gray", vmin=0, vmax=255)
        ax.set_title(f"{c}\n(n={counts[c]:,})", fontsize=9)
        ax.axis("off")
    fig.suptitle(f"Mean {split} face per class")
    fig.tight_layout()
    return _save(fig, path)


def _markdown(summary: dict) -> str:
    c7, c5 = summary["counts_7"], summary["counts_5"]
    t = summary["load_times"]
    d7, d5 = summary["duplicates_7"], summary["duplicates_5"]
    env = summary["environment"]
    return "\n".join([
        "# FER2013 exploratory data analysis", "",
        f"Generated by `{summary['command']}` on {env['date']} (git {env['git_commit']}).", "",
        f"- source: `{summary['source']}` (sha256 `{summary['sha256']}`)",
        f"- {c7['total']['total']:,} images in 7 classes; {c5['total']['total']:,} in the 5 study classes "
        f"({', '.join(STUDY_EMOTIONS)}).",
        "- splits: train = `train/` (Usage Training), val = `test/PublicTest_*` (PublicTest), "
        "test = `test/PrivateTest_*` (PrivateTest).",
        f"- load times on {env['cpu']} ({env['cpu_count']} cores): first load (decode every image and write "
        f"the .npz cache, fresh temporary cache) **{t['first_load_s']:.2f} s**; cached load "
        f"**{t['cached_load_s']:.2f} s** (including the sha256 of the source); 1-minute load average "
        f"before measuring: {env.get('load_avg_1min')}.", "",
        "## Class counts, 7 classes", "", count_markdown(c7, FER2013_EMOTIONS), "",
        "## Class counts, 5 study classes", "", count_markdown(c5, STUDY_EMOTIONS), "",
        "![class counts](counts.png)", "",
        "## Exact pixel duplicates, 7 classes", "",
        "A group is one distinct image that occurs more than once; a conflict is a group whose copies carry "
        "different labels.", "",
        duplicate_markdown(d7), "",
        f"Training images whose pixels also occur in val or test: **{d7['train_in_val_or_test']:,}** "
        "(7 classes).", "",
        "## Exact pixel duplicates, 5 study classes", "", duplicate_markdown(d5), "",
        f"Training images whose pixels also occur in val or test: **{d5['train_in_val_or_test']:,}** (5 classes); "
        "`load_fer2013(..., drop_cross_split_duplicates=True)` drops them.", "",
        "## Sample faces (train)", "", "![sample faces](samples.png)", "",
        "## Mean face per class (train)", "", "![mean faces](mean_faces.png)", "",
    ])


def run_eda(source: str | os.PathLike | None, out_dir: str | os.PathLike, per_class: int = 10,
            command: str | None = None) -> dict:
    """Analyse FER2013 at ``source`` (or ``$FER2013_PATH``) and write the EDA folder; returns the summary.

    Raises FileNotFoundError (no data; the message says where to get it) or DataError (unreadable data).
    """
    out = Path(out_dir)
    load_before = round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None
    times, data7, data5 = timed_loads(source)
    t7, t5 = count_table(data7), count_table(data5)
    summary = {
        "source": data7.source,
        "sha256": data7.sha256,
        "command": command or command_line(),
        "load_times": times,
        "counts_7": t7,
        "counts_5": t5,
        "duplicates_7": duplicate_report(data7),
        "duplicates_5": duplicate_report(data5),
        "figures": ["counts.png", "samples.png", "mean_faces.png"],
        "environment": {"python": platform.python_version(), "numpy": np.__version__, "cpu": cpu_model(),
                        "cpu_count": os.cpu_count(), "load_avg_1min": load_before, "platform": platform.platform(), "git_commit": git_commit(),
                        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")},
    }
    out.mkdir(parents=True, exist_ok=True)
    save_counts_png(t7, FER2013_EMOTIONS, out / "counts.png")
    save_sample_grid(data7, out / "samples.png", per_class=per_class)
    save_mean_faces(data7, out / "mean_faces.png")
    _atomic.write_text(out / "eda.json", json.dumps(summary, indent=2) + "\n")
    _atomic.write_text(out / "README.md", _markdown(summary))
    return summary


def main(argv: Sequence[str] | None = None, default_out: str | os.PathLike = "experiments/reports/eda") -> int:
    ap = OneLineParser(description="FER2013 EDA: class counts, sample and mean faces, duplicates, "
                                             "load times -> Markdown + PNG + JSON.")
    ap.add_argument("--data", default=None, help="FER2013 image folder, its .tar.gz, or fer2013.csv "
                                                 "(default: $FER2013_PATH)")
    ap.add_argument("--out", type=Path, default=Path(default_out), help=f"output folder (default: {default_out})")
    ap.add_argument("--per-class", type=int, default=10, help="sample faces per class in samples.png")
    args = ap.parse_args(argv)
    try:
        s = run_eda(args.data, args.out, per_class=args.per_class)
    except (FileNotFoundError, DataError) as e:
        print(f"eda: error: {e}", file=sys.stderr)
        return 2
    t, c7, c5 = s["load_times"], s["counts_7"], s["counts_5"]
    print(f"source {s['source']}")
    print(f"first load (fresh cache): {t['first_load_s']:.2f} s; cached load: {t['cached_load_s']:.2f} s")
    print("7 classes: " + ", ".join(f"{sp} {c7[sp]['total']:,}" for sp in (*SPLITS, "total")))
    print("5 classes: " + ", ".join(f"{sp} {c5[sp]['total']:,}" for sp in (*SPLITS, "total")))
    print(f"train images also in val/test (5 classes): {s['duplicates_5']['train_in_val_or_test']:,}")
    print(f"wrote {args.out}/README.md, eda.json, {', '.join(s['figures'])}")
    return 0
