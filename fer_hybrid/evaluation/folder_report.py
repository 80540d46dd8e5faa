"""The standard report of a folder evaluation (:mod:`fer_hybrid.evaluation.folder`): report.json + report.md
(+ confusion.png) via :mod:`fer_hybrid.reports`, with the folder as the "test" split, and predictions.csv."""
from __future__ import annotations

import os
from pathlib import Path

from .. import _atomic
from ..reports import make_report, write_report


def write_folder_report(result, out: str | os.PathLike, *, folder, model: str, labels: str, skipped: dict,
                        analyzer: str = "") -> dict:
    from ..predictors import model_spec

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    try:
        kind = model_spec(model).kind
    except ValueError:
        kind = "cnn"
    m = result.metrics
    report = make_report(
        name=f"folder-{Path(folder).resolve().name}-{model}", kind=kind, weights=f"{model} (shipped)",
        metrics={"train": {"accuracy": None}, "val": {"accuracy": None}, "test": m},
        benchmark="folder", folder=str(folder), model=model, labels=labels, skipped=skipped, analyzer=analyzer,
        notes=(f"the folder {Path(folder).name} scored through the Analyzer ({analyzer}); the 'test' row is the "
               f"folder: {m['n']} labelled images, faces found in {m['found']} (accuracy counts images without a "
               f"face as errors; over found faces {m['accuracy_found']:.4f}); {m['unreadable']} unreadable; "
               f"skipped (unmapped labels): {skipped or 'none'}; per-image results in predictions.csv"))
    write_report(report, out)
    _atomic.write_text(out / "predictions.csv", result.table.to_csv(index=False))
    return report
