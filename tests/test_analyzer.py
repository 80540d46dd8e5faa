"""The Analyzer, the one inference path: photos with one, two and no faces, a short video, and the
predictor interface (crops vs frame). Uses the tiny random-weight CNN, so labels are arbitrary but must
be valid, and the fixture face for detection."""
from __future__ import annotations

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")

from test_realtime import FACE, face_frames, models_dir, write_video  # noqa: E402,F401

from fer_hybrid import Analyzer, Face, FrameFaces  # noqa: E402
from fer_hybrid.labels import STUDY_EMOTIONS  # noqa: E402
from fer_hybrid.video import SourceError  # noqa: E402


@pytest.fixture(scope="module")
def analyzer(models_dir):
    return Analyzer("vggbn", models_dir=models_dir)


def two_faces() -> np.ndarray:
    face = cv2.imread(str(FACE))
    return np.concatenate([face, np.full((face.shape[0], 60, 3), 90, np.uint8), face[:, ::-1]], axis=1)


def assert_valid(face: Face) -> None:
    assert face.id is None and face.detected and isinstance(face.score, float)
    assert face.box.shape == (4,) and face.box[0] < face.box[2] and face.box[1] < face.box[3]
    assert face.label in STUDY_EMOTIONS and face.model == "vggbn"
    assert set(face.probabilities) == set(STUDY_EMOTIONS)
    assert sum(face.probabilities.values()) == pytest.approx(1.0, abs=1e-4)
    assert face.label == max(face.probabilities, key=face.probabilities.get)


def test_photo_with_one_face_by_path_and_by_array(analyzer):
    (by_path,) = analyzer.analyze(FACE)
    (by_str,) = analyzer.analyze(str(FACE))
    (by_array,) = analyzer.analyze(cv2.imread(str(FACE)))
    assert_valid(by_path)
    assert by_path.box.tolist() == by_str.box.tolist() == by_array.box.tolist()
    np.testing.assert_allclose(by_path.proba, by_array.proba, atol=1e-6)
    gray = cv2.cvtColor(cv2.imread(str(FACE)), cv2.COLOR_BGR2GRAY)
    (by_gray,) = analyzer.analyze(gray)
    np.testing.assert_allclose(by_gray.proba, by_path.proba, atol=1e-6)


def test_photo_with_two_faces_gives_two_boxes_left_to_right(analyzer):
    faces = sorted(analyzer.analyze(two_faces()), key=lambda f: f.box[0])
    assert len(faces) == 2
    for f in faces:
        assert_valid(f)
    assert faces[0].box[2] < faces[1].box[0]  # disjoint


def test_photo_without_a_face_gives_an_empty_list(analyzer):
    assert analyzer.analyze(np.full((200, 300, 3), 128, np.uint8)) == []


def test_photos_are_independent(analyzer):
    """Nothing carries over between photos: the same photo gives the same answer before and after others."""
    (a,) = analyzer.analyze(FACE)
    analyzer.analyze(two_faces())
    (b,) = analyzer.analyze(FACE)
    np.testing.assert_array_equal(a.proba, b.proba)
    np.testing.assert_array_equal(a.smoothed, a.proba)  # no smoothing for photos


def test_landmarks_on_request(models_dir):
    (f,) = Analyzer("vggbn", models_dir=models_dir, landmarks=True).analyze(FACE)
    assert f.landmarks.shape == (68, 2) and np.isfinite(f.landmarks).all()
    x0, y0, x1, y1 = f.box
    assert (f.landmarks[:, 0] > x0 - 10).all() and (f.landmarks[:, 0] < x1 + 10).all()


def test_video_has_track_ids_and_smoothing(tmp_path, analyzer):
    video = write_video(tmp_path / "v.mp4", face_frames(6))
    frames = list(analyzer.analyze_video(video, detect_every=3, smoothing=0.5))
    assert [f.index for f in frames] == list(range(6)) and all(isinstance(f, FrameFaces) for f in frames)
    assert [len(f.faces) for f in frames] == [1] * 6
    assert {f.faces[0].id for f in frames} == {0}  # one stable track
    assert [f.faces[0].detected for f in frames] == [True, False, False, True, False, False]
    assert frames[0].faces[0].score is not None and frames[1].faces[0].score is None
    p = np.array([f.faces[0].proba for f in frames])
    s = np.array([f.faces[0].smoothed for f in frames])
    np.testing.assert_allclose(s[1], 0.5 * p[1] + 0.5 * s[0], atol=1e-9)
    assert frames[1].timestamp == pytest.approx(0.1, abs=1e-3)


def test_video_pipelined_equals_sequential(tmp_path, analyzer):
    video = write_video(tmp_path / "v.mp4", face_frames(5))
    snap = lambda fr: [(f.index, [(x.id, x.box.tolist(), x.proba.tolist()) for x in f.faces]) for f in fr]  # noqa: E731
    assert snap(analyzer.analyze_video(video, pipeline=True)) == snap(analyzer.analyze_video(video, pipeline=False))


def test_frame_predictors_get_the_frame_and_crop_predictors_get_crops():
    seen = {}

    class FrameModel:
        name, classes, input_kind = "frame-model", STUDY_EMOTIONS, "frame"

        def predict_proba(self, faces):
            raise AssertionError("frame predictors are not handed crops")

        def predict_frame(self, frame, boxes):
            seen["frame"] = frame.shape
            return np.tile([0.1, 0.1, 0.6, 0.1, 0.1], (len(boxes), 1)), None

    image = cv2.imread(str(FACE))
    (f,) = Analyzer(FrameModel()).analyze(image)
    assert seen["frame"] == image.shape and f.label == "happy" and f.model == "frame-model"

    class BadKind(FrameModel):
        input_kind = "pixels"

    with pytest.raises(ValueError, match="input_kind"):
        Analyzer(BadKind())


def test_nan_rows_are_no_answer_never_a_label():
    class NoAnswer:
        name, classes, input_kind = "no-answer", STUDY_EMOTIONS, "crops"

        def predict_proba(self, faces):
            return np.full((len(faces), 5), np.nan)

    (f,) = Analyzer(NoAnswer()).analyze(FACE)
    assert f.label is None and f.probabilities is None and f.to_json()["label"] is None


@pytest.mark.parametrize("bad, error", [
    ("missing.jpg", SourceError),
    (np.zeros((0, 0, 3), np.uint8), ValueError),
    (np.zeros((10, 10, 3), np.float32), ValueError),
])
def test_bad_photos_raise_typed_errors(analyzer, tmp_path, bad, error):
    if isinstance(bad, str):
        bad = tmp_path / bad
    with pytest.raises(error):
        analyzer.analyze(bad)


def test_text_file_as_photo_is_a_source_error(analyzer, tmp_path):
    p = tmp_path / "notes.jpg"
    p.write_text("not an image")
    with pytest.raises(SourceError, match="cannot read image"):
        analyzer.analyze(p)


def test_bad_options_are_value_errors(models_dir):
    with pytest.raises(ValueError, match="crop margin"):
        Analyzer("vggbn", models_dir=models_dir, crop_margin=float("nan"))
    with pytest.raises(ValueError, match="upsample"):
        Analyzer("vggbn", models_dir=models_dir, upsample=-1)
    with pytest.raises(ValueError, match="unknown model"):
        Analyzer("no-such-model", models_dir=models_dir)


def test_gif_photos_are_read(analyzer, tmp_path):
    from PIL import Image

    gif = tmp_path / "face.gif"
    Image.open(FACE).convert("RGB").save(gif)
    (f,) = analyzer.analyze(gif)
    assert f.label in STUDY_EMOTIONS


def test_default_alignment_is_level_for_crop_models_and_none_for_frame_models():
    sizes = []

    class Crops:
        name, classes, input_kind = "crops", STUDY_EMOTIONS, "crops"

        def predict_proba(self, faces):
            sizes.extend(np.shape(f)[:2] for f in faces)
            return np.tile([0.1, 0.1, 0.6, 0.1, 0.1], (len(faces), 1))

    class Frame(Crops):
        name, input_kind = "frame", "frame"

        def predict_frame(self, frame, boxes):
            return np.tile([0.1, 0.1, 0.6, 0.1, 0.1], (len(boxes), 1)), None

    assert Analyzer(Crops()).align == "level" and Analyzer(Crops(), align="off").align is None
    assert Analyzer(Frame()).align is None  # "auto" never aligns a model that places its own landmarks
    with pytest.raises(ValueError, match="align applies to crop models"):
        Analyzer(Frame(), align="level")
    with pytest.raises(ValueError, match="'auto', 'off'"):
        Analyzer(Crops(), align="sideways")
    (f,) = Analyzer(Crops()).analyze(FACE)
    (g,) = Analyzer(Crops(), align="off", crop_margin=0.0).analyze(FACE)
    x0, y0, x1, y1 = g.box
    assert sizes[1] == (y1 - y0 + 1, x1 - x0 + 1)   # off: exactly the box
    assert sizes[0] != sizes[1] and sizes[0][0] == sizes[0][1]   # level: the calibrated square, not the box
