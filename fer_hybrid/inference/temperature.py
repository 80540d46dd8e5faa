"""Temperature scaling of probability rows (the calibration the Analyzer applies to a model's output).

``scale_proba(p, T) = softmax(log p / T + b)``: T > 1 softens over-confident rows, T < 1 sharpens them;
``bias`` (k,) optionally shifts each class's log-probability (per-class bias calibration). A row with a
NaN (the model's "no answer") stays NaN. T = 1 and no bias returns the rows unchanged (renormalised).
"""
from __future__ import annotations

import math

import numpy as np

EPS = 1e-12  # floor on probabilities before the log (a 0 probability would give -inf)


def check_temperature(temperature: float) -> float:
    """``temperature`` as a float; ValueError unless it is finite and > 0."""
    t = float(temperature)
    if not math.isfinite(t) or t <= 0:
        raise ValueError(f"temperature must be a finite number > 0, got {temperature}")
    return t


def scale_proba(proba: np.ndarray, temperature: float = 1.0, bias: np.ndarray | None = None) -> np.ndarray:
    """float (n, k) probability rows -> float64 (n, k) calibrated rows (softmax(log p / T + bias))."""
    t = check_temperature(temperature)
    p = np.asarray(proba, dtype=np.float64)
    if p.ndim != 2:
        raise ValueError(f"probabilities must be (n, k), got shape {p.shape}")
    z = np.log(np.clip(p, EPS, 1.0)) / t
    if bias is not None:
        bias = np.asarray(bias, dtype=np.float64).reshape(-1)
        if bias.shape != (p.shape[1],):
            raise ValueError(f"bias has {bias.size} values for {p.shape[1]} classes")
        z = z + bias
    z -= z.max(axis=1, keepdims=True, initial=-np.inf) if len(z) else 0.0
    e = np.exp(z)
    out = e / e.sum(axis=1, keepdims=True)
    out[~np.isfinite(p).all(axis=1)] = np.nan
    return out
