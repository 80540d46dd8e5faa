"""Probability calibration: expected calibration error, reliability curve, per-class bias, and fitting
temperature scaling (or temperature + per-class bias) by minimum negative log-likelihood.

Inputs everywhere: ``proba`` float (n, k) rows summing to 1 (class order of the model), ``y`` int (n,)
true class ids. Rows containing NaN (the model abstained) are left out of every measure here.

>>> ece(proba, y)                                    # top-label ECE, 15 equal-width confidence bins
>>> t = fit_temperature(val_proba, val_y)            # scalar T > 0
>>> scale_proba(test_proba, t.temperature)           # calibrated rows (fer_hybrid.inference.temperature)
"""
from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

from ..inference.temperature import EPS, scale_proba

N_BINS = 15


def _answered(proba: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    proba = np.asarray(proba, dtype=np.float64)
    y = np.asarray(y, dtype=np.int64)
    if proba.ndim != 2 or len(proba) != len(y):
        raise ValueError(f"proba {proba.shape} and y {y.shape} do not match (expected (n, k) and (n,))")
    ok = np.isfinite(proba).all(axis=1)
    return proba[ok], y[ok]


def reliability(proba: np.ndarray, y: np.ndarray, n_bins: int = N_BINS) -> dict:
    """Top-label reliability curve over ``n_bins`` equal-width confidence bins in [0, 1].

    Returns {"edges" (n_bins + 1,), "count" (n_bins,), "confidence" (mean max-probability per bin, NaN
    when empty), "accuracy" (per bin, NaN when empty)} as lists.
    """
    proba, y = _answered(proba, y)
    conf = proba.max(axis=1) if len(proba) else np.zeros(0)
    correct = (proba.argmax(axis=1) == y) if len(proba) else np.zeros(0, bool)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    idx = np.clip(np.digitize(conf, edges[1:-1], right=True), 0, n_bins - 1)
    count = np.bincount(idx, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.bincount(idx, conf, n_bins) / count
        acc = np.bincount(idx, correct.astype(float), n_bins) / count
    return {"edges": edges.tolist(), "count": count.tolist(), "confidence": mean_conf.tolist(),
            "accuracy": acc.tolist()}


def ece(proba: np.ndarray, y: np.ndarray, n_bins: int = N_BINS) -> float:
    """Expected calibration error of the top label: sum over bins of (bin share) x |accuracy - confidence|."""
    r = reliability(proba, y, n_bins)
    count = np.asarray(r["count"], dtype=np.float64)
    if count.sum() == 0:
        return float("nan")
    gap = np.abs(np.nan_to_num(np.asarray(r["accuracy"]) - np.asarray(r["confidence"])))
    return float((count * gap).sum() / count.sum())


def nll(proba: np.ndarray, y: np.ndarray) -> float:
    """Mean negative log-likelihood of the true class (natural log)."""
    proba, y = _answered(proba, y)
    return float(-np.log(np.clip(proba[np.arange(len(y)), y], EPS, 1.0)).mean())


def class_bias(proba: np.ndarray, y: np.ndarray, classes: Sequence[str]) -> dict:
    """Per class: true count, predicted (argmax) count, their ratio, mean probability vs frequency.

    ``over_predicted`` > 1 means the model says this class more often than it is true (e.g. sad).
    """
    proba, y = _answered(proba, y)
    k = len(classes)
    pred = proba.argmax(axis=1)
    true_n = np.bincount(y, minlength=k)
    pred_n = np.bincount(pred, minlength=k)
    out = {}
    for i, c in enumerate(classes):
        out[c] = {"true": int(true_n[i]), "predicted": int(pred_n[i]),
                  "over_predicted": float(pred_n[i] / true_n[i]) if true_n[i] else None,
                  "mean_probability": float(proba[:, i].mean()) if len(proba) else None,
                  "frequency": float(true_n[i] / len(y)) if len(y) else None}
    return out


@dataclasses.dataclass
class Calibration:
    """A fitted calibration: ``temperature`` (> 0) and optional per-class ``bias`` (k,) on log-probabilities."""

    temperature: float = 1.0
    bias: list | None = None

    def apply(self, proba: np.ndarray) -> np.ndarray:
        return scale_proba(proba, self.temperature, None if self.bias is None else np.asarray(self.bias))

    def to_json(self) -> dict:
        return {"temperature": float(self.temperature),
                "bias": None if self.bias is None else [float(b) for b in self.bias]}


def fit_temperature(proba: np.ndarray, y: np.ndarray) -> Calibration:
    """The T minimising the NLL of ``scale_proba(proba, T)`` (bounded search over log T in [-3, 3])."""
    from scipy.optimize import minimize_scalar

    proba, y = _answered(proba, y)
    if not len(y):
        raise ValueError("cannot fit a temperature on zero answered rows")
    res = minimize_scalar(lambda lt: nll(scale_proba(proba, float(np.exp(lt))), y), bounds=(-3.0, 3.0),
                          method="bounded", options={"xatol": 1e-5})
    return Calibration(float(np.exp(res.x)))


def fit_temperature_bias(proba: np.ndarray, y: np.ndarray) -> Calibration:
    """Temperature plus per-class bias (k values, the first fixed at 0) minimising the NLL (L-BFGS)."""
    from scipy.optimize import minimize

    proba, y = _answered(proba, y)
    if not len(y):
        raise ValueError("cannot fit a calibration on zero answered rows")
    k = proba.shape[1]

    def loss(v):
        return nll(scale_proba(proba, float(np.exp(v[0])), np.concatenate([[0.0], v[1:]])), y)

    res = minimize(loss, np.zeros(k), method="L-BFGS-B", bounds=[(-3.0, 3.0)] + [(-5.0, 5.0)] * (k - 1))
    return Calibration(float(np.exp(res.x[0])), [0.0, *map(float, res.x[1:])])


def summary(proba: np.ndarray, y: np.ndarray, classes: Sequence[str], n_bins: int = N_BINS) -> dict:
    """{accuracy, ece, nll, n, bias (class_bias), reliability} of one probability matrix."""
    answered, ya = _answered(proba, y)
    return {"n": int(len(ya)),
            "accuracy": float((answered.argmax(axis=1) == ya).mean()) if len(ya) else float("nan"),
            "ece": ece(proba, y, n_bins), "nll": nll(proba, y) if len(ya) else float("nan"),
            "bias": class_bias(proba, y, classes), "reliability": reliability(proba, y, n_bins)}


def save_reliability_png(curves: dict, path, title: str = "") -> None:
    """Reliability diagram: one line per {label: reliability dict}, diagonal = perfect calibration,
    bars = share of faces per confidence bin (of the first curve)."""
    from ..reports import pyplot, save_figure

    plt = pyplot()
    fig, (ax, axh) = plt.subplots(2, 1, figsize=(5.5, 6.5), gridspec_kw={"height_ratios": [3, 1]}, sharex=True)
    ax.plot([0, 1], [0, 1], "k--", linewidth=0.8, label="perfect calibration")
    first = None
    for label, r in curves.items():
        conf, acc = np.asarray(r["confidence"], float), np.asarray(r["accuracy"], float)
        ok = np.isfinite(conf) & np.isfinite(acc)
        ax.plot(conf[ok], acc[ok], "o-", markersize=3, label=label)
        first = first or r
    ax.set_ylabel("accuracy in bin")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.legend(fontsize=8, loc="upper left")
    ax.set_title(title, fontsize=10)
    edges = np.asarray(first["edges"])
    axh.bar(edges[:-1], first["count"], width=np.diff(edges), align="edge", color="#9ecae1", edgecolor="white")
    axh.set_xlabel("confidence (max probability)")
    axh.set_ylabel("faces")
    fig.tight_layout()
    save_figure(fig, path)
