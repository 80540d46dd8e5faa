"""FER2013 emotion ids and names, and the 5-class subset used by the study.

FER2013 ids (the order of fer2013.csv's ``emotion`` column)::

    0 angry, 1 disgust, 2 fear, 3 happy, 4 sad, 5 surprise, 6 neutral

The study keeps five of them (drops disgust and neutral). Study ids are 0..4 in the order of
:data:`STUDY_EMOTIONS`; every predictor returns probability columns in that order.
"""
from __future__ import annotations

import numpy as np

FER2013_EMOTIONS: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
STUDY_EMOTIONS: tuple[str, ...] = ("angry", "fear", "happy", "sad", "surprise")
EMOTIONS = STUDY_EMOTIONS  # the package-wide default class list


def emotion_id(name: str, classes: tuple[str, ...] = FER2013_EMOTIONS) -> int:
    """Index of ``name`` in ``classes``; ValueError naming the valid names otherwise."""
    try:
        return classes.index(name)
    except ValueError:
        raise ValueError(f"unknown emotion {name!r}; valid: {', '.join(classes)}") from None


def remap(y: np.ndarray, src: tuple[str, ...] = FER2013_EMOTIONS,
          dst: tuple[str, ...] = STUDY_EMOTIONS) -> tuple[np.ndarray, np.ndarray]:
    """Map integer labels from class list ``src`` to ``dst``.

    Returns ``(y_dst, keep)``: ``keep`` is a bool mask (n,) of labels whose class is in ``dst``,
    ``y_dst`` the int64 labels (n_keep,) of those rows in ``dst`` numbering.
    """
    y = np.asarray(y, dtype=np.int64)
    if y.size and (y.min() < 0 or y.max() >= len(src)):
        raise ValueError(f"labels must lie in 0..{len(src) - 1}, got {y.min()}..{y.max()}")
    table = np.array([dst.index(c) if c in dst else -1 for c in src], dtype=np.int64)
    mapped = table[y]
    keep = mapped >= 0
    return mapped[keep], keep


def to_study(y7: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """FER2013 7-class ids -> study 5-class ids; see :func:`remap`."""
    return remap(y7, FER2013_EMOTIONS, STUDY_EMOTIONS)


def study_columns(classes: tuple[str, ...] = FER2013_EMOTIONS) -> list[int]:
    """Column indices of the study emotions inside a probability matrix ordered by ``classes``."""
    return [classes.index(c) for c in STUDY_EMOTIONS]


def restrict_proba(proba: np.ndarray, classes: tuple[str, ...] = FER2013_EMOTIONS) -> np.ndarray:
    """Keep the study columns of a (n, len(classes)) probability matrix and renormalise rows to 1."""
    p = np.asarray(proba, dtype=np.float64)[:, study_columns(classes)]
    s = p.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (p / s).astype(np.float32)
