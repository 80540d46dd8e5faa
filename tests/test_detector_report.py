"""Detector recall rows, table and chart (fer_hybrid.evaluation.detector_report) with fake detectors of known
boxes, and the HOG Detector being the Analyzer's detector (fer_hybrid.evaluation.detectors)."""
from __future__ import annotations

import dataclasses
import time

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")

from fer_hybrid.evaluation import detector_report as D  # noqa: E402
from fer_hybrid.evaluation import inframe as F  # noqa: E402
from fer_hybrid.evaluation.detectors import Detector  # noqa: E402

from test_realtime import FACE  # noqa: E402


@dataclasses.dataclass
class Fake:
    """A detector returning ``boxes[int(image.flat[0])]`` and counting its calls."""

    boxes: dict
    kind: str = "hog"
    name: str = "fake"
    width: int | None = None
    upsample: int = 0
    calls: int = 0

    def __call__(self, image):
        self.calls += 1
        return np.array(self.boxes.get(int(image.flat[0]), []), np.int64).reshape(-1, 4)


def frame(value: int) -> np.ndarray:
    return np.full((100, 120), value, np.uint8)


def test_loadavg_text_keeps_the_kernels_three_numbers(tmp_path):
    (tmp_path / "loadavg").write_text("1.41 2.70 4.59 3/234 5678\n")
    assert D.loadavg_text(tmp_path / "loadavg") == "1.41 2.70 4.59"


def test_timed_returns_the_result_and_its_milliseconds():
    out, ms = D.timed(lambda a, b: (time.sleep(0.02), a + b)[1], 2, 3)
    assert out == 5 and 15 <= ms < 2000


def test_photo_rows_count_hits_against_centres_and_time_cnn_once():
    boxes = {1: [[0, 0, 10, 10], [50, 50, 60, 60], [70, 70, 80, 80]]}
    hog, cnn = Fake(boxes), Fake(boxes, kind="cnn", name="cnn")
    rows = D.photo_rows([hog, cnn], {"a.jpg": frame(1), "b.jpg": frame(0)},
                        {"a.jpg": [(5, 5), (55, 55), (200, 200)], "b.jpg": [(5, 5)]})
    assert [(r["detector"], r["image"], r["hits"], r["false_positives"], r["faces"]) for r in rows] == [
        ("fake", "a.jpg", 2, 1, 3), ("fake", "b.jpg", 0, 0, 1), ("cnn", "a.jpg", 2, 1, 3), ("cnn", "b.jpg", 0, 0, 1)]
    assert hog.calls == 1 + 2 * 3 and cnn.calls == 1 + 2        # one warm-up, then 3 runs (HOG) or 1 (CNN)
    assert rows[0]["set"] == "photo" and rows[0]["kind"] == "hog" and rows[0]["ms"] >= 0


def test_video_rows_recall_and_extra_boxes_per_frame():
    d = Fake({1: [[0, 0, 10, 10]], 2: [[0, 0, 10, 10], [20, 20, 30, 30], [40, 40, 50, 50]]})
    (row,) = D.video_rows([d], [frame(0), frame(1), frame(2), frame(1)])
    assert row["frames"] == 4 and row["recall"] == 0.75
    assert row["false_positives_per_frame"] == pytest.approx(2 / 4)
    assert d.calls == 5                                           # warm-up on the first frame, then every frame


def test_inframe_rows_match_the_face_and_run_the_cnn_on_the_first_frames():
    face = np.array([40.0, 40.0, 60.0, 60.0])
    frames = [(frame(1), face), (frame(0), face), (frame(2), face)]
    boxes = {1: [[42, 42, 58, 58]], 2: [[42, 42, 58, 58], [0, 0, 5, 5]]}
    hog, cnn, ref = Fake(boxes), Fake(boxes, kind="cnn", name="cnn"), Fake({1: [[42, 42, 58, 58]]}, name="ref")
    rows = D.inframe_rows([hog, cnn], "rot+20", frames, n_cnn=2, reference=ref)
    assert rows[0]["recall"] == pytest.approx(2 / 3) and rows[0]["false_positives_per_frame"] == pytest.approx(1 / 3)
    assert rows[0]["condition"] == "rot+20" and "hog_full_up0_recall_same_frames" not in rows[0]
    assert rows[1]["frames"] == 2 and rows[1]["recall"] == 0.5
    assert rows[1]["hog_full_up0_recall_same_frames"] == 0.5 and ref.calls == 2


def test_rendered_frames_are_the_seeded_renders(sample_data):
    x, idx = sample_data.val.x, np.array([3, 7])
    c = F.CONDITIONS["rot-20"]
    out = D.rendered_frames(x, idx, c, 5, "val")
    frame7, box7 = F.render(x[7], c, F.rng_for(5, "val", "rot-20", 7))
    assert len(out) == 2 and out[1][0].shape == (400, 480)
    np.testing.assert_array_equal(out[1][0], frame7)
    np.testing.assert_array_equal(out[1][1], box7)


def test_align_rows_time_every_step_on_found_faces_only():
    from fer_hybrid.landmarks.detect import detect_faces

    img = cv2.imread(str(FACE), cv2.IMREAD_GRAYSCALE)
    box = detect_faces(img, 0)[0].astype(float)
    rows = D.align_rows([(img, box), (np.zeros_like(img), box)])     # the blank frame has no face
    assert [r["step"] for r in rows] == list(D.ALIGN_STEPS)
    assert all(r["faces"] == 1 and r["ms_median"] == r["ms_mean"] > 0 for r in rows)
    empty = D.align_rows([(np.zeros_like(img), box)])
    assert all(r["faces"] == 0 and np.isnan(r["ms_median"]) for r in empty)


def _report():
    photo = [{"detector": d, "image": im, "hits": h, "false_positives": fp, "ms": ms}
             for d, (h1, h5, fp, ms) in {"hog a": (1, 4, 0, 12.4), "cnn b": (1, 5, 1, 900.0)}.items()
             for im, h, ms in (("single_face.jpg", h1, ms), ("multi_face.jpg", h5, 2 * ms))]
    video = [{"detector": "hog a", "kind": "hog", "frames": 9, "recall": 0.5, "false_positives_per_frame": 0.25,
              "ms": 3.0}]
    inframe = [{"condition": c, "detector": d, "kind": k, "frames": n, "recall": r, "false_positives_per_frame": 0.0,
                "ms": 5.0, **({"hog_full_up0_recall_same_frames": 0.75} if k == "cnn" else {})}
               for c in ("scale0.5", "default") for d, k, n, r in (("hog a", "hog", 8, 0.625), ("cnn b", "cnn", 4, 1.0))]
    align = [{"step": "eyes warp", "faces": 3, "ms_median": 0.1234, "ms_mean": 0.2}]
    return {"photo": photo, "video": video, "inframe": inframe, "align": align, "command": "python x.py",
            "loadavg_start": "1.00 2.00 3.00", "loadavg_end": "4.00 5.00 6.00"}


def test_markdown_tables_follow_the_rows():
    md = D.detectors_markdown(_report())
    assert "- load average at start 1.00 2.00 3.00, at end 4.00 5.00 6.00" in md
    assert "| hog a | 1 | 4 | 0 | 12 | 25 |" in md and "| cnn b | 1 | 5 | 2 | 900 | 1800 |" in md
    assert "## Video mode (9 frames of the 640x360 clip, one face each)" in md
    assert "| hog a | 0.5000 | 0.250 | 3.0 |" in md
    assert "| condition | hog a | cnn b |\n|---|---:|---:|" in md
    assert md.index("| scale0.5 |") < md.index("| default |")                  # conditions in row order
    assert "| default | 0.625 / 0.000 / 5 ms | 1.000 / 0.000 / 5 ms (HOG full up0 on the same 4: 0.75) |" in md
    assert "| eyes warp | 3 | 0.123 | 0.200 |" in md and md.endswith("![speed and recall](speed_recall.png)\n")


def test_chart_is_written(tmp_path):
    path = D.speed_recall_chart(_report(), tmp_path / "speed_recall.png")
    assert path.stat().st_size > 1000


def test_hog_detector_runs_the_analyzers_detector_with_its_threshold():
    from fer_hybrid.landmarks.detect import detect_faces_scored

    img = cv2.imread(str(FACE))
    low = Detector("hog", None, 0, -0.5)(img)
    np.testing.assert_array_equal(low, detect_faces_scored(img, 0, threshold=-0.5)[0])
    assert len(low) >= len(Detector("hog", None, 0)(img)) >= 1
    h, w = img.shape[:2]
    padded = cv2.copyMakeBorder(img, 0, 0, 0, w // 3, cv2.BORDER_CONSTANT)   # boxes scaled back from a copy
    for b in Detector("hog", w // 2, 1)(padded):                              # stay inside the image
        assert 0 <= b[0] <= b[2] < padded.shape[1] and 0 <= b[1] <= b[3] < h
