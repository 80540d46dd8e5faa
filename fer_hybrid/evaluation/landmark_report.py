"""Evaluation and reports of the landmark track (``experiments/landmarks.py``): metrics per split, the chosen
model's test run through its predictor with its batch-1 time, and the reports of the ablation ensembles, of the
chosen model's members and of its ensemble (``<name>-<key>/report.json`` + .md, kind "landmarks").

The fitting and the tables live in :mod:`fer_hybrid.landmarks.selection` (``sel``); this module adds what the
models layer may not import (:mod:`fer_hybrid.evaluate`, :mod:`fer_hybrid.reports`).

>>> out = LandmarkReports("landmarks-app", "experiments/reports", command, meta)
>>> part_metrics = out.ablation(fitted, y, classes, training)       # <name>-geometry, -appearance, -ablation
>>> via, seconds, timing = predictor_timing(predictor, data.test.x, data.test.y, data.classes)
>>> metrics_of = member_metrics(ens, X, X_mirror, y, classes)      # {member or "ensemble": {split: metrics}}
>>> out.chosen(ens, metrics_of, X["val"], y["val"], names, training, ...)   # <name>-<member>, <name>-ensemble
"""
from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np

from ..evaluate import metrics_from_proba, ms_per_face
from ..landmarks import models as lm, selection as sel
from ..reports import make_report, write_report

TIMING_NOTE = ("median of {repeats} batch-1 calls (gray 48x48 face -> landmarks -> features -> ensemble); the "
               "load average shows whether other work shared the cores")


def split_metrics(proba: Mapping[str, np.ndarray], y: Mapping[str, np.ndarray], classes: Sequence[str]) -> dict:
    """{split: probabilities} -> {split: :func:`fer_hybrid.evaluate.metrics_from_proba`}."""
    return {s: metrics_from_proba(y[s], p, classes) for s, p in proba.items()}


def member_metrics(ens, X: Mapping[str, np.ndarray], X_mirror: Mapping[str, np.ndarray],
                   y: Mapping[str, np.ndarray], classes: Sequence[str]) -> dict:
    """{member or "ensemble": {split: metrics}} of ``ens`` on cached feature matrices (mirror TTA as chosen)."""
    return {key: split_metrics(proba, y, classes) for key, proba in sel.split_probas(ens, X, X_mirror).items()}


def predictor_timing(predictor, faces: np.ndarray, labels: np.ndarray, classes: Sequence[str],
                     repeats: int = 200) -> tuple[dict, float, dict]:
    """(metrics, seconds, timing) of ``predictor`` (images -> landmarks -> features -> ensemble) on ``faces``,
    and its batch-1 time on the first face: timing = ``ms_per_face`` (median of ``repeats`` calls), the load
    average when the timing began, the core count and a note."""
    t0 = time.perf_counter()
    metrics = metrics_from_proba(labels, predictor.predict_proba(faces), classes)
    seconds, load = time.perf_counter() - t0, os.getloadavg()
    ms = ms_per_face(lambda f: predictor.predict_proba(f[None]), faces[0], repeats=repeats)
    return metrics, seconds, {"ms_per_face": ms, "load_average_1_5_15min": list(load), "cpu_count": os.cpu_count(),
                              "note": TIMING_NOTE.format(repeats=repeats)}


def when_timed(timing: Mapping) -> str:
    """The end of the chosen model's note on its batch-1 timing: the load average on the cores when timed."""
    return f" (load average {timing['load_average_1_5_15min'][0]:.1f} on {timing['cpu_count']} cores when timed)"


@dataclasses.dataclass
class LandmarkReports:
    """Writes the reports of run ``name`` into ``root``/<name>-<key>/ with the run's ``command`` and ``data``
    (source and sha256)."""

    name: str
    root: Path
    command: str | None
    data: dict

    def __post_init__(self):
        self.root = Path(self.root)

    def folder(self, key: str) -> Path:
        return self.root / f"{self.name}-{key}"

    def write(self, key: str, metrics: Mapping[str, dict], **fields) -> Path:
        """<root>/<name>-<key>/report.json + report.md (kind "landmarks") of ``metrics`` ({split: metrics})."""
        return write_report(make_report(name=f"{self.name}-{key}", kind="landmarks", weights=None, metrics=metrics,
                                        command=self.command, data=self.data, **fields), self.folder(key))

    def ablation(self, fitted: Mapping[str, sel.FittedPart], y: Mapping[str, np.ndarray], classes: Sequence[str],
                 training: Mapping) -> dict:
        """Reports of the geometry-only and appearance-only ensembles and the screen + ablation tables
        (<name>-ablation/ablation.md); returns {part: {split: metrics}} of every part of ``fitted``."""
        part_metrics = {part: split_metrics(f.proba(), y, classes) for part, f in fitted.items()}
        for part in ("geometry", "appearance"):   # the chosen ensemble's reports: :meth:`chosen`
            if part in fitted:
                self.write(part, part_metrics[part], **fitted[part].describe(self.name, part, training["appearance"]))
        sel.write_ablation(self.folder("ablation"), fitted, part_metrics, training)
        return part_metrics

    def chosen(self, ens, metrics_of: Mapping[str, Mapping[str, dict]], X_val: np.ndarray, y_val: np.ndarray,
               names: Sequence[str], training: Mapping, *, timing: Mapping, extraction: Mapping, artifact: dict | None,
               upscale: int, subset: int | None = None, test_via_predictor: float | None = None,
               log: Callable[[str], object] | None = None) -> None:
        """Reports of each member of the chosen model ``ens`` and of its ensemble (``metrics_of`` from
        :func:`member_metrics`), each with its top-20 feature importances on val (importance.png), the batch-1
        ``timing`` of :func:`predictor_timing`, the ``extraction`` record and the saved or shipped ``artifact``;
        the ensemble's also records ``test_via_predictor`` (its test accuracy through the predictor)."""
        for key, m in metrics_of.items():
            imp, how = lm.member_importance(ens, key, X_val, y_val, names)
            lm.save_importance_png(imp, self.folder(key) / "importance.png", f"{self.name}-{key}: top-20 features",
                                   xlabel=how)
            self.write(key, m, ms_per_face=timing["ms_per_face"], artifact=artifact, figures=["importance.png"],
                       **sel.describe_chosen(ens, key, training, len(names), upscale, when_timed(timing)),
                       extraction=extraction, timing=timing, subset=subset, top_features=dict(list(imp.items())[:20]),
                       importance_method=how,
                       **({"test_via_predictor": test_via_predictor} if key == "ensemble" else {}))
            if log is not None:
                log(f"{key:9s} train {m['train']['accuracy']:.4f} val {m['val']['accuracy']:.4f} "
                    f"test {m['test']['accuracy']:.4f} macro-F1 {m['test']['macro_f1']:.4f}")
