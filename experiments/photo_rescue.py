"""Photo mode: when dlib HOG finds no face in a photo, should the Analyzer keep its best weaker candidate?

Method.
1. Photos with one face: the in-the-frame benchmark's seeded subsets (``--n`` val and test faces, seed 0)
   under every condition of fer_hybrid.evaluation.inframe (480x400 frames), detected as Analyzer.detect does
   (full resolution, its upsampling rule). A kept box is the face when it overlaps the expected box (IoU >= 0.3).
2. Photos without a face: every ``--video-step``-th frame of ../shared/video's clip, cut left of the person's
   face (x < face box - 10 px): a room with no face in it. Every kept box there is a made-up face.
3. Candidates: one HOG run per image keeping every window scoring above ``--floor``; the windows above 0 are
   exactly the default detector's (dlib's non-maximum suppression keeps higher scores first).
4. Rescue rule (fer_hybrid.landmarks.detect.keep_detections): no rescue, or for a threshold t on a grid, when
   nothing scores >= 0 keep the single best candidate above t. Per t: faces found, found among those the
   detector finds on the 4x upscaled 48x48 originals (the real-faces issue's measure), false positives per
   face frame, made-up faces per empty photo.
5. Choice on val alone: the t maximising faces found - false positives - made-up faces per image
   (fer_hybrid.evaluation.rescue.rescue_objective); test is reported for the choice and for no rescue.
Writes rescue.json, rescue.md and rescue.png to experiments/reports/photo-rescue/.

    python experiments/photo_rescue.py [--n 500] [--floor -1.5] [--video-step 8]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from fer_hybrid.data import load_fer2013  # noqa: E402
from fer_hybrid.evaluate import environment  # noqa: E402
from fer_hybrid.evaluation import inframe as F  # noqa: E402
from fer_hybrid.evaluation import rescue as R  # noqa: E402
from fer_hybrid.images import to_gray  # noqa: E402
from fer_hybrid.inference.analyzer import photo_upsample  # noqa: E402
from fer_hybrid.landmarks.detect import detect_faces  # noqa: E402
from fer_hybrid.landmarks.extract import upscale_image  # noqa: E402
from fer_hybrid.reports import write_study  # noqa: E402
from fer_hybrid.video import open_source  # noqa: E402

CLIP = ROOT.parent / "shared" / "video" / "WolfgangLanger_Pexels.mp4"
GRID = [None, *[round(-0.1 * k, 1) for k in range(1, 16)]]   # rescue thresholds tried: none, -0.1 ... -1.5


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=500, help="faces per split (the in-the-frame subset)")
    ap.add_argument("--floor", type=float, default=-1.5, help="keep candidates scoring above this")
    ap.add_argument("--video-step", type=int, default=8)
    ap.add_argument("--data", default=None)
    ap.add_argument("--cache", default=str(ROOT / "experiments" / "checkpoints" / "inframe"))
    ap.add_argument("--out", default=str(ROOT / "experiments" / "reports" / "photo-rescue"))
    return ap.parse_args(argv)


def empty_photos(step: int) -> list[np.ndarray]:
    """Left parts of the clip's frames, cut 10 px before the face box: (360, w) gray, no face in them."""
    out = []
    with open_source(str(CLIP)) as src:
        for i, frame in enumerate(src):
            if i % step == 0:
                boxes = detect_faces(frame.image, 0)
                x = int(boxes[:, 0].min()) - 10 if len(boxes) else 0
                if x >= 120:
                    out.append(to_gray(frame.image)[:, :x].copy())
    return out


def main(argv=None) -> int:
    args = parse_args(argv)
    data, cache = load_fer2013(args.data), Path(args.cache)
    report = {"name": "photo-rescue", "grid": [R.grid_name(t) for t in GRID], "splits": {}}

    # 2. Photos without a face.
    empties = empty_photos(args.video_step)
    cands = R.cached_candidates(empties, photo_upsample(empties[0]), args.floor,
                                cache / f"rescue-empty-{args.video_step}.npz")
    report.update(empty_photos=len(empties), empty=R.rescue_rates(cands, None, GRID))

    for split in ("val", "test"):
        # 1. Photos with one face: the in-the-frame subset under every condition, and the upscaled originals.
        idx = F.subset(len(data.split(split).y), args.n, 0, split)
        x48 = data.split(split).x[idx]
        found_original = F.detected_on_originals(x48)
        key = F.cache_key(x48, F.CONDITIONS["default"], 0, split, "originals")
        original_cands = R.cached_candidates([upscale_image(f, 4) for f in x48], 0, args.floor,
                                             cache / f"rescue-{split}-originals-{key}.npz")
        per_condition = {}
        for c in F.select_conditions(None):
            rendered = [F.render(f, c, F.rng_for(0, split, c.name, int(i))) for f, i in zip(x48, idx)]
            frames, boxes = [r[0] for r in rendered], np.array([r[1] for r in rendered])
            # 3. Candidates, one HOG run per frame down to the floor (cached by content).
            key = F.cache_key(x48, c, 0, split, f"hog-candidates-{args.floor:g}")
            cands = R.cached_candidates(frames, photo_upsample(frames[0]), args.floor,
                                        cache / f"rescue-{split}-{c.name}-{key}.npz")
            # 4. The keep rule at every threshold.
            extra = (found_original, original_cands) if c.name == "default" else ()
            per_condition[c.name] = R.rescue_rates(cands, boxes, GRID, *extra)
        mean = {t: {k: np.mean([per_condition[c][t][k] for c in per_condition])
                    for k in ("found_share", "false_positives_per_image")} for t in report["grid"]}
        objective = {t: R.rescue_objective(mean[t]["found_share"], mean[t]["false_positives_per_image"],
                                           report["empty"][t]["false_positives_per_image"]) for t in report["grid"]}
        report["splits"][split] = {"n": len(idx), "conditions": per_condition, "mean_over_conditions": mean,
                                   "objective": objective}

    # 5. The choice, on val alone (ties: no rescue, then the higher threshold).
    val = report["splits"]["val"]["objective"]
    report["chosen"] = max(report["grid"], key=lambda t: (round(val[t], 12), t == "none"))
    report.update(command=environment()["command"], environment=environment())
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    R.rescue_chart(report, out / "rescue.png")
    write_study(report, R.rescue_markdown(report), out, "rescue")
    print(f"chosen rescue threshold {report['chosen']}; wrote {out}/rescue.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
