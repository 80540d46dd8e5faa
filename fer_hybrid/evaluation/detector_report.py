"""Face detector recall, speed and crop cost: the rows, table and chart of ``experiments/detector_recall.py``.

A detector is anything with ``kind`` ("hog" | "cnn"), ``name``, ``width``, ``upsample`` and a call
``image -> int (k, 4) boxes`` (:class:`fer_hybrid.evaluation.detectors.Detector`). Times are wall-clock ms
(median over images); the CNN detector, being slow, is timed once per photo and runs on the first ``n_cnn``
in-the-frame faces only.

>>> photo_rows(detectors, {"one.jpg": image}, {"one.jpg": [(x, y)]})   # hits vs hand-annotated face centres
>>> video_rows(detectors, frames)                                       # recall = frames with a detection
>>> inframe_rows(detectors, "default", rendered_frames(x48, idx, F.CONDITIONS["default"], 0, "val"))
>>> align_rows(rendered_frames(...))                                    # ms per face of each crop step
>>> detectors_markdown(report); speed_recall_chart(report, "speed_recall.png")
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from ..reports import pyplot, save_figure
from . import inframe as F
from .detectors import Detector, centre_hits, matches_face

ALIGN_STEPS = ("margin 0.1 crop", "box crop (calibrated)", "dlib 68 landmarks", "level warp", "eyes warp")


def loadavg_text(path: str | Path = "/proc/loadavg") -> str:
    """The 1, 5 and 15 min load averages as the kernel prints them (e.g. "1.41 2.70 4.59")."""
    return " ".join(Path(path).read_text().split()[:3])


def timed(fn: Callable, *args) -> tuple[object, float]:
    """(``fn(*args)``, wall-clock ms it took)."""
    t0 = time.perf_counter()
    out = fn(*args)
    return out, 1e3 * (time.perf_counter() - t0)


def _columns(d) -> dict:
    return {"detector": d.name, "kind": d.kind, "width": d.width, "upsample": d.upsample}


def _log(row: dict, verbose: bool) -> None:
    if verbose:
        print(row, flush=True)


def photo_rows(detectors: Sequence, images: dict, faces: dict, verbose: bool = False) -> list[dict]:
    """Per detector and photo: hits and false positives against the annotated face centres (x, y) of
    ``faces`` {name: [(x, y), ...]} (:func:`~.detectors.centre_hits` on the first run), median ms of 3 runs
    (1 for the CNN). Each detector is first run once on the first photo (warm-up: loads the CNN)."""
    rows = []
    first = next(iter(images.values()))
    for d in detectors:
        d(first)
        for name, image in images.items():
            runs = [timed(d, image) for _ in range(1 if d.kind == "cnn" else 3)]
            tp, fp = centre_hits(runs[0][0], np.array(faces[name], float))
            rows.append({"set": "photo", "image": name, **_columns(d), "faces": len(faces[name]), "hits": tp,
                         "false_positives": fp, "ms": float(np.median([ms for _, ms in runs]))})
            _log(rows[-1], verbose)
    return rows


def video_rows(detectors: Sequence, frames: Sequence[np.ndarray], verbose: bool = False) -> list[dict]:
    """Per detector over video frames with one face each: recall (share of frames with a detection), extra
    detections per frame (false positives) and median ms per frame (after a warm-up run on the first)."""
    rows = []
    for d in detectors:
        d(frames[0])
        res = [timed(d, f) for f in frames]
        rows.append({"set": "video", **_columns(d), "frames": len(frames),
                     "recall": float(np.mean([len(b) > 0 for b, _ in res])),
                     "false_positives_per_frame": float(np.mean([max(len(b) - 1, 0) for b, _ in res])),
                     "ms": float(np.median([ms for _, ms in res]))})
        _log(rows[-1], verbose)
    return rows


def rendered_frames(x48: np.ndarray, indices: np.ndarray, condition, seed: int, split: str) -> list[tuple]:
    """[(uint8 gray frame, float (4,) expected face box)] of the faces ``x48[indices]`` rendered in the frame
    under ``condition`` (:func:`fer_hybrid.evaluation.inframe.render`, seeded per face)."""
    return [F.render(x48[i], condition, F.rng_for(seed, split, condition.name, int(i))) for i in indices]


def inframe_rows(detectors: Sequence, condition: str, frames: Sequence[tuple], n_cnn: int,
                 reference=Detector("hog", None, 0), verbose: bool = False) -> list[dict]:
    """Per detector on ``frames`` [(frame, expected box)] of one condition: recall (a box matches the face,
    :func:`~.detectors.matches_face`), other boxes per frame, median ms. The CNN runs on the first ``n_cnn``
    frames only; its row adds ``hog_full_up0_recall_same_frames``, the ``reference`` detector's recall there."""
    rows = []
    for d in detectors:
        use = frames[:n_cnn] if d.kind == "cnn" else frames
        d(use[0][0])
        res = [(timed(d, fr), box) for fr, box in use]
        rows.append({"set": "inframe", "condition": condition, **_columns(d), "frames": len(use),
                     "recall": float(np.mean([matches_face(b, box) for (b, _), box in res])),
                     "false_positives_per_frame": float(np.mean([len(b) - matches_face(b, box)
                                                                 for (b, _), box in res])),
                     "ms": float(np.median([ms for (_, ms), _ in res]))})
        if d.kind == "cnn":   # HOG recall on the same frames the CNN saw, for a like-for-like comparison
            rows[-1]["hog_full_up0_recall_same_frames"] = float(np.mean(
                [matches_face(reference(fr), box) for fr, box in use]))
        _log(rows[-1], verbose)
    return rows


def align_rows(frames: Sequence[tuple]) -> list[dict]:
    """Median and mean ms per face of each crop step (:data:`ALIGN_STEPS`) on the frames [(frame, expected
    box)] where the Analyzer's detector (HOG, upsample 0) finds the face (IoU match, :func:`~.inframe.match`)."""
    from ..images import crop_boxes
    from ..inference.align import aligned_crops
    from ..landmarks.detect import detect_faces, landmarks

    steps = {k: [] for k in ALIGN_STEPS}
    landmarks(np.zeros((100, 100), np.uint8), np.array([[10, 10, 80, 80]]))     # warm-up: loads dlib's model
    for frame, box in frames:
        boxes = detect_faces(frame, 0)
        j = F.match(boxes, box)
        if j < 0:
            continue
        b = boxes[j:j + 1]
        steps["margin 0.1 crop"].append(timed(crop_boxes, frame, b, 0.1)[1])
        steps["box crop (calibrated)"].append(timed(aligned_crops, frame, b, "box")[1])
        pts, ms = timed(landmarks, frame, b)
        steps["dlib 68 landmarks"].append(ms)
        steps["level warp"].append(timed(aligned_crops, frame, b, "level", pts)[1])
        steps["eyes warp"].append(timed(aligned_crops, frame, b, "eyes", pts)[1])
    return [{"step": k, "faces": len(v), "ms_median": float(np.median(v)) if v else float("nan"),
             "ms_mean": float(np.mean(v)) if v else float("nan")} for k, v in steps.items()]


def _unique(values) -> list:
    return list(dict.fromkeys(values))


def detectors_markdown(report: dict) -> str:
    """detectors.md of a report {photo, video, inframe, align rows, command, loadavg_start, loadavg_end}; the
    in-the-frame table has the conditions and detectors in the order of the rows."""
    L = ["# Face detector recall and speed", "", f"- command: `{report['command']}`",
         f"- load average at start {report['loadavg_start']}, at end {report['loadavg_end']} (2 cores shared "
         "with a training run: times are under load, comparable within this run only)", "",
         "## Photo mode (../shared/video stills, hand-annotated face centres)", "",
         "| detector | single_face hits / 1 | multi_face hits / 5 | false pos. | ms single | ms multi |",
         "|---|---:|---:|---:|---:|---:|"]
    by = {}
    for r in report["photo"]:
        by.setdefault(r["detector"], {})[r["image"]] = r
    for d, v in by.items():
        s, m = v["single_face.jpg"], v["multi_face.jpg"]
        L.append(f"| {d} | {s['hits']} | {m['hits']} | {s['false_positives'] + m['false_positives']} | "
                 f"{s['ms']:.0f} | {m['ms']:.0f} |")
    L += ["", f"## Video mode ({report['video'][0]['frames']} frames of the 640x360 clip, one face each)", "",
          "| detector | recall | false pos. / frame | ms / frame |", "|---|---:|---:|---:|"]
    for r in report["video"]:
        L.append(f"| {r['detector']} | {r['recall']:.4f} | {r['false_positives_per_frame']:.3f} | {r['ms']:.1f} |")
    rows = {(r["condition"], r["detector"]): r for r in report["inframe"]}
    names = _unique(r["detector"] for r in report["inframe"])
    L += ["", "## In the frame (480x400 synthetic frames, val faces)", "",
          "| condition | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    for cname in _unique(r["condition"] for r in report["inframe"]):
        cells = []
        for d in names:
            r = rows[(cname, d)]
            extra = f" (HOG full up0 on the same {r['frames']}: {r['hog_full_up0_recall_same_frames']:.2f})" \
                if r["kind"] == "cnn" else ""
            cells.append(f"{r['recall']:.3f} / {r['false_positives_per_frame']:.3f} / {r['ms']:.0f} ms{extra}")
        L.append(f"| {cname} | " + " | ".join(cells) + " |")
    L += ["", "Cells: recall / false positives per frame / median ms per frame; the CNN ran on the first faces of "
          "each condition only.", "", "## Crop and alignment cost per face (default in-the-frame frames)", "",
          "| step | faces | median ms | mean ms |", "|---|---:|---:|---:|"]
    L += [f"| {r['step']} | {r['faces']} | {r['ms_median']:.3f} | {r['ms_mean']:.3f} |" for r in report["align"]]
    L += ["", "level and eyes = dlib 68 landmarks + their warp; the model's own time is in its report.", "",
          "![speed and recall](speed_recall.png)", ""]
    return "\n".join(L)


def speed_recall_chart(report: dict, path: str | Path) -> Path:
    """Recall against ms per frame (log) of every detector: video mode, and in the frame (default condition);
    CNN red, HOG blue."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, key, title in ((axes[0], "video", "video mode (clip frames)"), (axes[1], "inframe", "in the frame (default)")):
        rows = [r for r in report[key] if key == "video" or r["condition"] == "default"]
        for r in rows:
            ax.scatter(r["ms"], r["recall"], color="#d62728" if r["kind"] == "cnn" else "#1f77b4")
            ax.annotate(r["detector"].replace("upsample", "up"), (r["ms"], r["recall"]), fontsize=6)
        ax.set_xscale("log")
        ax.set_xlabel("ms per frame (log, under load)")
        ax.set_ylabel("recall")
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path)
