"""Build the tiny in-the-frame fixture: FER2013 sample faces (tests/data/fer2013_sample.tar.gz) placed in
240x200 gray frames by fer_hybrid.evaluation.inframe.render (scale 0.6, seeded), saved as JPEG (quality 85)
under tests/data/inframe/<class>/<class>-<image>.jpg: two faces per study class that dlib's HOG finds in the
frame, plus one neutral face (a label the 5-class map skips).

    python tests/data/inframe/make_fixture.py
"""
from __future__ import annotations

import tarfile
from pathlib import Path

import cv2
import numpy as np

from fer_hybrid.evaluation.inframe import Condition, render, rng_for
from fer_hybrid.landmarks.detect import detect_faces

HERE = Path(__file__).resolve().parent
SAMPLE = HERE.parent / "fer2013_sample.tar.gz"
WANT = {"angry": 2, "fear": 2, "happy": 2, "sad": 2, "surprise": 2, "neutral": 1}
CANVAS = (240, 200)
CONDITION = Condition("fixture", scale=0.6)


def main() -> None:
    with tarfile.open(SAMPLE) as tar:
        members = sorted((m for m in tar.getmembers() if m.isfile() and m.name.endswith(".jpg")),
                         key=lambda m: m.name)
        for cls, want in WANT.items():
            got = 0
            for i, m in enumerate(x for x in members if f"/{cls}/" in x.name):
                face = cv2.imdecode(np.frombuffer(tar.extractfile(m).read(), np.uint8), cv2.IMREAD_GRAYSCALE)
                frame, _ = render(face, CONDITION, rng_for(0, "fixture", cls, i), canvas=CANVAS)
                if len(detect_faces(frame, 1)) != 1:   # the Analyzer upsamples once below 400 px
                    continue
                out = HERE / cls / f"{cls}-{Path(m.name).stem}.jpg"
                out.parent.mkdir(exist_ok=True)
                cv2.imwrite(str(out), frame, [cv2.IMWRITE_JPEG_QUALITY, 85])
                got += 1
                if got == want:
                    break
            print(cls, got)


if __name__ == "__main__":
    main()
