"""Photo-mode rescue: when dlib HOG finds no face above its threshold, keep its best weaker candidate.

The sweep behind :data:`fer_hybrid.inference.analyzer.PHOTO_RESCUE_THRESHOLD`
(experiments/photo_rescue.py): HOG candidates per image (one run down to a floor score, cached), the keep rule
of :func:`fer_hybrid.landmarks.detect.keep_detections` at each threshold of a grid, faces found and false
positives per image, the objective the threshold is chosen by, and the report's table and chart.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..landmarks.detect import detect_faces_scored, keep_detections
from ..npz_cache import cached_arrays
from .inframe import MATCH_IOU, match


def scored_candidates(images, upsample: int = 0, floor: float = -1.0) -> list[tuple[np.ndarray, np.ndarray]]:
    """HOG candidates of each image scoring above ``floor``: list of (int (k, 4) boxes, float (k,) scores),
    one dlib run per image (the Analyzer's detector with ``rescue_threshold=floor``, before its keep rule)."""
    return [detect_faces_scored(im, upsample, threshold=floor) for im in images]


def cached_candidates(images, upsample: int, floor: float, path: str | Path) -> list[tuple[np.ndarray, np.ndarray]]:
    """:func:`scored_candidates`, computed once and kept in the ``.npz`` at ``path`` (the caller keys the name
    by content)."""
    def compute() -> dict:
        cands = scored_candidates(images, upsample, floor)
        return {"boxes": np.concatenate([b for b, _ in cands] + [np.zeros((0, 4), np.int64)]),
                "scores": np.concatenate([s for _, s in cands] + [np.zeros(0)]),
                "counts": np.array([len(s) for _, s in cands], np.int64)}

    z = cached_arrays(Path(path), compute)
    cuts = np.cumsum(z["counts"])[:-1]
    return list(zip(np.split(z["boxes"], cuts), np.split(z["scores"], cuts)))


def rescue_outcomes(candidates, expected_boxes, rescue_threshold: float | None, threshold: float = 0.0,
                    match_iou: float = MATCH_IOU) -> tuple[np.ndarray, np.ndarray]:
    """(bool (n,) face found, int (n,) false positives) per image under the keep rule of
    :func:`fer_hybrid.landmarks.detect.keep_detections`; ``expected_boxes`` (n, 4) float face boxes, or None
    for images without a face (then every kept box is a false positive)."""
    found = np.zeros(len(candidates), bool)
    false_pos = np.zeros(len(candidates), np.int64)
    for i, (boxes, scores) in enumerate(candidates):
        kept = np.asarray(boxes).reshape(-1, 4)[keep_detections(scores, threshold, rescue_threshold)]
        found[i] = expected_boxes is not None and match(kept, expected_boxes[i], match_iou) >= 0
        false_pos[i] = len(kept) - int(found[i])
    return found, false_pos


def rescue_objective(found_share: float, false_positives_per_face_frame: float,
                     false_positives_per_empty_image: float) -> float:
    """What a rescue threshold is chosen by: faces found minus made-up faces, per image, on frames with a face
    and on images without one alike (a made-up face costs as much as a missed one)."""
    return found_share - false_positives_per_face_frame - false_positives_per_empty_image


def grid_name(t: float | None) -> str:
    """"none" for no rescue, else the threshold as text ("-0.9")."""
    return "none" if t is None else f"{t:g}"


def rescue_rates(cands, expected, grid, found_original=None, original_cands=None) -> dict[str, dict]:
    """Per rescue threshold: found share, false positives per image; with ``found_original`` (bool (n,), dlib's
    default detector on the upscaled originals) the share of those found, and with ``original_cands`` the
    same share when the originals are detected under the same rescue rule."""
    rows = {}
    for t in grid:
        found, fp = rescue_outcomes(cands, expected, t)
        r = {"found_share": float(found.mean()), "false_positives_per_image": float(fp.mean())}
        if found_original is not None:
            r["found_of_original"] = float((found & found_original).sum() / max(found_original.sum(), 1))
        if original_cands is not None:
            same = np.array([keep_detections(sc, 0.0, t).any() for _, sc in original_cands])
            r["found_of_original_same_rule"] = float((found & same).sum() / max(same.sum(), 1))
        rows[grid_name(t)] = r
    return rows


def rescue_markdown(rep: dict) -> str:
    """The report's markdown: one row per threshold on val, no rescue and the choice on test."""
    L = ["# Photo mode: rescuing the best weak HOG candidate", "", f"- command: `{rep['command']}`",
         f"- {rep['splits']['val']['n']} faces per split x {len(rep['splits']['val']['conditions'])} in-the-frame "
         f"conditions; {rep['empty_photos']} photos without a face (clip frames cut left of the face)",
         f"- chosen on val (faces found - false positives - made-up faces per image): **{rep['chosen']}**", "",
         "| split | rescue above | found of original (default) | same, originals under the rule | found (default) | found (mean) | false pos. / frame (mean) | made-up faces / empty photo | objective |",
         "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for split, s in rep["splits"].items():
        for t in rep["grid"]:
            if split == "test" and t not in ("none", rep["chosen"]):
                continue
            d, conds = s["conditions"]["default"][t], s["conditions"].values()
            L.append(f"| {split} | {t} | {d['found_of_original']:.4f} | {d['found_of_original_same_rule']:.4f} | "
                     f"{d['found_share']:.4f} | "
                     f"{np.mean([c[t]['found_share'] for c in conds]):.4f} | "
                     f"{np.mean([c[t]['false_positives_per_image'] for c in conds]):.4f} | "
                     f"{rep['empty'][t]['false_positives_per_image']:.4f} | {s['objective'][t]:.4f} |")
    L += ["", "Test rows: no rescue and the val choice only. 'found of original': of the faces dlib's default "
          "detector finds on the 4x upscaled 48x48 originals, the share found in the frame; 'same, originals under "
          "the rule': the originals detected with the same rescue rule too.", "", "![rescue](rescue.png)", ""]
    return "\n".join(L)


def rescue_chart(rep: dict, path: str | Path) -> Path:
    """PNG: faces found against false positives per image, one point per threshold and split."""
    from ..reports import pyplot, save_figure

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for split, s in rep["splits"].items():
        conds = s["conditions"].values()
        found = [np.mean([c[t]["found_share"] for c in conds]) for t in rep["grid"]]
        fp = [np.mean([c[t]["false_positives_per_image"] for c in conds]) + rep["empty"][t]["false_positives_per_image"]
              for t in rep["grid"]]
        ax.plot(fp, found, marker="o", label=split)
        for t, a, b in zip(rep["grid"], fp, found):
            ax.annotate(t, (a, b), fontsize=6)
    ax.set_xlabel("false positives per face frame + made-up faces per empty photo")
    ax.set_ylabel("faces found (mean over conditions)")
    ax.legend()
    fig.tight_layout()
    return save_figure(fig, path)
