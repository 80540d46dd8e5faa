"""Calibrated framing and alignment: warp geometry with known answers, eye levelling, the Analyzer's align and
temperature options (tiny random-weight CNN)."""
from __future__ import annotations

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")

from test_realtime import FACE, models_dir  # noqa: E402,F401

from fer_hybrid import Analyzer  # noqa: E402
from fer_hybrid.inference import align as A  # noqa: E402
from fer_hybrid.inference.framing import FER2013_FRAMING, framed_squares, warp_crops  # noqa: E402


def pattern(n=48) -> np.ndarray:
    yy, xx = np.mgrid[0:n, 0:n]
    return ((xx * 5 + yy * 3) % 256).astype(np.uint8)


def test_check_align():
    assert A.check_align(False) is None and A.check_align(None) is None
    assert A.check_align(True) == "eyes" and A.check_align("level") == "level"
    with pytest.raises(ValueError, match="align must be"):
        A.check_align("sideways")


def test_warp_identity_and_half_turn():
    img = pattern()
    (same,) = warp_crops(img, [[23.5, 23.5]], [48])
    np.testing.assert_array_equal(same, img)
    (turned,) = warp_crops(img, [[23.5, 23.5]], [48], [np.pi])
    np.testing.assert_array_equal(turned, img[::-1, ::-1])


def test_warp_undoes_a_rotation():
    big = cv2.resize(pattern(), (192, 192), interpolation=cv2.INTER_NEAREST)
    m = cv2.getRotationMatrix2D((95.5, 95.5), 20, 1.0)      # counter-clockwise on screen
    rotated = cv2.warpAffine(big, m, (192, 192), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    (back,) = warp_crops(rotated, [[95.5, 95.5]], [96], [np.radians(-20)])
    centre = big[48:144, 48:144].astype(float)
    assert np.abs(back.astype(float) - centre)[8:-8, 8:-8].mean() < 12


def test_framed_square_of_fer2013s_mean_box_is_the_48_frame():
    f = FER2013_FRAMING
    w = 48 / f.side
    cx, cy = 23.5 - f.dx * w, 23.5 - f.dy * w
    box = np.array([[cx - (w - 1) / 2, cy - (w - 1) / 2, cx + (w - 1) / 2, cy + (w - 1) / 2]])
    c, s = framed_squares(box)
    np.testing.assert_allclose(c[0], [23.5, 23.5], atol=1e-9)
    assert s[0] == pytest.approx(48)


def eye_points(left, right) -> np.ndarray:
    """68 points with the six points of each eye on a small circle around the given centres."""
    pts = np.zeros((1, 68, 2))
    ring = 0.5 * np.stack([np.cos(np.arange(6)), np.sin(np.arange(6))], axis=1)
    ring -= ring.mean(axis=0)
    pts[0, 36:42] = np.asarray(left) + ring
    pts[0, 42:48] = np.asarray(right) + ring
    return pts


def test_eyes_on_the_target_give_the_48_frame():
    f = FER2013_FRAMING
    c, s, a = A.aligned_squares(np.array([[0, 0, 47, 47]]), "eyes", eye_points(f.eye_left, f.eye_right))
    np.testing.assert_allclose(c[0], [23.5, 23.5], atol=1e-9)
    assert s[0] == pytest.approx(48) and a[0] == pytest.approx(0)


def test_eyes_turned_and_scaled_give_that_angle_and_size():
    f = FER2013_FRAMING
    theta, k, origin = np.radians(25), 3.0, np.array([100.0, 80.0])
    rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    left, right = (origin + k * rot @ (np.asarray(e) - 23.5) for e in (f.eye_left, f.eye_right))
    c, s, a = A.aligned_squares(np.array([[0, 0, 10, 10]]), "eyes", eye_points(left, right))
    assert a[0] == pytest.approx(theta) and s[0] == pytest.approx(48 * k)
    np.testing.assert_allclose(c[0], origin, atol=1e-9)
    assert A.aligned_squares(np.array([[0, 0, 10, 10]]), "level", eye_points(left, right))[2][0] == pytest.approx(theta)
    with pytest.raises(ValueError, match="landmarks"):
        A.aligned_squares(np.array([[0, 0, 10, 10]]), "eyes", None)


def test_level_crop_of_a_tilted_face_has_level_eyes():
    from fer_hybrid.landmarks.detect import detect_faces, landmarks

    img = cv2.imread(str(FACE), cv2.IMREAD_GRAYSCALE)
    h, w = img.shape
    tilted = cv2.warpAffine(img, cv2.getRotationMatrix2D((w / 2, h / 2), 15, 1.0), (w, h),
                            borderMode=cv2.BORDER_REFLECT_101)
    boxes = detect_faces(tilted, 1)
    assert len(boxes) == 1
    before = np.degrees(A.eye_angles(landmarks(tilted, boxes)))[0]
    (crop,), pts = A.aligned_crops(tilted, boxes, "eyes")
    big = cv2.resize(crop, (192, 192))
    after = np.degrees(A.eye_angles(landmarks(big, np.array([[0, 0, 191, 191]]))))[0]
    assert abs(before) > 8 and abs(after) < 5


@pytest.mark.parametrize("align", [False, "box", "level", "eyes", True])
def test_analyzer_align_options_give_valid_faces(align, models_dir):
    an = Analyzer("vggbn", models_dir=models_dir, align=align)
    (face,) = an.analyze(FACE)
    assert face.label is not None and sum(face.probabilities.values()) == pytest.approx(1.0, abs=1e-6)
    assert an.align == A.check_align(align)


def test_analyzer_temperature_softens_without_changing_the_label(models_dir):
    (plain,) = Analyzer("vggbn", models_dir=models_dir).analyze(FACE)
    (soft,) = Analyzer("vggbn", models_dir=models_dir, temperature=3.0).analyze(FACE)
    assert soft.label == plain.label and soft.proba.max() < plain.proba.max()
    with pytest.raises(ValueError, match="temperature"):
        Analyzer("vggbn", models_dir=models_dir, temperature=0)


def test_align_is_refused_for_a_frame_model(models_dir):
    class FrameModel:
        name, classes, input_kind = "frame-model", ("angry", "fear", "happy", "sad", "surprise"), "frame"

        def predict_proba(self, faces):
            return np.full((len(faces), 5), 0.2)

    with pytest.raises(ValueError, match="align applies to crop models"):
        Analyzer(FrameModel(), align="eyes")
    with pytest.raises(ValueError, match="align must be"):
        Analyzer("vggbn", models_dir=models_dir, align="sideways")


def test_video_session_uses_the_alignment(models_dir):
    an = Analyzer("vggbn", models_dir=models_dir, align="eyes", temperature=2.0)
    session = an.session(detect_every=1)
    assert session.face_predictor.align == "eyes" and session.face_predictor.temperature == 2.0
    (face,) = session.process(cv2.imread(str(FACE)))
    assert face.label is not None and face.proba.sum() == pytest.approx(1.0, abs=1e-6)
    (photo,) = an.analyze(FACE)     # video detection runs on a 480 px copy: boxes may differ by a pixel
    np.testing.assert_allclose(face.proba, photo.proba, atol=1e-3)
