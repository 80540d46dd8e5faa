"""An ONNX export measured against the Keras model it came from: which Keras CNN to export, agreement (largest
absolute probability difference), batch-1 speed in alternating blocks, and the report's ``onnx`` fields.

    diffs, keras_accuracy = agreement(keras.predict_proba, onnx.predict_proba, data)       # val and test
    times, ms = alternating_ms({"keras": keras.predict_proba, "onnx": onnx.predict_proba}, face, repeats=5)
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np

from ..verify import predict_chunked

MAX_DIFF = 1e-4  # the agreement bar of an ONNX graph with its Keras model (probabilities)


def shipped_keras_cnns(manifest_models: Mapping[str, dict]) -> dict:
    """{name: entry} of the manifest's shipped single Keras CNNs (loader ``keras``, with a sha256)."""
    from ..artifacts import entry_loader

    return {n: e for n, e in manifest_models.items() if entry_loader(e) == "keras" and e.get("sha256")}


def choice_note(name: str, requested: str, keras_cnns: Mapping[str, dict]) -> str:
    """How ``name`` was picked, for a report's notes: chosen on val only when ``requested`` was ``"best-val"``."""
    if requested == "best-val":
        return f"{name} chosen on val among the shipped Keras CNNs ({', '.join(sorted(keras_cnns))})"
    return f"{name} named by --model"


def choose_keras_cnn(keras_cnns: Mapping[str, dict], name: str = "best-val") -> str:
    """``name``, or for ``"best-val"`` the CNN with the best recorded val accuracy (first by name on ties).
    ValueError naming the choices when ``name`` is not one of ``keras_cnns``."""
    if name == "best-val" and keras_cnns:
        name = max(sorted(keras_cnns), key=lambda n: keras_cnns[n]["metrics"]["val"]["accuracy"])
    if name not in keras_cnns:
        raise ValueError(f"{name!r} is not a shipped Keras CNN; choose one of {', '.join(sorted(keras_cnns))}")
    return name


def beats_default(manifest: Mapping[str, object], val_accuracy: float, inframe: Mapping | None = None,
                  default_inframe: Mapping | None = None) -> tuple[bool, str]:
    """Whether a model with ``val_accuracy`` (as run) should replace the manifest's default (choice on val; test
    never compared). Two conditions: its val accuracy on the crops is higher than the default's recorded one,
    and, when the default has an in-the-frame report (``default_inframe``), the candidate's in-frame report
    (``inframe``, same faces and conditions) scores at least as high on val through the full Analyzer path,
    for the default's crop variant: a gain on 48x48 crops that is lost in real frames is a loss.
    Returns (decision, a one-line reason)."""
    from ..artifacts import beats_on_val
    from .inframe_report import same_benchmark, val_score

    current = manifest.get("default")
    better, old = beats_on_val(manifest, current, val_accuracy)
    if old is None:
        return True, f"the default {current!r} records no val accuracy"
    if not better:
        return False, f"val {val_accuracy:.4f} does not beat the default {current} ({old:.4f}); default unchanged"
    crops = f"val {val_accuracy:.4f} beats the default {current} ({old:.4f})"
    variant = (default_inframe or {}).get("chosen_variant")
    old_frame = val_score(default_inframe)
    if old_frame is None:
        return True, crops
    new_frame = val_score(inframe, variant) if inframe and same_benchmark(inframe, default_inframe) else None
    if new_frame is None:
        return False, (f"{crops}, but there is no in-the-frame val score of the candidate comparable to the "
                       f"default's (run experiments/inframe.py --model NAME --variants {variant} --splits val); "
                       "default unchanged")
    if new_frame < old_frame:
        return False, (f"{crops}, but in the frame its val mean {new_frame:.4f} is below the default's "
                       f"{old_frame:.4f} ({variant} crop); default unchanged")
    return True, f"{crops}; in the frame {new_frame:.4f} vs {old_frame:.4f} ({variant} crop)"


def chunked(predict_proba: Callable[[np.ndarray], np.ndarray], x: np.ndarray, batch_size: int | None = 512):
    """``predict_proba`` over ``x`` in chunks of ``batch_size`` (None: one call)."""
    if batch_size is not None and batch_size < 1:
        raise ValueError(f"batch_size must be >= 1 or None, got {batch_size}")
    return predict_chunked(predict_proba, x, batch_size or max(len(x), 1))


def max_abs_diff(a: np.ndarray, b: np.ndarray) -> float:
    """Largest absolute difference of two probability arrays of one shape (ValueError otherwise; 0.0 if empty)."""
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        raise ValueError(f"cannot compare probabilities of shapes {a.shape} and {b.shape}")
    return float(np.abs(a - b).max()) if a.size else 0.0


def agreement(reference, candidate, data, splits: Sequence[str] = ("val", "test"),
              batch_size: int | None = 512) -> tuple[dict, dict]:
    """({split: max abs difference of ``candidate`` vs ``reference`` probabilities}, {split: accuracy of the
    reference}) on every image of each split of a :class:`fer_hybrid.data.FER2013`."""
    from ..evaluate import metrics_from_proba

    diffs, accuracy = {}, {}
    for split in splits:
        s = data.split(split)
        pr = chunked(reference, s.x, batch_size)
        diffs[split] = max_abs_diff(pr, chunked(candidate, s.x, batch_size))
        accuracy[split] = metrics_from_proba(s.y, pr, data.classes)["accuracy"]
    return diffs, accuracy


def alternating_ms(predictors: Mapping[str, Callable], face: np.ndarray, repeats: int = 5,
                   calls: int = 50) -> tuple[dict, dict]:
    """Batch-1 ms per face of each predictor in ``repeats`` alternating blocks (so load changes hit all alike):
    ({name: [ms per block]}, {name: median ms}). ValueError when ``repeats`` < 1."""
    from ..evaluate import ms_per_face

    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    times = {k: [] for k in predictors}
    for _ in range(repeats):
        for k, fn in predictors.items():
            times[k].append(ms_per_face(fn, face, repeats=calls))
    return times, {k: float(np.median(v)) for k, v in times.items()}


def onnx_fields(diffs: dict, ms: dict, times: dict, keras_accuracy: dict, threads: int,
                load: float, max_diff: float = MAX_DIFF) -> dict:
    """The ``onnx`` block of an export report (``ms``/``times`` keyed "keras" and "onnx")."""
    return {"max_abs_diff_vs_keras": diffs, "agrees_within": max_diff, "agrees": max(diffs.values()) <= max_diff,
            "ms_per_face": ms["onnx"], "keras_ms_per_face": ms["keras"], "faster": ms["onnx"] < ms["keras"],
            "keras_accuracy": keras_accuracy, "threads": threads, "timing_blocks": times,
            "load_average_1min": load}


def export_and_check(model, path: str | os.PathLike, keras_predict, x_val: np.ndarray, face: np.ndarray,
                     keras_ms: float, name: str, root: str | os.PathLike | None = None) -> dict:
    """Export ``model`` to ONNX at ``path`` and measure it: {file, sha256, max_abs_diff_vs_keras_val (against
    ``keras_predict`` on ``x_val``, one call each), ms_per_face (batch 1 on ``face``), keras_ms_per_face}."""
    from ..cnn.export import export_onnx
    from ..evaluate import ms_per_face
    from ..onnx_model import OnnxPredictor
    from ..reports import artifact_info

    onnx_path = export_onnx(model, path)
    onnx = OnnxPredictor(onnx_path, name)
    return {"file": Path(onnx_path).name, "sha256": artifact_info(onnx_path, root)["sha256"],
            "max_abs_diff_vs_keras_val": max_abs_diff(onnx.predict_proba(x_val), keras_predict(x_val)),
            "ms_per_face": ms_per_face(onnx.predict_proba, face), "keras_ms_per_face": keras_ms}
