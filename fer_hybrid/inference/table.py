"""Long-format results: one row per face per frame, and one row for each frame without a face (its face
columns empty), so that time lines up across tracks and files (like py-feat's ``Fex``).

Columns (:data:`COLUMNS`): ``source`` (the input), ``file`` (the image file, for photos), ``frame`` index,
``time_ms`` (NaN for photos analysed one by one), ``track_id`` (NA for photos),
``x0 y0 x1 y1`` box (frame pixels), ``detected`` (False: box from the tracker), ``score`` (dlib HOG score on
detection frames), ``p_<class>`` probabilities, ``s_<class>`` smoothed probabilities, ``label`` and
``smoothed_label`` (empty when the model has no answer), ``model``.
"""
from __future__ import annotations

from typing import Iterable, Sequence

from ..labels import STUDY_EMOTIONS


def columns(classes: Sequence[str] = STUDY_EMOTIONS) -> list[str]:
    return (["source", "file", "frame", "time_ms", "track_id", "x0", "y0", "x1", "y1", "detected", "score"]
            + [f"p_{c}" for c in classes] + [f"s_{c}" for c in classes] + ["label", "smoothed_label", "model"])


COLUMNS = columns()


def rows(frames: Iterable, source: str, model: str, classes: Sequence[str] = STUDY_EMOTIONS) -> list[dict]:
    """Row dicts for :class:`~fer_hybrid.inference.analyzer.FrameFaces` items (see the module docstring);
    within a video frame, faces come in track-id order (photos: in detection order)."""
    out = []
    for fr in frames:
        base = {"source": source, "file": fr.path, "frame": fr.index, "time_ms": round(1000.0 * fr.timestamp, 3),
                "model": model}
        if not fr.faces:
            out.append(base)
        faces = fr.faces
        if all(f.id is not None for f in faces):  # video: a frame's faces in track-id order
            faces = sorted(faces, key=lambda f: f.id)
        for f in faces:
            row = dict(base, track_id=f.id, detected=bool(f.detected), score=f.score,
                       label=f.label, smoothed_label=f.smoothed_label)
            row.update(zip(("x0", "y0", "x1", "y1"), (int(v) for v in f.box)))
            if f.answered:
                row.update({f"p_{c}": float(p) for c, p in zip(classes, f.proba)})
                row.update({f"s_{c}": float(p) for c, p in zip(classes, f.smoothed)})
            out.append(row)
    return out


def to_dataframe(frames: Iterable, source: str, model: str, classes: Sequence[str] = STUDY_EMOTIONS):
    """pandas DataFrame with :func:`columns` in order and stable dtypes (nullable ints/bools, float, string)."""
    import pandas as pd

    df = pd.DataFrame(rows(frames, source, model, classes), columns=columns(classes))
    dtypes = {"frame": "int64", "time_ms": "float64", "track_id": "Int64", "x0": "Int64", "y0": "Int64",
              "x1": "Int64", "y1": "Int64", "detected": "boolean", "score": "float64",
              "source": "string", "file": "string", "label": "string", "smoothed_label": "string", "model": "string"}
    dtypes.update({c: "float64" for c in df.columns if c[:2] in ("p_", "s_")})
    return df.astype(dtypes)
