"""The realtime runner end to end on generated videos/image folders with the tiny test model.

The tiny model (tests/data/tiny_cnn.keras, random weights, made by tests/data/make_tiny_model.py) is copied
into a temporary models folder under a registered name, so no shipped model is needed.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")

from fer_hybrid import realtime  # noqa: E402
from fer_hybrid.labels import STUDY_EMOTIONS  # noqa: E402
from fer_hybrid.inference.tracking import FaceTracker, greedy_match, iou  # noqa: E402
from fer_hybrid.video import SourceError, open_source  # noqa: E402
from fer_hybrid.predictors import model_spec  # noqa: E402

DATA = Path(__file__).parent / "data"
FACE = DATA / "single_face.jpg"
TINY = DATA / "tiny_cnn.keras"
ROOT = Path(__file__).resolve().parents[1]


def face_frames(n: int = 10, size=(320, 240)) -> list[np.ndarray]:
    """n BGR frames with the fixture face pasted at a slowly moving position."""
    face = cv2.imread(str(FACE))
    fh, fw = face.shape[:2]
    frames = []
    for i in range(n):
        img = np.full((size[1], size[0], 3), 90, np.uint8)
        x, y = 20 + 3 * i, 2
        img[y:y + fh, x:x + fw] = face
        frames.append(img)
    return frames


def write_video(path: Path, frames: list[np.ndarray], fps: float = 10.0) -> Path:
    h, w = frames[0].shape[:2]
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    for f in frames:
        vw.write(f)
    vw.release()
    return path


def count_frames(path: Path) -> int:
    cap = cv2.VideoCapture(str(path))
    n = 0
    while cap.read()[0]:
        n += 1
    cap.release()
    return n


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("models")
    shutil.copy(TINY, d / "vggbn.keras")
    return d


def run_cli(argv, models_dir):
    return realtime.main([*map(str, argv), "--models-dir", str(models_dir), "--no-display"])


def run_subprocess(*argv) -> subprocess.CompletedProcess:
    env = {**os.environ, "DISPLAY": "", "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run([sys.executable, "-m", "fer_hybrid.realtime", *map(str, argv)], capture_output=True,
                          text=True, timeout=120, env=env, cwd=ROOT)


# ------------------------------------------------------------------------------------------ runs
def test_video_gives_10_lines_and_10_frames(tmp_path, models_dir, capsys):
    video = write_video(tmp_path / "in.mp4", face_frames(10))
    out, jl = tmp_path / "out" / "annotated.mp4", tmp_path / "faces.jsonl"
    assert run_cli(["--source", video, "--output", out, "--jsonl", jl, "--detect-every", "3"], models_dir) == 0
    rows = read_jsonl(jl)
    assert [r["index"] for r in rows] == list(range(10))
    assert count_frames(out) == 10
    assert all(len(r["faces"]) == 1 for r in rows)  # HOG finds the fixture face; tracker keeps it
    face = rows[4]["faces"][0]
    assert set(face["probabilities"]) == set(STUDY_EMOTIONS)
    assert abs(sum(face["probabilities"].values()) - 1) < 1e-3
    assert face["label"] in STUDY_EMOTIONS and face["smoothed_label"] in STUDY_EMOTIONS
    assert face["no_landmarks"] is False
    assert [r["faces"][0]["detected"] for r in rows[:4]] == [True, False, False, True]
    assert len({r["faces"][0]["id"] for r in rows}) == 1  # one track across the clip
    x0, y0, x1, y1 = face["box"]
    assert 0 <= x0 < x1 < 320 and 0 <= y0 < y1 < 240
    assert rows[1]["timestamp"] == pytest.approx(0.1, abs=1e-3)
    summary = capsys.readouterr().out
    assert "10 frames" in summary and "10 faces" in summary and str(out) in summary and "FPS" in summary
    assert not list(tmp_path.glob(".*tmp-*")) and not list((tmp_path / "out").glob(".*tmp-*"))


def test_image_folder_skips_undecodable(tmp_path, models_dir):
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i, f in enumerate(face_frames(10)):
        cv2.imwrite(str(folder / f"{i:03d}.png"), f)
    (folder / "005b.jpg").write_bytes(b"not a jpeg")  # an undecodable image among them
    (folder / "notes.txt").write_text("ignored")
    out, jl = tmp_path / "a.mp4", tmp_path / "a.jsonl"
    assert run_cli(["--source", folder, "--output", out, "--jsonl", jl], models_dir) == 0
    rows = read_jsonl(jl)
    assert len(rows) == 10 and count_frames(out) == 10
    assert all(len(r["faces"]) == 1 and r["faces"][0]["detected"] for r in rows)  # images: detect every frame


def test_blank_video_has_empty_face_lists(tmp_path, models_dir):
    video = write_video(tmp_path / "blank.mp4", [np.zeros((120, 160, 3), np.uint8)] * 10)
    out, jl = tmp_path / "b.mp4", tmp_path / "b.jsonl"
    assert run_cli(["--source", video, "--output", out, "--jsonl", jl], models_dir) == 0
    rows = read_jsonl(jl)
    assert len(rows) == 10 and all(r["faces"] == [] for r in rows)
    assert count_frames(out) == 10


def test_max_frames_and_single_image(tmp_path, models_dir):
    jl = tmp_path / "c.jsonl"
    video = write_video(tmp_path / "in.mp4", face_frames(10))
    assert run_cli(["--source", video, "--jsonl", jl, "--max-frames", "4"], models_dir) == 0
    assert len(read_jsonl(jl)) == 4
    assert run_cli(["--source", FACE, "--jsonl", jl], models_dir) == 0
    (row,) = read_jsonl(jl)
    assert len(row["faces"]) == 1


def test_nan_rows_give_null_label_and_flag():
    class NoLandmarks:  # a predictor that never finds landmarks, offering the full-frame API
        classes = STUDY_EMOTIONS
        input_kind = "frame"
        name = "no-landmarks"

        def predict_proba_frame(self, frame, boxes):
            return np.full((len(boxes), 5), np.nan)

        def predict_frame(self, frame, boxes):
            return self.predict_proba_frame(frame, boxes), np.full((len(boxes), 68, 2), np.nan)

    runner = realtime.RealtimeRunner(NoLandmarks(), detect_every=1, want_landmarks=True)
    (face,) = runner.process(face_frames(1)[0])
    rec = face.to_json(STUDY_EMOTIONS)
    assert rec["label"] is None and rec["smoothed_label"] is None and rec["no_landmarks"] is True
    assert rec["probabilities"] is None and rec["landmarks"] is None
    json.dumps(rec, allow_nan=False)  # valid strict JSON
    img = face_frames(1)[0]
    realtime.annotate(img, [face], STUDY_EMOTIONS, draw_landmarks=True)  # draws "no landmarks", no crash


def test_hybrid_fallback_is_recorded_in_jsonl():
    class FallsBack:  # a hybrid that answered every face with its CNN alone
        classes = STUDY_EMOTIONS
        input_kind = "frame"

        def predict_proba(self, faces):
            raise AssertionError("a frame predictor gets predict_frame, not crops")

        def predict_frame(self, frame, boxes):
            self.last_fallback = np.ones(len(boxes), bool)
            return np.full((len(boxes), 5), 0.2), None

    runner = realtime.RealtimeRunner(FallsBack(), detect_every=1)
    (face,) = runner.process(face_frames(1)[0])
    rec = face.to_json(STUDY_EMOTIONS)
    assert rec["fallback"] == "cnn" and rec["label"] in STUDY_EMOTIONS


def test_crop_predictors_get_landmarks_from_the_analyzer():
    class CropsOnly:  # the plain registry contract: crops in, probabilities out
        classes = STUDY_EMOTIONS
        name = "crops-only"

        def __init__(self):
            self.sizes = []

        def predict_proba(self, faces):
            self.sizes += [f.shape for f in faces]
            return np.full((len(faces), 5), 0.2)

    p = CropsOnly()
    runner = realtime.RealtimeRunner(p, detect_every=1, crop_margin=0.0, want_landmarks=True, align=False)
    (face,) = runner.process(face_frames(1)[0])
    x0, y0, x1, y1 = face.box
    assert p.sizes == [(y1 - y0 + 1, x1 - x0 + 1)]  # margin 0: exactly the inclusive box
    assert face.landmarks.shape == (68, 2)
    inside = (face.landmarks[:, 0] >= x0 - 5) & (face.landmarks[:, 0] <= x1 + 5) & (face.landmarks[:, 1] >= y0 - 5)
    assert inside.mean() > 0.9  # dlib's points sit on the face the box frames
    assert len(face.to_json()["landmarks"]) == 68


# ------------------------------------------------------------------------------------------ errors
def test_missing_source_exits_2(tmp_path, models_dir):
    r = run_subprocess("--source", tmp_path / "nope.mp4", "--models-dir", models_dir)
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    assert "source not found" in r.stderr and "nope.mp4" in r.stderr


def test_unreadable_video_exits_2(tmp_path, models_dir):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00" * 1000)
    r = run_subprocess("--source", bad, "--models-dir", models_dir)
    assert r.returncode == 2 and "Traceback" not in r.stderr and "cannot read video" in r.stderr


def test_unknown_model_lists_names(tmp_path):
    r = run_subprocess("--model", "nope", "--source", "sample", "--models-dir", tmp_path)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "unknown model 'nope'" in r.stderr and "vggface" in r.stderr and "landmarks" in r.stderr


def test_missing_artifact_names_training_command(tmp_path, models_dir):
    r = run_subprocess("--model", "vggface", "--source", "sample", "--models-dir", models_dir)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert f"train it with `{model_spec('vggface').train_command}`" in r.stderr


def test_corrupt_artifact_exits_2(tmp_path):
    (tmp_path / "vggbn.keras").write_bytes(b"PK\x03\x04 truncated")
    code = realtime.main(["--source", str(FACE), "--models-dir", str(tmp_path), "--no-display"])
    assert code == 2


def test_camera_that_does_not_exist_exits_2(tmp_path, models_dir):
    r = run_subprocess("--source", "97", "--models-dir", models_dir)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "camera index 97 does not open" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_list_models(models_dir, capsys):
    assert realtime.main(["--list-models", "--models-dir", str(models_dir)]) == 0
    out = capsys.readouterr().out
    assert "vggbn" in out and "shipped (default)" in out and "vggface" in out and "missing" in out


def test_sample_source_resolves():
    with open_source("sample") as src:
        assert src.kind == "video" and src.description.endswith("sample.mp4")
        first = next(iter(src))
        assert first.image.shape[1] == 320
    with pytest.raises(SourceError):
        open_source("/definitely/not/here.png")


def test_no_display_never_calls_imshow(tmp_path, models_dir, monkeypatch):
    monkeypatch.setenv("DISPLAY", ":0")  # even with a display, --no-display must not open a window

    def boom(*a, **k):
        raise AssertionError("imshow called")

    monkeypatch.setattr(cv2, "imshow", boom)
    assert run_cli(["--source", FACE], models_dir) == 0
    monkeypatch.delenv("DISPLAY")
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    assert realtime.main(["--source", str(FACE), "--models-dir", str(models_dir)]) == 0  # auto headless


# ------------------------------------------------------------------------------------------ tracking
def test_iou_and_matching():
    a = np.array([[0, 0, 10, 10], [20, 20, 30, 30]])
    b = np.array([[21, 21, 31, 31], [0, 0, 10, 10]])
    m = iou(a, b)
    assert m.shape == (2, 2) and m[0, 1] == pytest.approx(1.0) and m[0, 0] == 0
    assert sorted(greedy_match(m, 0.3)) == [(0, 1), (1, 0)]
    assert greedy_match(m, 1.1) == []


def test_tracker_keeps_id_between_detections():
    tr = FaceTracker(detect_every=2, detect_width=None)
    ids = [[t.id for t in tr.step(f)] for f in face_frames(6)]
    assert ids == [[0]] * 6
    with pytest.raises(ValueError):
        FaceTracker(detect_every=0)
