"""Temporal smoothing of per-face class probabilities (exponential moving average) against label flicker.

``s_t = alpha * p_t + (1 - alpha) * s_{t-1}``, ``s_0 = p_0``; ``alpha = 1`` turns smoothing off.
A NaN row (no answer, e.g. no landmarks) neither updates the state nor yields a label: its smoothed
output is NaN too, and the next valid row continues from the state held before it.
"""
from __future__ import annotations

import numpy as np


def _check_alpha(alpha: float) -> float:
    alpha = float(alpha)
    if not 0.0 < alpha <= 1.0:
        raise ValueError(f"smoothing alpha must be in (0, 1], got {alpha}")
    return alpha


class ProbabilityEMA:
    """EMA over probability rows of one face track; :meth:`update` takes and returns float (k,) rows."""

    def __init__(self, alpha: float = 0.5):
        self.alpha = _check_alpha(alpha)
        self.state: np.ndarray | None = None

    def update(self, proba: np.ndarray) -> np.ndarray:
        p = np.asarray(proba, dtype=np.float64)
        if not np.all(np.isfinite(p)):
            return np.full(p.shape, np.nan)
        self.state = p.copy() if self.state is None else self.alpha * p + (1.0 - self.alpha) * self.state
        return self.state.copy()

    def reset(self) -> None:
        self.state = None


def ema(proba_seq: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """Smooth a sequence float (t, k) of probability rows; returns float64 (t, k) (NaN rows stay NaN)."""
    seq = np.asarray(proba_seq, dtype=np.float64)
    if seq.ndim != 2:
        raise ValueError(f"expected a (t, k) sequence of probability rows, got shape {seq.shape}")
    smoother = ProbabilityEMA(alpha)
    return np.array([smoother.update(p) for p in seq]).reshape(seq.shape)
