"""The model-soup experiment's pieces (``experiments/model_soup.py``): where each ingredient's file is, the
val score the greedy soup is chosen by, and the report's ``soup`` section.

    files = [ingredient_file(n, ROOT) for n in names]
    result = greedy_soup(models, score=lambda m: flip_accuracy(m, data.val))
    fields = soup_fields(names, files, result)
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np


def ingredient_file(name: str, root: str | os.PathLike) -> Path:
    """The .keras file of ingredient ``name``: a shipped Keras CNN, after the registry's checks
    (:func:`fer_hybrid.predictors.check_artifact`: present, sha256 of the manifest), else the checkpoint that
    ``experiments/reports/NAME/report.json`` evaluated (sha256 of the report). ValueError otherwise (the
    registry's ArtifactError is one)."""
    from ..predictors import check_artifact, list_models, model_spec
    from ..reports import read_report, reported_artifact

    if name in list_models():
        loader = model_spec(name).loader
        if loader != "keras":
            raise ValueError(f"{name} is a registered {loader} model, not a Keras network")
        return check_artifact(name)
    report = Path(root) / "experiments" / "reports" / name / "report.json"
    if not report.exists():
        raise ValueError(f"{name} is neither a registered model nor a report under experiments/reports")
    return reported_artifact(read_report(report), root)


def flip_accuracy(model, split) -> float:
    """Accuracy on a ``Split`` with the flip TTA, as the registry runs a Keras CNN whose entry says ``flip``."""
    from ..cnn.train import predict_proba

    return float((predict_proba(model, split.x, tta=True).argmax(1) == split.y).mean())


def soup_fields(names: list[str], files: list[Path], result, root: str | os.PathLike, uniform: bool = False) -> dict:
    """The report's ``soup`` section: every ingredient (name, file, sha256, own val score), the greedy trail
    by name, and the names that made the soup (``uniform``: every ingredient, :func:`greedy_soup` keep_all)."""
    from ..reports import artifact_info

    return {
        "method": ("uniform soup (Wortsman et al. 2022): the uniform weight average of every ingredient; the trail "
                   "scores each step on val (flip TTA); test not used" if uniform else
                   "greedy soup (Wortsman et al. 2022): ingredients in order of val accuracy (flip TTA); each joins "
                   "the uniform weight average only if the soup's val accuracy does not drop; test not used"),
        "ingredients": [{"name": n, **artifact_info(f, root), "val_accuracy": s}
                        for n, f, s in zip(names, files, result.scores)],
        "trail": [{"ingredient": names[t["ingredient"]], "val_accuracy": t["score"], "kept": t["kept"]}
                  for t in result.trail],
        "chosen": [names[i] for i in result.chosen],
        "val_accuracy": result.score,
        "best_ingredient_val_accuracy": float(np.max(result.scores)),
    }
