"""Paired comparison of two models on the same in-the-frame faces: the difference in mean accuracy over the
conditions (a missed face counted as an error), with a bootstrap confidence interval over faces.

Both models saw the same frames and the same detections, so their per-face answers are paired: resampling
faces (each face keeping all its conditions together) gives the sampling error of the difference on this
benchmark's faces, which is much smaller than that of either score alone.

>>> r = paired_difference(correct_candidate, correct_base, n_boot=10000, seed=0)   # bool (c, n) each
>>> r["difference"], r["ci_low"], r["ci_high"]
"""
from __future__ import annotations

import numpy as np


def correct_answers(pred: np.ndarray, y: np.ndarray) -> np.ndarray:
    """bool (c, n): ``pred`` int (c, n) (-1 = face not found) equals the label ``y`` (n,)."""
    pred, y = np.asarray(pred), np.asarray(y)
    if pred.ndim != 2 or pred.shape[1] != len(y):
        raise ValueError(f"predictions {pred.shape} do not match {len(y)} labels")
    return pred == y[None, :]


def paired_difference(correct_a: np.ndarray, correct_b: np.ndarray, n_boot: int = 10000, seed: int = 0,
                      level: float = 0.95) -> dict:
    """Mean accuracy of A minus B over all (condition, face) cells of bool (c, n) arrays, and its bootstrap
    ``level`` interval over faces (percentile method, ``n_boot`` resamples of the n faces, seeded).

    Returns {"a", "b", "difference", "ci_low", "ci_high", "share_a_better" (share of resamples with A ahead),
    "level", "n_boot", "faces", "conditions", "per_condition" (c,) differences, "conditions_lower",
    "conditions_higher" (counts where A is below / above B)}. ValueError on shapes that differ or are empty."""
    a, b = np.asarray(correct_a, bool), np.asarray(correct_b, bool)
    if a.shape != b.shape or a.ndim != 2 or 0 in a.shape:
        raise ValueError(f"need two non-empty bool arrays (conditions, faces) of one shape, got {a.shape}, {b.shape}")
    if n_boot < 1 or not 0 < level < 1:
        raise ValueError(f"need n_boot >= 1 and 0 < level < 1, got {n_boot}, {level}")
    per_face = a.mean(axis=0) - b.mean(axis=0)                    # (n,) each face's difference over conditions
    n = len(per_face)
    rng = np.random.default_rng(seed)
    boot = np.array([per_face[rng.integers(0, n, n)].mean() for _ in range(n_boot)])
    lo, hi = np.quantile(boot, [(1 - level) / 2, (1 + level) / 2])
    per_condition = a.mean(axis=1) - b.mean(axis=1)
    return {"a": float(a.mean()), "b": float(b.mean()), "difference": float(per_face.mean()),
            "ci_low": float(lo), "ci_high": float(hi), "share_a_better": float((boot > 0).mean()),
            "level": level, "n_boot": int(n_boot), "faces": int(n), "conditions": int(a.shape[0]),
            "per_condition": per_condition.tolist(), "conditions_lower": int((per_condition < 0).sum()),
            "conditions_higher": int((per_condition > 0).sum())}


def same_faces(a: dict, b: dict) -> bool:
    """Whether two loaded in-frame runs (:func:`fer_hybrid.evaluation.inframe_report.load_predictions`) scored
    the same faces (indices and labels) under the same conditions, so their answers pair up."""
    return (list(a["conditions"]) == list(b["conditions"]) and np.array_equal(a["indices"], b["indices"])
            and np.array_equal(a["y"], b["y"]) and np.shape(a["pred"]) == np.shape(b["pred"]))


def paired_markdown(rep: dict) -> str:
    """The benchmark.md of a paired comparison report (experiments/inframe_paired.py)."""
    lines = [f"# In the frame, paired: candidates against `{rep['base']}`", "",
             f"{rep['purpose']} Split `{rep['split']}`, crop `{rep['variant']}`, {len(rep['conditions'])} "
             "conditions; score = mean accuracy over the conditions, a missed face counted as an error (the "
             "in-frame gate's score).", "", f"- command: `{rep['command']}`", "",
             "| candidate | faces | candidate score | base score | difference | 95 % interval | resamples with the "
             "candidate ahead | conditions lower / higher |", "|---|---:|---:|---:|---:|---|---:|---|"]
    for r in rep["rows"]:
        lines.append(f"| {r['candidate']} | {r['faces']} | {r['a']:.4f} | {r['b']:.4f} | {r['difference']:+.4f} | "
                     f"[{r['ci_low']:+.4f}, {r['ci_high']:+.4f}] | {r['share_a_better']:.3f} | "
                     f"{r['conditions_lower']} / {r['conditions_higher']} |")
    lines += ["", "Per condition (candidate − base):", "",
              "| condition | " + " | ".join(r["candidate"] for r in rep["rows"]) + " |",
              "|---|" + "---:|" * len(rep["rows"])]
    for i, c in enumerate(rep["conditions"]):
        lines.append(f"| {c} | " + " | ".join(f"{r['per_condition'][i]:+.4f}" for r in rep["rows"]) + " |")
    return "\n".join(lines + ["", "![differences](differences.png)", ""])


def save_differences_png(rep: dict, path) -> None:
    """Each candidate's difference from the base with its interval (a horizontal error bar), as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .. import _atomic

    rows = rep["rows"]
    fig, ax = plt.subplots(figsize=(7, 0.6 * len(rows) + 1.4))
    y = np.arange(len(rows))
    d = np.array([100 * r["difference"] for r in rows])
    err = np.array([[100 * (r["difference"] - r["ci_low"]) for r in rows],
                    [100 * (r["ci_high"] - r["difference"]) for r in rows]])
    ax.errorbar(d, y, xerr=err, fmt="o", capsize=4)
    ax.axvline(0, color="grey", lw=1)
    ax.set_yticks(y, [r["candidate"] for r in rows])
    ax.set_xlabel(f"in-frame score minus {rep['base']}'s (points, {rep['split']}, 95 % bootstrap interval)")
    fig.tight_layout()
    with _atomic.atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
