"""Tables and curves of an in-the-frame run (:mod:`fer_hybrid.evaluation.inframe`).

``rows`` is {(variant, condition name, split): metrics of :func:`~.inframe.condition_metrics`}.

    python -m fer_hybrid.evaluation.inframe_report experiments/reports/inframe-vggbn   # refresh report.json's
                                                        # condition_means from its rows, re-render report.md
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from ..reports import pyplot, save_figure


def _f(v, digits=4) -> str:
    return "–" if v is None or (isinstance(v, float) and not np.isfinite(v)) else f"{v:.{digits}f}"


def condition_means(rows: dict) -> dict:
    """{variant: {split: {"accuracy_all", "accuracy_found"}}}: the mean over the conditions of ``rows`` of the
    accuracy counting a missed face as an error, and of the accuracy over found faces (the variant table's
    columns), recorded in report.json so that a figure quoted from the table can be checked against it."""
    groups: dict = {}
    for (v, _, s), r in rows.items():
        g = groups.setdefault(v, {}).setdefault(s, {"accuracy_all": [], "accuracy_found": []})
        for key in g:
            g[key].append(r[key])
    return {v: {s: {k: float(np.mean(x)) for k, x in g.items()} for s, g in by_split.items()}
            for v, by_split in groups.items()}


def markdown_tables(rows: dict, variants: Sequence[str], conditions, splits: Sequence[str], chosen: str,
                    score: dict, select: str, means: Mapping) -> str:
    """Markdown: the variants compared on the selection split, then every condition for each split; the
    other splits' means come from ``means`` (the report's :func:`condition_means`), so table and JSON agree."""
    names = [c.name for c in conditions]

    def mean(v, keys, what, split):
        vals = [rows[(v, k, split)][what] for k in keys if (v, k, split) in rows]
        return float(np.mean(vals)) if vals else float("nan")

    others = [s for s in splits if s != select]
    lines = ["", f"## Crop variants on {select} (choice: highest mean accuracy counting misses as errors)", "",
             "| variant | mean acc. (misses = errors) | default: acc. found | rot ±20: acc. found | "
             "rot ±30: acc. found | scale 0.5: found |" + "".join(f" {s}: mean acc. (misses = errors) | {s}: mean "
                                                                 "acc. found |" for s in others),
             "|---|---:|---:|---:|---:|---:|" + "---:|---:|" * len(others)]

    for v in variants:
        lines.append(f"| {v}{' (chosen)' if v == chosen else ''} | {_f(score[v])} | "
                     f"{_f(mean(v, ['default'], 'accuracy_found', select))} | "
                     f"{_f(mean(v, ['rot-20', 'rot+20'], 'accuracy_found', select))} | "
                     f"{_f(mean(v, ['rot-30', 'rot+30'], 'accuracy_found', select))} | "
                     f"{_f(mean(v, ['scale0.5'], 'found_share', select))} |"
                     + "".join(f" {_f(m.get('accuracy_all'))} | {_f(m.get('accuracy_found'))} |"
                               for m in (means.get(v, {}).get(o, {}) for o in others)))
    for split in splits:
        lines += ["", f"## {split}: every condition, variant {chosen}", "",
                  "| condition | n | found | found / found on original | false pos. / frame | acc. found | "
                  "direct acc. (same faces) | gap | acc. (misses = errors) | direct acc. (all) |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for c in names:
            r = rows.get((chosen, c, split))
            if r is None:
                continue
            gap = r["accuracy_found"] - r["direct_accuracy_found"]
            lines.append(f"| {c} | {r['n']} | {_f(r['found_share'])} | {_f(r['found_of_original'])} | "
                         f"{_f(r['false_positives_per_frame'], 3)} | {_f(r['accuracy_found'])} | "
                         f"{_f(r['direct_accuracy_found'])} | {_f(gap, 4)} | {_f(r['accuracy_all'])} | "
                         f"{_f(r['direct_accuracy'])} |")
        if len(variants) > 1:
            lines += ["", f"### {split}: accuracy over found faces by variant", "",
                      "| condition | " + " | ".join(variants) + " |", "|---|" + "---:|" * len(variants)]
            for c in names:
                lines.append(f"| {c} | " + " | ".join(_f(rows[(v, c, split)]["accuracy_found"])
                                                      for v in variants if (v, c, split) in rows) + " |")
    return "\n".join(lines) + "\n"


def save_curves(rows: dict, variants: Sequence[str], conditions, splits: Sequence[str], chosen: str,
                out: Path, model: str) -> list[str]:
    """rotation.png and scale.png (accuracy over found faces per variant, direct accuracy dashed) and
    conditions.png (chosen variant: faces found and both accuracies per condition); returns the file names."""
    plt = pyplot()
    figures = []
    for group, key, xlabel, fname in (("rotation", "rotation", "in-plane rotation (degrees)", "rotation.png"),
                                      ("scale", "scale", "face scale (1 = 192 px face frame)", "scale.png")):
        conds = sorted([c for c in conditions if c.group in (group, "default")], key=lambda c: getattr(c, key))
        if len(conds) < 2:
            continue
        xs = [getattr(c, key) for c in conds]
        fig, axes = plt.subplots(1, len(splits), figsize=(5.2 * len(splits), 4), squeeze=False)
        for ax, split in zip(axes[0], splits):
            for v in variants:
                ys = [rows[(v, c.name, split)]["accuracy_found"] for c in conds]
                ax.plot(xs, ys, "o-", label=v, linewidth=2.2 if v == chosen else 1.2)
            ys = [rows[(chosen, c.name, split)]["direct_accuracy_found"] for c in conds]
            ax.plot(xs, ys, "k--", label="direct 48x48 (same faces)")
            ax.set_title(f"{model}: {split}", fontsize=10)
            ax.set_xlabel(xlabel)
            ax.set_ylabel("accuracy over found faces")
            ax.legend(fontsize=7)
        fig.tight_layout()
        save_figure(fig, out / fname)
        figures.append(fname)
    fig, axes = plt.subplots(1, len(splits), figsize=(6.5 * len(splits), 4.5), squeeze=False)
    for ax, split in zip(axes[0], splits):
        names = [c.name for c in conditions if (chosen, c.name, split) in rows]
        xi = np.arange(len(names))
        r = [rows[(chosen, n, split)] for n in names]
        ax.bar(xi - 0.27, [q["found_share"] for q in r], 0.27, label="faces found")
        ax.bar(xi, [q["accuracy_found"] for q in r], 0.27, label="accuracy over found")
        ax.bar(xi + 0.27, [q["accuracy_all"] for q in r], 0.27, label="accuracy, misses = errors")
        ax.axhline(r[0]["direct_accuracy"], color="k", linestyle="--", linewidth=0.8, label="direct 48x48")
        ax.set_xticks(xi, names, rotation=60, fontsize=7)
        ax.set_ylim(0, 1.05)
        ax.set_title(f"{model} ({chosen}): {split}", fontsize=10)
        ax.legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    save_figure(fig, out / "conditions.png")
    figures.append("conditions.png")
    return figures


def default_metrics(default: dict, rows: dict, chosen: str, splits: Sequence[str], classes: Sequence[str]) -> dict:
    """The report's ``metrics``: per split, the chosen variant at the default condition, a missed face counted as
    an error (prediction -1: ``n_abstained``), plus its :func:`~.inframe.condition_metrics` row. ``default`` is
    {split: (labels (n,), proba (n, k) with NaN rows for misses)}; train and unrun val/test splits are empty."""
    from ..evaluate import classification_metrics

    metrics = {"train": {"accuracy": None}}
    for split in splits:
        if split in default:
            y, p = default[split]
            pred = np.where(np.isfinite(p).all(axis=1), np.nan_to_num(p).argmax(axis=1), -1)
            metrics[split] = classification_metrics(y, pred, classes)
            metrics[split].update(rows[(chosen, "default", split)])
    for split in ("val", "test"):
        metrics.setdefault(split, {"accuracy": None, "macro_f1": None, "n": None})
    return metrics


def build_report(*, name: str, rows: dict, metrics: dict, seconds: dict, specs: Sequence[str], chosen: str,
                 select: str, score: dict, conditions, n: int, seed: int, temperature, data, artifact: dict | None,
                 kind: str, figures: list, loadavg_start: str, loadavg_end: str) -> dict:
    """The schema-1 report of an in-the-frame run of model ``name`` (:func:`fer_hybrid.reports.make_report`)."""
    from ..reports import make_report

    n_found = sum(r["found"] for (v, _, _), r in rows.items() if v == chosen)  # every variant: the same faces
    ms = {v: 1e3 * s / max(n_found, 1) for v, s in seconds.items()}
    return make_report(
        name=f"inframe-{name}", kind=kind, weights=f"{name} (shipped)", metrics=metrics,
        classes=data.classes, ms_per_face=ms[chosen], artifact=artifact,
        data={"source": Path(data.source).name, "sha256": data.sha256},
        benchmark="inframe", ms_per_face_by_variant=ms,
        model=name, variants=list(specs), chosen_variant=chosen, selected_on=select, selection_score=score,
        condition_means=condition_means(rows),
        n_per_split=n, seed=seed, temperature=temperature,
        conditions=[c.to_json() for c in conditions],
        rows=[{"variant": v, "condition": c, "split": s, **m} for (v, c, s), m in rows.items()],
        loadavg_start=loadavg_start, loadavg_end=loadavg_end,
        notes=(f"FER2013 faces in synthetic 480x400 frames through the Analyzer (photo detection, then the crop "
               f"variant); {n or 'all'} seeded faces per split per condition; metrics = variant {chosen!r} "
               "(chosen on val) at the default condition, a missed face counted as an error (n_abstained = misses); "
               "ms per face = crop + model (+ landmarks) per found face, under load, excluding detection"),
        figures=figures)


def val_score(report: Mapping | None, variant: str | None = None) -> float | None:
    """The in-the-frame score an in-frame ``report`` chose its crop by: mean val accuracy over its conditions,
    a missed face counted as an error, for ``variant`` (default: the report's chosen one). None when there is
    no report, it selected on another split, or it lacks the variant."""
    if not report or report.get("selected_on") != "val":
        return None
    score = (report.get("selection_score") or {}).get(variant or report.get("chosen_variant"))
    return None if score is None else float(score)


def same_benchmark(a: Mapping, b: Mapping) -> bool:
    """Whether two in-frame reports scored the same faces under the same frames (faces per split, seed and
    condition list), so that their val scores can be compared."""
    key = lambda r: (r.get("n_per_split"), r.get("seed"), [c.get("name") for c in r.get("conditions") or []])
    return key(a) == key(b)


def report_folder(reports_dir, model: str) -> Path:
    """``reports_dir/inframe-<model>``: where the in-frame report of registered ``model`` is written and read."""
    return Path(reports_dir) / f"inframe-{model}"


def find_report(reports_dir, model: str) -> dict | None:
    """The in-frame report of registered ``model`` under ``reports_dir`` (:func:`report_folder`), or None."""
    from ..reports import read_report

    path = report_folder(reports_dir, model) / "report.json"
    return read_report(path) if path.is_file() else None


def write_inframe_report(report: dict, rows: dict, variants: Sequence[str], conditions, splits: Sequence[str],
                         out) -> Path:
    """Write report.json/.md into ``out`` with :func:`markdown_tables` appended to the markdown; returns the
    report.json path."""
    from ..reports import write_report

    path = write_report(report, out)
    with open(Path(out) / "report.md", "a") as f:
        f.write(markdown_tables(rows, variants, conditions, splits, report["chosen_variant"],
                                report["selection_score"], report["selected_on"], report["condition_means"]))
    return path


def rewrite_markdown(folder) -> Path:
    """Re-render ``folder/report.md`` from ``folder/report.json`` (an in-the-frame report), first recording
    :func:`condition_means` of its rows in report.json when they are absent or differ (reports written before
    the field existed); nothing else in report.json changes."""
    from .. import _atomic
    from ..reports import read_report, to_markdown
    from .inframe import Condition

    folder = Path(folder)
    report = read_report(folder / "report.json")
    rows = {(r["variant"], r["condition"], r["split"]): r for r in report["rows"]}
    means = condition_means(rows)
    if report.get("condition_means") != means:
        report["condition_means"] = means
        _atomic.write_text(folder / "report.json", json.dumps(report, indent=2) + "\n")
    conditions = [Condition(**c) for c in report["conditions"]]
    splits = [s for s in ("val", "test") if any(k[2] == s for k in rows)]
    text = to_markdown(report) + markdown_tables(rows, report["variants"], conditions, splits,
                                                 report["chosen_variant"], report["selection_score"],
                                                 report["selected_on"], means)
    return _atomic.write_text(folder / "report.md", text)


PREDICTIONS_FILE = "predictions.npz"


def save_predictions(out, predictions: dict, truth: dict, conditions) -> Path:
    """Write ``out``/predictions.npz atomically: per-face classes of every (variant, split) in ``predictions``
    (int (len(conditions), n), -1 = not found), with ``truth`` {split: (labels (n,), face indices (n,))} and the
    condition names, so two runs on the same faces can be compared face by face. Returns its path."""
    from ..npz_cache import write_arrays

    keys = sorted(predictions)
    arrays = {"conditions": np.array([c.name for c in conditions]),
              "variants": np.array([v for v, _ in keys]), "splits": np.array([s for _, s in keys])}
    for i, k in enumerate(keys):
        arrays[f"pred_{i}"] = np.asarray(predictions[k], np.int16)
    for s, (y, idx) in truth.items():
        arrays[f"y_{s}"], arrays[f"indices_{s}"] = np.asarray(y, np.int64), np.asarray(idx, np.int64)
    return write_arrays(Path(out) / PREDICTIONS_FILE, arrays, compressed=True)


def load_predictions(folder, variant: str, split: str) -> dict:
    """{"pred": int (c, n), "y": (n,), "indices": (n,), "conditions": [names]} of one (variant, split) from an
    in-frame report folder's predictions.npz. FileNotFoundError without the file (runs before it existed);
    KeyError naming the variant and split when the run did not score them."""

    path = Path(folder) / PREDICTIONS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: re-run experiments/inframe.py for this model to write it")
    with np.load(path, allow_pickle=False) as z:
        pairs = list(zip(z["variants"].tolist(), z["splits"].tolist()))
        if (variant, split) not in pairs:
            raise KeyError(f"{path} has no predictions for variant {variant!r} on split {split!r}; it has "
                           f"{', '.join(f'{v}/{s}' for v, s in pairs) or 'none'}")
        i = pairs.index((variant, split))
        return {"pred": z[f"pred_{i}"], "y": z[f"y_{split}"], "indices": z[f"indices_{split}"],
                "conditions": z["conditions"].tolist()}


if __name__ == "__main__":
    import sys

    for arg in sys.argv[1:]:
        print(rewrite_markdown(arg))
