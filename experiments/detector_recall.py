"""Face detector recall and speed per mode: dlib HOG at several detection widths and upsampling levels, and
dlib's CNN (MMOD) detector from face-recognition-models.

    python experiments/detector_recall.py [--n 100] [--n-cnn 25] [--video-step 8] [--out DIR]

Method (library: fer_hybrid.evaluation.detector_report; detectors: fer_hybrid.evaluation.detectors.Detector,
whose HOG branch is the Analyzer's detector). Every set is run through every detector of its list.
1. Photo: the two still photos of ../shared/video (single_face.jpg, 1 face; multi_face.jpg, 5 faces, one
   partly hidden behind sunglasses). Face centres were annotated by hand (PHOTO_FACES); a detection is a hit
   when its box contains an unclaimed centre, otherwise a false positive.
2. Video: every ``--video-step``-th frame of ../shared/video/WolfgangLanger_Pexels.mp4 (640x360, one face in
   every frame, sometimes partly covered by a hand): recall = frames with at least one detection; extra
   detections per frame are false positives.
3. In the frame: ``--n`` seeded val faces per condition rendered by fer_hybrid.evaluation.inframe (480x400
   frames; default, scale 0.5/0.75, rotation ±20/±30); a hit is a box whose centre lies in the face's expected
   box with a width 0.4-2.5x of it. The CNN detector runs on the first ``--n-cnn`` faces only (it is slow).
4. Alignment cost: on the default in-the-frame frames where the Analyzer's detector finds the face, the ms per
   face of each crop step (margin crop, calibrated box crop, dlib's 68 points, the level / eyes warps).
5. Report. Times are wall-clock ms per image (median), measured while other jobs shared the 2 cores: the load
   average is recorded, and times are comparable only within this run. Writes detectors.json, detectors.md
   and speed_recall.png to experiments/reports/detectors/.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from fer_hybrid.data import load_fer2013  # noqa: E402
from fer_hybrid.evaluate import environment  # noqa: E402
from fer_hybrid.evaluation import detector_report as D  # noqa: E402
from fer_hybrid.evaluation import inframe as F  # noqa: E402
from fer_hybrid.evaluation.detectors import Detector  # noqa: E402
from fer_hybrid.reports import write_study  # noqa: E402
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


def main(argv=None) -> int:
    args = parse_args(argv)
    load_start = D.loadavg_text()

    # 1. Photo mode: the stills against their hand-annotated face centres.
    images = {name: decode_image(SHARED / name) for name in PHOTO_FACES}
    photo = D.photo_rows(PHOTO, images, PHOTO_FACES, verbose=True)

    # 2. Video mode: every k-th frame of the clip.
    with open_source(str(SHARED / "WolfgangLanger_Pexels.mp4")) as src:
        frames = [f.image for f in src if f.index % args.video_step == 0]
    video = D.video_rows(VIDEO, frames, verbose=True)

    # 3. In the frame: the same seeded val faces rendered under each condition.
    val = load_fer2013(args.data).val
    idx = F.subset(len(val), args.n, args.seed, "val")
    inframe = []
    for cname in INFRAME_CONDITIONS:
        rendered = D.rendered_frames(val.x, idx, F.CONDITIONS[cname], args.seed, "val")
        inframe += D.inframe_rows(INFRAME, cname, rendered, args.n_cnn, verbose=True)

    # 4. Crop and alignment cost per face, on the default frames.
    align = D.align_rows(D.rendered_frames(val.x, idx, F.CONDITIONS["default"], args.seed, "val"))

    # 5. Report.
    report = {"name": "detectors", "photo": photo, "video": video, "inframe": inframe, "align": align,
              "command": environment()["command"], "environment": environment(), "loadavg_start": load_start,
              "loadavg_end": D.loadavg_text()}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    D.speed_recall_chart(report, out / "speed_recall.png")
    write_study(report, D.detectors_markdown(report), out, "detectors")
    print(f"wrote {out}/detectors.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
