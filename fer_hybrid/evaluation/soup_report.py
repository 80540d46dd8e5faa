"""The model-soup experiment's pieces (``experiments/model_soup.py``): where each ingredient's file is, the
val score the greedy soup is chosen by, and the report's ``soup`` section.

    files = [ingredient_file(n, ROOT) for n in names]
    models, flip_in_graph = load_ingredients(files)
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


def load_ingredients(files: list[Path]) -> tuple[list, bool]:
    """The ingredients' networks, ready to average, and whether they carry the flip TTA in their graph.

    Files saved with the flip in the graph (:func:`fer_hybrid.cnn.export.with_flip_tta`, as ``--flip-in-graph``
    ships ``vggface``) are unwrapped to the network inside (the same weights); the soup is wrapped again to ship.
    ArtifactError (a ValueError) for a file that cannot be loaded; ValueError when only some carry the flip."""
    from ..cnn.export import is_flip_tta, without_flip_tta
    from ..keras_io import load_keras_model

    loaded = [load_keras_model(f) for f in files]
    wrapped = [is_flip_tta(m) for m in loaded]
    if any(wrapped) and not all(wrapped):
        mixed = ", ".join(f"{Path(f).name} ({'flip in graph' if w else 'no flip in graph'})"
                          for f, w in zip(files, wrapped))
        raise ValueError(f"ingredients must all carry the flip TTA in their graph or none: {mixed}")
    return [without_flip_tta(m) if w else m for m, w in zip(loaded, wrapped)], all(wrapped)


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
