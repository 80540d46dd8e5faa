"""Model soups: one network whose weights average fine-tuned copies of one parent (Wortsman et al., 2022,
"Model soups: averaging weights of multiple fine-tuned models improves accuracy without increasing inference
time"). The soup costs one network at inference, unlike an ensemble of the same models.

    soup = average_weights([m1, m2, m3])                       # uniform soup
    result = greedy_soup([m1, m2, m3], score=val_accuracy)     # ingredients join only if the score holds

Ingredients must share one architecture (same weight shapes, in order) and, to average well, one pre-trained
parent: weights of networks trained from different initialisations do not average into a working network.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np


def check_compatible(models: Sequence) -> None:
    """ValueError unless every model has the first one's weight shapes (same count, same order)."""
    if not models:
        raise ValueError("a soup needs at least one ingredient")
    ref = [tuple(w.shape) for w in models[0].weights]
    for i, m in enumerate(models[1:], start=1):
        shapes = [tuple(w.shape) for w in m.weights]
        if shapes != ref:
            raise ValueError(f"ingredient {i} ({m.name}) has a different architecture from ingredient 0 "
                             f"({models[0].name}): {len(shapes)} weight tensors vs {len(ref)}, or other shapes")


def average_weights(models: Sequence, coefficients: Sequence[float] | None = None):
    """A new model with the first one's architecture and the (weighted) mean of every floating-point weight,
    batch-norm moving statistics included; integer state (e.g. counters) is taken from the first model.
    ``coefficients``: one non-negative number per model (normalised to sum 1); default uniform."""
    import keras

    check_compatible(models)
    c = np.ones(len(models)) if coefficients is None else np.asarray(coefficients, np.float64)
    if c.shape != (len(models),) or np.any(c < 0) or c.sum() <= 0:
        raise ValueError(f"coefficients must be {len(models)} non-negative numbers with a positive sum, got {coefficients}")
    c = c / c.sum()
    soup = keras.models.clone_model(models[0])
    per_model = [m.get_weights() for m in models]
    averaged = []
    for tensors in zip(*per_model):
        first = tensors[0]
        if np.issubdtype(first.dtype, np.floating):
            averaged.append(np.tensordot(c, np.stack(tensors).astype(np.float64), axes=1).astype(first.dtype))
        else:
            averaged.append(first)
    soup.set_weights(averaged)
    return soup


@dataclass
class SoupResult:
    """The greedy soup: ``model``, the ``chosen`` ingredient indices (in the order they joined), every
    ingredient's own ``scores``, and the ``trail`` of tries ({ingredient, soup score, kept})."""

    model: object
    chosen: list[int]
    scores: list[float]
    trail: list[dict] = field(default_factory=list)

    @property
    def score(self) -> float:
        """The soup's score (the last kept entry of the trail)."""
        return [t["score"] for t in self.trail if t["kept"]][-1]


def greedy_soup(models: Sequence, score: Callable[[object], float], keep_all: bool = False) -> SoupResult:
    """Greedy soup: ingredients sorted by ``score`` (higher is better; use val, never test), the best first;
    each next one joins the uniform average only if the soup's score does not drop. With one ingredient kept,
    ``model`` is that ingredient itself. ``keep_all``: every ingredient joins (the uniform soup), the trail
    still scoring each step."""
    check_compatible(models)
    scores = [float(score(m)) for m in models]
    order = sorted(range(len(models)), key=lambda i: -scores[i])
    chosen, best, soup = [order[0]], scores[order[0]], models[order[0]]
    trail = [{"ingredient": order[0], "score": best, "kept": True}]
    for i in order[1:]:
        candidate = average_weights([models[j] for j in chosen + [i]])
        s = float(score(candidate))
        kept = keep_all or s >= best
        trail.append({"ingredient": i, "score": s, "kept": kept})
        if kept:
            chosen, best, soup = chosen + [i], s, candidate
    return SoupResult(model=soup, chosen=chosen, scores=scores, trail=trail)
