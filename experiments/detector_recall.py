"""Face detector recall and speed per mode: dlib HOG at several detection widths and upsampling levels, and
dlib's CNN (MMOD) detector from face-recognition-models.

Method. Three sets, each run through every detector (fer_hybrid.evaluation.detectors.Detector):
- photo: the two still photos of ../shared/video (single_face.jpg, 1 face; multi_face.jpg, 5 faces, one
  partly hidden behind sunglasses). Face centres were annotated by hand (PHOTO_FACES); a detection is a hit
  when its box contains an unclaimed centre, otherwise a false positive.
- video: every ``--video-step``-th frame of ../shared/video/WolfgangLanger_Pexels.mp4 (640x360, one face in
  every frame, sometimes partly covered by a hand): recall = frames with at least one detection; extra
  detections per frame are false positives.
- in the frame: ``--n`` seeded val faces per condition rendered by fer_hybrid.evaluation.inframe (480x400
  frames; default, scale 0.5/0.75, rotation ±20/±30); a hit is a box whose centre lies in the face's expected
  box with a width 0.4-2.5x of it. The CNN detector runs on the first ``--n-cnn`` faces only (it is slow).
- alignment cost: on the default in-the-frame frames where the Analyzer's detector finds the face, the ms per
  face of each crop step (margin crop, calibrated box crop, dlib's 68 points, the level / eyes warps).
Times are wall-clock ms per image (median), measured while other jobs shared the 2 cores: the load average
is recorded, and times are comparable only within this run. Writes detectors.json, detectors.md and
speed_recall.png to experiments/reports/detectors/.

    python experiments/detector_recall.py [--n 100] [--n-cnn 25] [--video-step 8] [--out DIR]
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from fer_hybrid import _atomic  # noqa: E402
from fer_hybrid.data import load_fer2013  # noqa: E402
from fer_hybrid.evaluate import environment  # noqa: E402
from fer_hybrid.evaluation import inframe as F  # noqa: E402
from fer_hybrid.evaluation.detectors import Detector, centre_hits, matches_face  # noqa: E402
from fer_hybrid.reports import json_ready, pyplot, save_figure  # noqa: E402
from fer_hybrid.video import decode_image, open_source  # noqa: E402

SHARED = ROOT.parent / "shared" / "video"
# Hand-annotated face centres (x, y), image pixels.
PHOTO_FACES = {"single_face.jpg": [(270, 290)],
               "multi_face.jpg": [(262, 120), (370, 300), (480, 265), (580, 380), (735, 360)]}
PHOTO = [Detector("hog", None, 0), Detector("hog", None, 1), Detector("hog", None, 2), Detector("hog", 640, 0),
         Detector("hog", 640, 1), Detector("hog", 480, 0), Detector("hog", 480, 1), Detector("hog", None, 1, -0.3),
         Detector("cnn", None, 0),
         Detector("cnn", 640, 0)]
VIDEO = [Detector("hog", w, u) for w in (240, 320, 480, 640) for u in (0, 1)] + [
    Detector("hog", 480, 0, -0.3), Detector("cnn", 320, 0), Detector("cnn", 480, 0)]
INFRAME = [Detector("hog", None, 0), Detector("hog", None, 1), Detector("hog", None, 0, -0.3),
           Detector("hog", None, 0, -0.5), Detector("hog", 320, 0), Detector("hog", 320, 1), Detector("cnn", None, 0)]
INFRAME_CONDITIONS = ["default", "scale0.5", "scale0.75", "rot-20", "rot+20", "rot-30", "rot+30"]


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=100, help="val faces per in-frame condition")
    ap.add_argument("--n-cnn", type=int, default=25, help="of those, faces the CNN detector runs on")
    ap.add_argument("--video-step", type=int, default=8, help="use every k-th video frame")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--data", default=None)
    ap.add_argument("--out", default=str(ROOT / "experiments" / "reports" / "detectors"))
    return ap.parse_args(argv)


def timed(detector, image):
    t0 = time.perf_counter()
    boxes = detector(image)
    return boxes, 1e3 * (time.perf_counter() - t0)


def photo_rows():
    rows = []
    images = {name: decode_image(SHARED / name) for name in PHOTO_FACES}
    for d in PHOTO:
        d(images["single_face.jpg"])                                   # warm-up (loads the CNN once)
        for name, image in images.items():
            runs = [timed(d, image) for _ in range(1 if d.kind == "cnn" else 3)]
            tp, fp = centre_hits(runs[0][0], np.array(PHOTO_FACES[name], float))
            rows.append({"set": "photo", "image": name, "detector": d.name, "kind": d.kind, "width": d.width,
                         "upsample": d.upsample, "faces": len(PHOTO_FACES[name]), "hits": tp, "false_positives": fp,
                         "ms": float(np.median([r[1] for r in runs]))})
            print(rows[-1], flush=True)
    return rows


def video_rows(step):
    src = open_source(str(SHARED / "WolfgangLanger_Pexels.mp4"))
    with src:
        frames = [f.image for f in src if f.index % step == 0]
    rows = []
    for d in VIDEO:
        d(frames[0])
        res = [timed(d, f) for f in frames]
        found = [len(b) > 0 for b, _ in res]
        rows.append({"set": "video", "detector": d.name, "kind": d.kind, "width": d.width, "upsample": d.upsample,
                     "frames": len(frames), "recall": float(np.mean(found)),
                     "false_positives_per_frame": float(np.mean([max(len(b) - 1, 0) for b, _ in res])),
                     "ms": float(np.median([t for _, t in res]))})
        print(rows[-1], flush=True)
    return rows


def inframe_rows(n, n_cnn, seed, data_path):
    val = load_fer2013(data_path).val
    idx = F.subset(len(val), n, seed, "val")
    rows = []
    for cname in INFRAME_CONDITIONS:
        c = F.CONDITIONS[cname]
        frames = [F.render(val.x[i], c, F.rng_for(seed, "val", cname, int(i))) for i in idx]
        for d in INFRAME:
            use = frames[:n_cnn] if d.kind == "cnn" else frames
            d(use[0][0])
            res = [(timed(d, fr), box) for fr, box in use]
            rows.append({"set": "inframe", "condition": cname, "detector": d.name, "kind": d.kind,
                         "width": d.width, "upsample": d.upsample, "frames": len(use),
                         "recall": float(np.mean([matches_face(b, box) for (b, _), box in res])),
                         "false_positives_per_frame": float(np.mean([len(b) - matches_face(b, box)
                                                                     for (b, _), box in res])),
                         "ms": float(np.median([t for (_, t), _ in res]))})
            if d.kind == "cnn":   # HOG recall on the same frames the CNN saw, for a like-for-like comparison
                rows[-1]["hog_full_up0_recall_same_frames"] = float(np.mean(
                    [matches_face(Detector("hog", None, 0)(fr), box) for fr, box in use]))
            print(rows[-1], flush=True)
    return rows


def align_rows(n, seed, data_path):
    """Median ms per face of each crop step on default in-the-frame frames (the face as the Analyzer finds it)."""
    from fer_hybrid.images import crop_boxes
    from fer_hybrid.inference.align import aligned_crops
    from fer_hybrid.landmarks.detect import detect_faces, landmarks

    val = load_fer2013(data_path).val
    idx = F.subset(len(val), n, seed, "val")
    c = F.CONDITIONS["default"]
    steps = {"margin 0.1 crop": [], "box crop (calibrated)": [], "dlib 68 landmarks": [], "level warp": [],
             "eyes warp": []}
    landmarks(np.zeros((100, 100), np.uint8), np.array([[10, 10, 80, 80]]))     # warm-up: loads dlib's model
    for i in idx:
        frame, box = F.render(val.x[i], c, F.rng_for(seed, "val", "default", int(i)))
        boxes = detect_faces(frame, 0)
        j = F.match(boxes, box)
        if j < 0:
            continue
        b = boxes[j:j + 1]
        for name, fn in (("margin 0.1 crop", lambda: crop_boxes(frame, b, 0.1)),
                         ("box crop (calibrated)", lambda: aligned_crops(frame, b, "box"))):
            steps[name].append(timed(lambda _: fn(), None)[1])
        pts, ms = timed(lambda _: landmarks(frame, b), None)
        steps["dlib 68 landmarks"].append(ms)
        steps["level warp"].append(timed(lambda _: aligned_crops(frame, b, "level", pts), None)[1])
        steps["eyes warp"].append(timed(lambda _: aligned_crops(frame, b, "eyes", pts), None)[1])
    return [{"step": k, "faces": len(v), "ms_median": float(np.median(v)), "ms_mean": float(np.mean(v))}
            for k, v in steps.items()]


def to_markdown(report) -> str:
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
    L += ["", "## In the frame (480x400 synthetic frames, val faces)", "",
          "| condition | " + " | ".join(d.name for d in INFRAME) + " |", "|---|" + "---:|" * len(INFRAME)]
    for cname in INFRAME_CONDITIONS:
        cells = []
        for d in INFRAME:
            r = next(r for r in report["inframe"] if r["condition"] == cname and r["detector"] == d.name)
            extra = f" (HOG full up0 on the same {r['frames']}: {r['hog_full_up0_recall_same_frames']:.2f})" \
                if d.kind == "cnn" else ""
            cells.append(f"{r['recall']:.3f} / {r['false_positives_per_frame']:.3f} / {r['ms']:.0f} ms{extra}")
        L.append(f"| {cname} | " + " | ".join(cells) + " |")
    L += ["", "Cells: recall / false positives per frame / median ms per frame; the CNN ran on the first faces of "
          "each condition only.", "", "## Crop and alignment cost per face (default in-the-frame frames)", "",
          "| step | faces | median ms | mean ms |", "|---|---:|---:|---:|"]
    L += [f"| {r['step']} | {r['faces']} | {r['ms_median']:.3f} | {r['ms_mean']:.3f} |" for r in report["align"]]
    L += ["", "level and eyes = dlib 68 landmarks + their warp; the model's own time is in its report.", "",
          "![speed and recall](speed_recall.png)", ""]
    return "\n".join(L)


def chart(report, path):
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
    save_figure(fig, path)


def main(argv=None) -> int:
    args = parse_args(argv)
    load_start = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    report = {"name": "detectors", "photo": photo_rows(), "video": video_rows(args.video_step),
              "inframe": inframe_rows(args.n, args.n_cnn, args.seed, args.data),
              "align": align_rows(args.n, args.seed, args.data),
              "command": environment()["command"], "environment": environment(), "loadavg_start": load_start,
              "loadavg_end": " ".join(Path("/proc/loadavg").read_text().split()[:3])}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    chart(report, out / "speed_recall.png")
    _atomic.write_text(out / "detectors.json", json.dumps(json_ready(report), indent=2) + "\n")
    _atomic.write_text(out / "detectors.md", to_markdown(report))
    print(f"wrote {out}/detectors.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
