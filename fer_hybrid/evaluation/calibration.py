"""Probability calibration: expected calibration error, reliability curve, per-class bias, and fitting
temperature scaling (or temperature + per-class bias) by minimum negative log-likelihood.

Inputs everywhere: ``proba`` float (n, k) rows summing to 1 (class order of the model), ``y`` int (n,)
true class ids. Rows containing NaN (the model abstained) are left out of every measure here.

>>> ece(proba, y)                                    # top-label ECE, 15 equal-width confidence bins
>>> t = fit_temperature(val_proba, val_y)            # scalar T > 0
>>> scale_proba(test_proba, t.temperature)           # calibrated rows (fer_hybrid.inference.temperature)

The method of ``experiments/calibration.py`` (fit on val, choose on val, keep only if ECE inside val drops):

>>> c = compare_calibrations({"val": pv, "test": pt}, {"val": yv, "test": yt}, classes)
>>> chosen = choose_on_val(c, eligible(c, keep_labels=True))      # lowest 5-fold ECE inside val
>>> keep, final = kept_calibration(c, chosen)                      # identity Calibration() when not kept
(test ECE is measured and reported, never used to decide)
>>> markdown_tables(name, c, chosen, keep, final, classes)
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


# ---------------------------------------------------------------------------------------------
# The method of experiments/calibration.py: fit on val, choose on val, keep only if ECE inside val drops
# ---------------------------------------------------------------------------------------------
FOLDS = 5
SEED = 0
AS_SHIPPED = "as shipped"
FITS = {"temperature": fit_temperature, "temperature+bias": fit_temperature_bias}


def cross_validated_ece(proba: np.ndarray, y: np.ndarray, fit, n_bins: int = N_BINS, folds: int = FOLDS,
                        seed: int = SEED) -> float:
    """Mean held-out ECE of a calibration ``fit(proba, y) -> Calibration`` fitted on the other folds of
    (proba, y) (seeded random folds)."""
    order = np.random.default_rng(seed).permutation(len(y))
    scores = []
    for part in np.array_split(order, folds):
        rest = np.setdiff1d(order, part)
        scores.append(ece(fit(proba[rest], y[rest]).apply(proba[part]), y[part], n_bins))
    return float(np.mean(scores))


@dataclasses.dataclass
class Comparison:
    """Calibrations fitted on val and measured on every split (:func:`compare_calibrations`)."""

    before: dict   # {split: summary} of the probabilities as shipped
    after: dict    # {calibration name: {split: summary}} once each fitted calibration is applied
    fitted: dict   # {calibration name: Calibration} fitted on all of val
    cv: dict       # {calibration name, AS_SHIPPED: cross-validated ECE inside val}


def compare_calibrations(proba: dict, y: dict, classes: Sequence[str], n_bins: int = N_BINS, fits: dict = FITS,
                         folds: int = FOLDS, seed: int = SEED) -> Comparison:
    """Fit each of ``fits`` {name: fit function} on ``proba["val"]``; summarise every split of ``proba`` /
    ``y`` ({split: array}) before and after; ``folds``-fold ECE inside val of each fit and of no calibration
    (the small-sample reference: ECE over a fifth of val reads higher than over all of it)."""
    if "val" not in proba or "val" not in y:
        raise ValueError(f"calibrations are fitted on val; got splits {sorted(proba)}")
    pv, yv = proba["val"], y["val"]
    cv = {k: cross_validated_ece(pv, yv, f, n_bins, folds, seed) for k, f in fits.items()}
    cv[AS_SHIPPED] = cross_validated_ece(pv, yv, lambda p, t: Calibration(), n_bins, folds, seed)
    fitted = {k: f(pv, yv) for k, f in fits.items()}
    return Comparison(before={s: summary(proba[s], y[s], classes, n_bins) for s in proba},
                      after={k: {s: summary(c.apply(proba[s]), y[s], classes, n_bins) for s in proba}
                             for k, c in fitted.items()},
                      fitted=fitted, cv=cv)


def eligible(comparison: Comparison, keep_labels: bool = False) -> list[str]:
    """The calibrations that do not lower val accuracy (one that changes decisions, the bias, could); with
    ``keep_labels`` only "temperature" (it never changes a row's arg-max)."""
    base = comparison.before["val"]["accuracy"]
    return [k for k, a in comparison.after.items() if a["val"]["accuracy"] >= base
            and not (keep_labels and k != "temperature")]


def choose_on_val(comparison: Comparison, allowed: Sequence[str]) -> str:
    """The allowed calibration with the lowest cross-validated ECE inside val (the first on ties)."""
    if not allowed:
        raise ValueError("no calibration is eligible (each lowers val accuracy or changes labels)")
    return min(allowed, key=comparison.cv.get)


def kept_calibration(comparison: Comparison, chosen: str) -> tuple[bool, Calibration]:
    """(kept, calibration to use): the chosen one if its cross-validated ECE inside val is lower than that of
    the probabilities as shipped, else the identity :class:`Calibration`. Test is not consulted."""
    keep = comparison.cv[chosen] < comparison.cv[AS_SHIPPED]
    return bool(keep), comparison.fitted[chosen] if keep else Calibration()


def calibrated_metrics(proba: dict, y: dict, final: Calibration, before: dict, classes: Sequence[str],
                       n_bins: int = N_BINS) -> dict:
    """Report metrics {split: classification metrics + ece, ece_before, nll, nll_before} of the calibrated
    probabilities (``before``: {split: summary} as shipped); train is not measured (accuracy None)."""
    from ..evaluate import metrics_from_proba

    metrics = {"train": {"accuracy": None}}
    for s in proba:
        p = final.apply(proba[s])
        metrics[s] = metrics_from_proba(y[s], p, classes)
        metrics[s].update(ece=ece(p, y[s], n_bins), ece_before=before[s]["ece"], nll=nll(p, y[s]),
                          nll_before=before[s]["nll"])
    return metrics


def save_reliability_pngs(comparison: Comparison, out_dir, name: str) -> list:
    """reliability_<split>.png per split in ``out_dir``: as shipped and each fitted calibration."""
    from pathlib import Path

    paths = []
    for s, b in comparison.before.items():
        curves = {f"{s}, as shipped (ECE {b['ece']:.4f})": b["reliability"]}
        for k, a in comparison.after.items():
            curves[f"{s}, {k} fitted on val (ECE {a[s]['ece']:.4f})"] = a[s]["reliability"]
        paths.append(Path(out_dir) / f"reliability_{s}.png")
        save_reliability_png(curves, paths[-1], f"{name}: reliability on {s}")
    return paths


def verdict(comparison: Comparison, chosen: str, keep: bool, final: Calibration) -> str:
    """One line: the calibration kept (it lowered ECE inside val) and its test ECE change, or why none was kept."""
    b, a = comparison.before["test"]["ece"], comparison.after[chosen]["test"]["ece"]
    vb, va = comparison.cv[AS_SHIPPED], comparison.cv[chosen]
    if keep:
        return (f"kept {chosen} (T={final.temperature:.4f}): cross-validated val ECE {vb:.4f} -> {va:.4f}, "
                f"test ECE {b:.4f} -> {a:.4f}")
    return (f"{chosen} was chosen on val but did not lower the cross-validated val ECE ({vb:.4f} -> {va:.4f}); "
            f"not kept (test ECE would have gone {b:.4f} -> {a:.4f})")


def report_notes(name: str, tta, allowed: Sequence[str], line: str, folds: int = FOLDS) -> str:
    """The report's ``notes``: what was measured (``tta``: the predictor's test-time augmentation, shown as
    its repr), how the calibration was chosen, and the :func:`verdict` ``line``."""
    return (f"probabilities of {name} as the registry loads it and the Analyzer returns them (test-time "
            f"augmentation {tta!r}) on the 48x48 faces; "
            f"calibrations fitted on val, chosen by {folds}-fold ECE inside val among those that keep val "
            f"accuracy ({', '.join(allowed)}); {line}. "
            "metrics.* are the kept (calibrated) probabilities; ece_before is the shipped model's.")


def markdown_tables(name: str, comparison: Comparison, chosen: str, keep: bool, final: Calibration,
                    classes: Sequence[str]) -> str:
    """Markdown appended to the calibration report: every calibration's accuracy / ECE / NLL per split and
    its cross-validated ECE, the choice, and the per-class bias as shipped."""
    before, after, cv = comparison.before, comparison.after, comparison.cv
    lines = ["", "## Calibration (ECE: 15 confidence bins, top label)", "",
             "| probabilities | val acc. | val ECE | val NLL | test acc. | test ECE | test NLL | val 5-fold ECE |",
             "|---|---:|---:|---:|---:|---:|---:|---:|",
             f"| {name} as shipped | {before['val']['accuracy']:.4f} | {before['val']['ece']:.4f} | "
             f"{before['val']['nll']:.4f} | {before['test']['accuracy']:.4f} | {before['test']['ece']:.4f} | "
             f"{before['test']['nll']:.4f} | {cv[AS_SHIPPED]:.4f} |"]
    for k, a in after.items():
        lines.append(f"| {k} (fitted on val) | {a['val']['accuracy']:.4f} | {a['val']['ece']:.4f} | "
                     f"{a['val']['nll']:.4f} | {a['test']['accuracy']:.4f} | {a['test']['ece']:.4f} | "
                     f"{a['test']['nll']:.4f} | {cv[k]:.4f} |")
    lines += ["", f"Chosen on val: **{chosen}**; kept: **{keep}** (temperature {final.temperature:.4f}"
              + (f", bias {[round(b, 4) for b in final.bias]}" if final.bias else "") + ").", "",
              "## Per-class bias as shipped (argmax counts)", "",
              "| class | val true | val predicted | val ratio | test true | test predicted | test ratio |",
              "|---|---:|---:|---:|---:|---:|---:|"]
    for c in classes:
        v, t = before["val"]["bias"][c], before["test"]["bias"][c]
        lines.append(f"| {c} | {v['true']} | {v['predicted']} | {v['over_predicted']:.3f} | {t['true']} | "
                     f"{t['predicted']} | {t['over_predicted']:.3f} |")
    return "\n".join(lines) + "\n"
