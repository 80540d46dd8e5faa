"""In-the-frame benchmark: seeded rendering, a border that is not flat, the expected box, matching, the
detection cache, per-condition metrics with known answers, and that its classification is the Analyzer's."""
from __future__ import annotations

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")

from test_realtime import models_dir  # noqa: E402,F401

from fer_hybrid import Analyzer  # noqa: E402
from fer_hybrid.evaluation import inframe as F  # noqa: E402


@pytest.fixture(scope="module")
def faces(sample_data):
    return np.concatenate([sample_data.val.x, sample_data.test.x])


def test_conditions_cover_the_issue():
    rot = sorted(c.rotation for c in F.CONDITIONS.values() if c.group == "rotation")
    assert rot == [-30, -20, -10, 10, 20, 30]
    assert {"default", "edge"} <= set(F.CONDITIONS)
    assert {c.group for c in F.CONDITIONS.values()} >= {"scale", "gamma", "blur", "noise", "jpeg"}
    with pytest.raises(ValueError, match="unknown condition"):
        F.select_conditions(["default", "upside-down"])


@pytest.mark.parametrize("name", list(F.CONDITIONS))
def test_render_is_seeded_and_the_border_is_not_flat(faces, name):
    c = F.CONDITIONS[name]
    a, box = F.render(faces[0], c, F.rng_for(0, "val", name, 7))
    b, box2 = F.render(faces[0], c, F.rng_for(0, "val", name, 7))
    assert a.dtype == np.uint8 and a.shape == (F.CANVAS[1], F.CANVAS[0])
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(box, box2)
    assert box[0] < box[2] and box[1] < box[3]
    assert a[:, :20].std() > 1.0 or a[:, -20:].std() > 1.0      # reflected texture, not one flat colour


def test_default_frame_holds_the_upscaled_face_at_its_place(faces):
    c = F.CONDITIONS["default"]
    rng = F.rng_for(0, "val", "default", 0)
    m = F.face_transform(c, F.rng_for(0, "val", "default", 0))
    frame, _ = F.render(faces[0], c, rng)
    x0, y0 = np.round(m[:, 2] + m[:, :2] @ [0, 0]).astype(int)     # where face pixel (0, 0) landed
    inner = frame[y0 + 20:y0 + 172, x0 + 20:x0 + 172].astype(float)
    ref = cv2.resize(faces[0], (192, 192), interpolation=cv2.INTER_CUBIC)[20:172, 20:172].astype(float)
    assert np.corrcoef(inner.ravel(), ref.ravel())[0, 1] > 0.95


def test_iou_and_match_known_answers():
    boxes = np.array([[0, 0, 9, 9], [100, 100, 109, 109]])
    np.testing.assert_allclose(F.iou(boxes, np.array([-0.5, -0.5, 9.5, 9.5])), [1.0, 0.0])
    assert F.match(boxes, np.array([99.5, 99.5, 109.5, 114.5])) == 1
    assert F.match(boxes, np.array([300, 300, 310, 310])) == -1
    assert F.match(np.zeros((0, 4)), np.array([0, 0, 1, 1])) == -1


def test_condition_metrics_known_answer():
    y = np.array([0, 1, 2, 3])
    eye = np.eye(5)
    proba = np.vstack([eye[0], eye[2], eye[2], np.full(5, np.nan)])      # right, wrong, right, missed
    direct = np.vstack([eye[0], eye[1], eye[0], eye[3]])                 # right, right, wrong, right
    found = np.array([True, True, True, False])
    r = F.condition_metrics(y, proba, direct, found, np.array([True, True, False, True]), np.array([0, 1, 0, 0]))
    assert r["found"] == 3 and r["found_share"] == 0.75
    assert r["accuracy_found"] == pytest.approx(2 / 3) and r["accuracy_all"] == 0.5
    assert r["direct_accuracy"] == 0.75 and r["direct_accuracy_found"] == pytest.approx(2 / 3)
    assert r["found_of_original"] == pytest.approx(2 / 3) and r["false_positives_per_frame"] == 0.25


def test_subset_is_seeded_sorted_and_split_specific():
    a, b = F.subset(1000, 50, 0, "val"), F.subset(1000, 50, 0, "val")
    np.testing.assert_array_equal(a, b)
    assert (np.diff(a) > 0).all() and not np.array_equal(a, F.subset(1000, 50, 0, "test"))
    assert len(F.subset(10, 0, 0, "val")) == 10


def test_detection_cache_round_trip(faces, tmp_path):
    calls = []

    def detect(frame):
        calls.append(1)
        return np.array([[1, 2, 3, 4]] * (len(calls) % 2)), np.zeros(len(calls) % 2)

    idx = np.arange(4)
    c = F.CONDITIONS["rot+10"]
    first = F.detect_frames(faces[:4], idx, c, 0, "val", detect, cache_dir=tmp_path)
    again = F.detect_frames(faces[:4], idx, c, 0, "val", detect, cache_dir=tmp_path)
    assert len(calls) == 4 and [len(b) for b in first] == [1, 0, 1, 0]
    assert all(np.array_equal(p, q) for p, q in zip(first, again))
    assert [p.name for p in tmp_path.iterdir()] and not list(tmp_path.glob("*.tmp*"))


def test_classification_is_the_analyzers(faces, models_dir):
    an = Analyzer("vggbn", models_dir=models_dir)
    c, idx = F.CONDITIONS["default"], np.arange(len(faces))
    boxes = F.detect_frames(faces, idx, c, 0, "val", an.detect)
    variants = {v: F.variant_predictor(an.predictor, v) for v in ("margin:0.1", "level", "eyes")}
    assert variants["margin:0.1"].align is None and variants["level"].align == "level"
    r = F.classify_frames(faces, idx, c, 0, "val", boxes, variants)
    found = r["matched"] >= 0
    assert found.sum() >= 5
    assert np.isnan(r["proba"]["eyes"][~found]).all()
    np.testing.assert_allclose(r["proba"]["eyes"][found].sum(axis=1), 1.0, atol=1e-5)
    j = int(np.flatnonzero(found)[0])
    frame, _ = F.render(faces[j], c, F.rng_for(0, "val", "default", j))
    by_analyzer = an.analyze(frame)[r["matched"][j]]                      # the same frame, the full photo path
    np.testing.assert_allclose(by_analyzer.proba, r["proba"]["level"][j], atol=1e-6)   # the default crop
    off = Analyzer("vggbn", models_dir=models_dir, align="off").analyze(frame)[r["matched"][j]]
    np.testing.assert_allclose(off.proba, r["proba"]["margin:0.1"][j], atol=1e-6)
    assert not np.allclose(r["proba"]["margin:0.1"][found], r["proba"]["level"][found])  # two different crops
    with pytest.raises(ValueError, match="crop variant"):
        F.variant_predictor(an.predictor, "margin:wide")


def test_detector_helpers_known_answers():
    from fer_hybrid.evaluation.detectors import Detector, centre_hits, matches_face

    boxes = np.array([[0, 0, 10, 10], [20, 20, 30, 30], [50, 50, 60, 60]])
    assert centre_hits(boxes, np.array([[5.0, 5.0], [25.0, 25.0], [90.0, 90.0]])) == (2, 1)
    assert matches_face(boxes, np.array([45.0, 45.0, 65.0, 65.0]))           # centre inside, width 0.55x
    assert not matches_face(boxes[:1], np.array([45.0, 45.0, 65.0, 65.0]))
    assert not matches_face(np.array([[50, 50, 52, 52]]), np.array([45.0, 45.0, 65.0, 65.0]))  # far too small
    assert Detector("hog", 320, 1, -0.3).name == "hog width 320 upsample 1 threshold -0.3"
    with pytest.raises(ValueError, match="unknown detector kind"):
        Detector("haar")(np.zeros((50, 50), np.uint8))


def test_hog_detector_is_the_analyzers_and_scales_boxes_back():
    from fer_hybrid.evaluation.detectors import Detector
    from fer_hybrid.landmarks.detect import detect_faces

    from test_realtime import FACE

    img = cv2.imread(str(FACE))
    np.testing.assert_array_equal(Detector("hog", None, 1)(img), detect_faces(img, 1))
    small = Detector("hog", img.shape[1] // 2, 1)(img)
    assert len(small) == 1 and np.abs(small - detect_faces(img, 1)).max() < 0.15 * img.shape[1]
