"""Photo-mode rescue of the best weak HOG candidate: the keep rule, the detector, the Analyzer option, and the
sweep that chooses its threshold."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from fer_hybrid import Analyzer
from fer_hybrid.evaluation.rescue import rescue_objective, rescue_outcomes
from fer_hybrid.inference.analyzer import PHOTO_RESCUE_THRESHOLD, photo_upsample
from fer_hybrid.labels import STUDY_EMOTIONS
from fer_hybrid.landmarks.detect import detect_faces_scored, keep_detections

FACE = Path(__file__).parent / "data" / "single_face.jpg"


def blurred_face() -> np.ndarray:
    """The fixture face blurred (sigma 7) until dlib HOG scores it below 0 (about -0.37 with dlib 20)."""
    return cv2.GaussianBlur(cv2.imread(str(FACE), cv2.IMREAD_GRAYSCALE), (0, 0), 7)


class Happy:
    name, classes, input_kind = "happy", STUDY_EMOTIONS, "crops"

    def predict_proba(self, faces):
        return np.tile([0.1, 0.1, 0.6, 0.1, 0.1], (len(faces), 1))


def test_keep_rule_known_answers():
    s = np.array([-0.8, 0.4, -0.2, 1.1])
    assert keep_detections(s).tolist() == [False, True, False, True]
    assert keep_detections(s, 0.0, -0.5).tolist() == [False, True, False, True]   # faces above 0: no rescue
    weak = np.array([-0.8, -0.3, -0.6])
    assert keep_detections(weak).tolist() == [False, False, False]
    assert keep_detections(weak, 0.0, -0.5).tolist() == [False, True, False]      # the single best above -0.5
    assert keep_detections(weak, 0.0, -0.2).tolist() == [False, False, False]     # none above -0.2
    assert keep_detections(np.zeros(0), 0.0, -0.5).shape == (0,)


def test_rescue_keeps_the_faces_above_threshold_and_finds_a_blurred_one():
    sharp = cv2.imread(str(FACE))
    plain, with_rescue = detect_faces_scored(sharp, 0), detect_faces_scored(sharp, 0, rescue_threshold=-1.5)
    assert plain[0].tolist() == with_rescue[0].tolist() and len(plain[0]) == 1
    np.testing.assert_allclose(plain[1], with_rescue[1])
    boxes, scores = detect_faces_scored(blurred_face(), 0)
    assert len(boxes) == 0
    boxes, scores = detect_faces_scored(blurred_face(), 0, rescue_threshold=-0.5)
    assert len(boxes) == 1 and -0.5 < scores[0] < 0
    x0, y0, x1, y1 = boxes[0]
    assert x0 < 117 < x1 and y0 < 126 < y1      # the face's centre (the sharp box is [74, 83, 160, 170])
    assert len(detect_faces_scored(np.full((240, 320), 128, np.uint8), 0, rescue_threshold=-1.5)[0]) == 0


def test_analyzer_rescue_option():
    assert Analyzer(Happy()).rescue_threshold == PHOTO_RESCUE_THRESHOLD
    assert Analyzer(Happy(), rescue_threshold=None).analyze(blurred_face()) == []
    (face,) = Analyzer(Happy(), rescue_threshold=-0.5).analyze(blurred_face())
    assert face.label == "happy" and face.score < 0
    for bad in ("sometimes", 0.5, 0.0, -3.0, True, float("nan")):
        with pytest.raises(ValueError, match="rescue_threshold must be 'auto', None or a number in \\[-2, 0\\)"):
            Analyzer(Happy(), rescue_threshold=bad)


def test_photo_upsample_rule():
    assert photo_upsample(np.zeros((399, 1000), np.uint8)) == 1
    assert photo_upsample(np.zeros((400, 1000), np.uint8)) == 0
    assert photo_upsample(np.zeros((100, 100), np.uint8), 2) == 2


def test_rescue_outcomes_count_found_faces_and_false_positives():
    expected = np.array([[10.0, 10, 50, 50], [10, 10, 50, 50], [10, 10, 50, 50]])
    cands = [(np.array([[10, 10, 50, 50], [100, 100, 140, 140]]), np.array([0.5, 0.2])),   # face + a false one
             (np.array([[12, 12, 50, 50]]), np.array([-0.3])),                               # weak face
             (np.array([[100, 100, 140, 140]]), np.array([-0.3]))]                           # weak non-face
    found, fp = rescue_outcomes(cands, expected, None)
    assert found.tolist() == [True, False, False] and fp.tolist() == [1, 0, 0]
    found, fp = rescue_outcomes(cands, expected, -0.5)
    assert found.tolist() == [True, True, False] and fp.tolist() == [1, 0, 1]
    found, fp = rescue_outcomes(cands, None, -0.5)        # images without a face: every kept box is made up
    assert found.tolist() == [False, False, False] and fp.tolist() == [2, 1, 1]
    assert rescue_objective(0.9, 0.05, 0.1) == pytest.approx(0.75)


def test_rescue_rates_per_threshold_and_of_originals():
    from fer_hybrid.evaluation.rescue import rescue_markdown, rescue_rates

    expected = np.array([[10.0, 10, 50, 50], [10, 10, 50, 50]])
    cands = [(np.array([[10, 10, 50, 50]]), np.array([0.5])), (np.array([[12, 12, 50, 50]]), np.array([-0.3]))]
    originals = [(np.zeros((1, 4), np.int64), np.array([0.2])), (np.zeros((1, 4), np.int64), np.array([-0.6]))]
    rows = rescue_rates(cands, expected, [None, -0.5, -0.8], np.array([True, False]), originals)
    assert list(rows) == ["none", "-0.5", "-0.8"]
    assert rows["none"]["found_share"] == 0.5 and rows["-0.5"]["found_share"] == 1.0
    assert rows["-0.5"]["found_of_original"] == 1.0
    assert rows["-0.5"]["found_of_original_same_rule"] == 1.0          # the weak original is not kept at -0.5
    assert rows["-0.8"]["found_of_original_same_rule"] == 1.0          # kept at -0.8 and found in its frame
    split = {"n": 2, "conditions": {"default": rows}, "objective": {t: 0.0 for t in rows}}
    md = rescue_markdown({"command": "x", "grid": list(rows), "chosen": "-0.5", "empty_photos": 1,
                          "empty": {t: {"false_positives_per_image": 0.0} for t in rows},
                          "splits": {"val": split, "test": split}})
    assert "**-0.5**" in md and md.count("| test |") == 2 and md.count("| val |") == 3


def test_dlib_model_files_are_found_or_named_with_the_fix():
    from fer_hybrid.evaluation.detectors import cnn_model_path
    from fer_hybrid.landmarks.detect import LandmarkModelMissing, face_model_path, shape_predictor_path

    assert shape_predictor_path().name == "shape_predictor_68_face_landmarks.dat" and shape_predictor_path().exists()
    assert cnn_model_path().name == "mmod_human_face_detector.dat" and cnn_model_path().exists()
    with pytest.raises(LandmarkModelMissing, match="nope.dat not found; reinstall face-recognition-models"):
        face_model_path("nope.dat", "a test model", LandmarkModelMissing)
