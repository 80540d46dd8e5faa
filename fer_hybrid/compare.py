"""Rank every experiment report under a folder into one table, like the study's.

``python -m fer_hybrid.compare DIR [--out-dir DIR] [--sort test|val]`` reads each ``report.json``
under DIR (see :mod:`fer_hybrid.reports`), ranks them by test (or val) accuracy and writes
``comparison.md``, ``comparison.csv`` and ``comparison.png`` (bar chart of test accuracy with the
study's GPU/pretrained figures as reference lines), then prints the Markdown table.

>>> rows = ranking_table(load_reports("experiments/reports"))
>>> print(to_markdown(rows))
"""
from __future__ import annotations

import csv
import io
import math
import os
import sys
from pathlib import Path
from typing import Any, Sequence

from . import _atomic
from .evaluate import accuracy_delta
from .reports import ReportError, get_dotted, find_reports, fmt, pyplot, read_report, save_figure
from .cli_args import OneLineParser

# Test accuracies reported by the study (5 classes, GPU, ImageNet/VGGFace-pretrained backbones).
STUDY_REFERENCE: dict[str, float] = {
    "VGGFace": 0.7494,
    "MobileNetV2": 0.6823,
    "VGG16": 0.6808,
    "ResNet50": 0.6530,
    "baseline": 0.5817,
}
STUDY_LABEL = "study (GPU, pretrained)"
SORT_KEYS = ("test", "val")

# (row key, Markdown header, CSV header) in table order; "ferplus" is dropped when no report has it.
COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("rank", "Rank", "rank"),
    ("model", "Model", "model"),
    ("kind", "Kind", "kind"),
    ("weights", "Weights", "weights"),
    ("train", "Train", "train_accuracy"),
    ("val", "Val", "val_accuracy"),
    ("delta", "Delta (train−val)", "delta_train_val"),
    ("test", "Test", "test_accuracy"),
    ("n", "n", "test_n"),
    ("macro_f1", "macro-F1", "test_macro_f1"),
    ("ferplus", "FER+ test", "ferplus_test_accuracy"),
    ("epochs", "Epochs", "epochs"),
    ("s_per_epoch", "s/epoch", "seconds_per_epoch"),
    ("ms_per_face", "ms/face", "ms_per_face"),
    ("params", "Params", "params"),
)


def load_reports(root: str | os.PathLike) -> list[dict]:
    """Every valid ``report.json`` under ``root``; each dict gains ``_path`` (its file, relative to root).

    Raises FileNotFoundError if ``root`` is not a folder, ReportError naming the file if any report
    is invalid, and ReportError if there is none at all.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such folder")
    paths = find_reports(root)
    if not paths:
        raise ReportError(f"no report.json found under {root}; run an experiment first "
                          "(e.g. python experiments/pixels_baseline.py)")
    out = []
    for p in paths:
        report = dict(read_report(p))
        report["_path"] = p.relative_to(root).as_posix()
        out.append(report)
    return out


def _number(report: dict, dotted: str, integer: bool = False, required: bool = True) -> float | int | None:
    """A numeric field (None when absent/null); ReportError naming the file when it is not a number."""
    try:
        v = get_dotted(report, dotted)
    except KeyError:
        if required:
            raise ReportError(f"{report.get('_path', 'report')}: missing required key {dotted}") from None
        return None
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ReportError(f"{report.get('_path', 'report')}: {dotted} must be a number or null, got {v!r}")
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return int(v) if integer else float(v)


def _weights(report: dict) -> str:
    w = report.get("weights")
    if w is None:
        trained_by_epochs = report.get("epochs") is not None or report.get("seconds_per_epoch") is not None
        return "none (random init)" if report.get("kind") in ("cnn", "baseline") and trained_by_epochs else "–"
    return str(w)


def _epochs(report: dict) -> int | None:
    e = report.get("epochs")
    if isinstance(e, (int, float)) and not isinstance(e, bool):
        return int(e)
    history = report.get("history")
    if isinstance(history, dict) and isinstance(history.get("loss"), list):
        return len(history["loss"])
    return None


def _row(report: dict) -> dict:
    metrics = report.get("metrics", {})
    train = _number(report, "metrics.train.accuracy")
    val = _number(report, "metrics.val.accuracy")
    delta = accuracy_delta(metrics) if train is not None and val is not None else None
    return {
        "model": str(report["name"]),
        "kind": str(report["kind"]),
        "weights": _weights(report),
        "train": train,
        "val": val,
        "delta": delta,
        "test": _number(report, "metrics.test.accuracy"),
        "n": _number(report, "metrics.test.n", integer=True),
        "macro_f1": _number(report, "metrics.test.macro_f1"),
        "ferplus": _number(report, "metrics.test_ferplus.accuracy", required=False),
        "epochs": _epochs(report),
        "s_per_epoch": _number(report, "seconds_per_epoch"),
        "ms_per_face": _number(report, "ms_per_face"),
        "params": _number(report, "params", integer=True),
        "path": report.get("_path"),
    }


BENCHMARK_MARKERS = ("conditions", "calibration")  # keys of benchmark reports written before the field existed


def is_benchmark(report: dict) -> bool:
    """True for a measurement *of* a model on other data or another question (in-the-frame, calibration,
    a labelled folder): it has ``benchmark`` (or, older reports, the keys of :data:`BENCHMARK_MARKERS`)
    and is listed apart, never ranked among the models."""
    return report.get("benchmark") is not None or any(k in report for k in BENCHMARK_MARKERS)


def benchmark_rows(reports: Sequence[dict]) -> list[dict]:
    """{"name", "benchmark", "model", "val", "test", "n", "path"} per benchmark report, by name."""
    out = []
    for r in reports:
        if not is_benchmark(r):
            continue
        kind = r.get("benchmark") or next(k for k in BENCHMARK_MARKERS if k in r)
        kind = {"conditions": "inframe"}.get(kind, kind)
        m = r.get("metrics", {})
        out.append({"name": r["name"], "benchmark": kind, "model": r.get("model") or r.get("weights") or "–",
                    "val": (m.get("val") or {}).get("accuracy"), "test": (m.get("test") or {}).get("accuracy"),
                    "n": (m.get("test") or {}).get("n"), "path": r.get("_path")})
    return sorted(out, key=lambda row: row["name"])


def benchmarks_markdown(rows: Sequence[dict]) -> str:
    lines = ["| Benchmark | Kind | Model | Val | Test | n (test) |", "|---|---|---|---:|---:|---:|"]
    for r in rows:
        link = f"[{r['name']}]({Path(r['path']).with_name('report.md').as_posix()})" if r.get("path") else r["name"]
        lines.append(f"| {link} | {r['benchmark']} | {r['model']} | {_cell('val', r['val'])} | "
                     f"{_cell('test', r['test'])} | {r['n'] if r['n'] is not None else '–'} |")
    return "\n".join(lines) + "\n"


def ranking_table(reports: Sequence[dict], sort: str = "test") -> list[dict]:
    """Row dicts (keys of :data:`COLUMNS` plus ``path``), best ``sort`` accuracy first, rank 1..n.

    Reports without that accuracy go last; ties are broken by the other accuracy, then by name.
    """
    if sort not in SORT_KEYS:
        raise ValueError(f"sort must be one of {', '.join(SORT_KEYS)}, got {sort!r}")
    other = "val" if sort == "test" else "test"
    rows = [_row(r) for r in reports if not is_benchmark(r)]

    def key(row: dict):
        a, b = row[sort], row[other]
        return (a is None, -(a or 0.0), b is None, -(b or 0.0), row["model"])

    rows.sort(key=key)
    for i, row in enumerate(rows, 1):
        row["rank"] = i
    return rows


def _columns(rows: Sequence[dict]) -> list[tuple[str, str, str]]:
    has_ferplus = any(r.get("ferplus") is not None for r in rows)
    return [c for c in COLUMNS if c[0] != "ferplus" or has_ferplus]


def _params(v: int | None) -> str:
    if v is None:
        return "–"
    return f"{v / 1e6:.2f} M" if v >= 100_000 else f"{v:,}"


def _cell(key: str, v: Any) -> str:
    if key == "params":
        return _params(v)
    if key == "delta" and v is not None:
        return f"{v:+.4f}"
    if key == "s_per_epoch":
        return fmt(v, 1)
    if key == "ms_per_face":
        return fmt(v, 2)
    return fmt(v).replace("|", "\\|")


def to_markdown(rows: Sequence[dict]) -> str:
    """The ranking as a GitHub Markdown table (accuracies to 4 decimals, '–' for missing values)."""
    cols = _columns(rows)
    lines = ["| " + " | ".join(h for _, h, _ in cols) + " |",
             "|" + "|".join("---" if k in ("model", "kind", "weights") else "---:" for k, _, _ in cols) + "|"]
    for r in rows:
        lines.append("| " + " | ".join(_cell(k, r.get(k)) for k, _, _ in cols) + " |")
    return "\n".join(lines) + "\n"


def to_csv(rows: Sequence[dict]) -> str:
    """The ranking as CSV with raw (unrounded) values, empty for missing, plus the report path."""
    cols = _columns(rows) + [("path", "", "report")]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow([c for _, _, c in cols])
    for r in rows:
        w.writerow(["" if r.get(k) is None else r.get(k) for k, _, _ in cols])
    return buf.getvalue()


def save_chart(rows: Sequence[dict], path: str | os.PathLike, sort: str = "test") -> Path:
    """Horizontal bars of test accuracy (best on top) with the study's figures as dashed reference lines."""
    plt = pyplot()
    rows = [r for r in rows if r.get("test") is not None]
    colors = {"baseline": "#8c8c8c", "cnn": "#1f77b4", "landmarks": "#2ca02c", "hybrid": "#d62728",
              "peer": "#9467bd", "pixels": "#bcbd22"}
    fig, ax = plt.subplots(figsize=(9, 2.0 + 0.45 * max(len(rows), 3)))
    names = [f"{r['model']} ({r['kind']})" for r in rows][::-1]
    values = [r["test"] for r in rows][::-1]
    bars = ax.barh(names, values, color=[colors.get(r["kind"], "#7f7f7f") for r in rows][::-1])
    for bar, v in zip(bars, values):
        ax.text(v + 0.005, bar.get_y() + bar.get_height() / 2, f"{v:.3f}", va="center", fontsize=8)
    for i, (label, acc) in enumerate(sorted(STUDY_REFERENCE.items(), key=lambda kv: -kv[1])):
        ax.axvline(acc, color="black", linestyle="--", linewidth=0.8, alpha=0.6,
                   label=STUDY_LABEL if i == 0 else None)
        # one text level per reference (best lowest), so close values such as 0.6808/0.6823 do not overlap
        ax.annotate(f"{label} {acc:.4f}", xy=(acc, 1.0), xycoords=("data", "axes fraction"),
                    xytext=(0, 3 + 10 * i), textcoords="offset points", ha="center", va="bottom", fontsize=7,
                    arrowprops=dict(arrowstyle="-", color="black", alpha=0.3, linewidth=0.6,
                                    shrinkA=0, shrinkB=0))
    top = max(values + list(STUDY_REFERENCE.values()))
    ax.set_xlim(0, min(1.0, top + 0.08))
    ax.set_xlabel("test accuracy (FER2013, 5 classes)")
    ax.legend(loc="lower right", fontsize=8)
    ax.set_title(f"Models ranked by {sort} accuracy", pad=12 + 10 * len(STUDY_REFERENCE), fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path)


def _document(rows: Sequence[dict], sort: str, benchmarks: Sequence[dict] = ()) -> str:
    study = ", ".join(f"{k} {v:.4f}" for k, v in STUDY_REFERENCE.items())
    return "\n".join([
        "# Model comparison", "",
        f"Generated by `python -m fer_hybrid.compare` from {len(rows)} report(s); ranked by {sort} accuracy. "
        "Accuracies are on FER2013 restricted to the 5 study classes (train = Training, val = PublicTest, "
        "test = PrivateTest); n is the test-set size; Delta = train − val accuracy; ms/face is batch-1 CPU "
        "inference; '–' = not applicable or not measured.", "",
        to_markdown(rows).rstrip("\n"), "",
        f"Reference, {STUDY_LABEL}, test accuracy: {study}.", "",
        "![test accuracy](comparison.png)", "",
        "Reports: " + ", ".join(f"[{r['model']}]({Path(r['path']).with_name('report.md').as_posix()})"
                                for r in rows if r.get("path")),
    ] + ([
        "", "## Benchmarks (not ranked)", "",
        "Measurements of a shipped model on another question: faces in synthetic frames through the full "
        "Analyzer (inframe: accuracy counting missed faces as errors, test = the default condition), "
        "probability calibration (the model's own accuracy), or a labelled photo folder. They are not models "
        "and are not ranked above.", "",
        benchmarks_markdown(benchmarks).rstrip("\n"),
    ] if benchmarks else [])) + "\n"


def write_comparison(root: str | os.PathLike, out_dir: str | os.PathLike | None = None,
                     sort: str = "test") -> tuple[list[dict], dict[str, Path]]:
    """Rank the reports under ``root``; write comparison.md/.csv/.png to ``out_dir`` (default ``root``).

    Returns (rows, {"md": path, "csv": path, "png": path}).
    """
    reports = load_reports(root)
    rows = ranking_table(reports, sort=sort)
    benchmarks = benchmark_rows(reports)
    out = Path(out_dir if out_dir is not None else root)
    paths = {"md": out / "comparison.md", "csv": out / "comparison.csv", "png": out / "comparison.png"}
    if out_dir is not None and Path(out).resolve() != Path(root).resolve():
        # report links in the Markdown are relative to root; make them relative to out_dir instead
        for r in [*rows, *benchmarks]:
            if r.get("path"):
                r["path"] = os.path.relpath(Path(root) / r["path"], out)
    _atomic.write_text(paths["md"], _document(rows, sort, benchmarks))
    _atomic.write_text(paths["csv"], to_csv(rows))
    save_chart(rows, paths["png"], sort)
    return rows, paths


README_BEGIN = "<!-- compare:begin -->"
README_END = "<!-- compare:end -->"


def update_readme(readme: str | os.PathLike, rows: Sequence[dict]) -> Path:
    """Replace the block between README_BEGIN and README_END in ``readme`` with the ranking table."""
    readme = Path(readme)
    text = readme.read_text()
    if README_BEGIN not in text or README_END not in text:
        raise ValueError(f"{readme} has no '{README_BEGIN}' ... '{README_END}' block to update")
    head, rest = text.split(README_BEGIN, 1)
    _, tail = rest.split(README_END, 1)
    block = "\n".join([README_BEGIN, "", to_markdown(rows).rstrip("\n"), "", README_END])
    return _atomic.write_text(readme, head + block + tail)


def main(argv: Sequence[str] | None = None) -> int:
    ap = OneLineParser(prog="python -m fer_hybrid.compare", description=__doc__.split("\n\n")[0])
    ap.add_argument("dir", type=Path, help="folder searched recursively for report.json files")
    ap.add_argument("--out-dir", type=Path, default=None, help="where to write comparison.* (default: DIR)")
    ap.add_argument("--sort", choices=SORT_KEYS, default="test", help="rank by test (default) or val accuracy")
    ap.add_argument("--readme", type=Path, default=None,
                    help=f"also replace the table between {README_BEGIN} and {README_END} in this Markdown file")
    args = ap.parse_args(argv)
    try:
        rows, paths = write_comparison(args.dir, args.out_dir, args.sort)
        if args.readme:
            update_readme(args.readme, rows)
    except (ReportError, FileNotFoundError, ValueError) as e:
        print(f"fer_hybrid.compare: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"fer_hybrid.compare: error: cannot write the comparison: {e}", file=sys.stderr)
        return 2
    print(to_markdown(rows), end="")
    print(f"\nwrote {paths['md']}, {paths['csv']}, {paths['png']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
