"""The pipelined realtime runner (stage A = decode + detect/track in a background thread, stage B = classify +
smooth + write in the main thread) gives exactly the sequential mode's output, surfaces worker errors, stops
cleanly, and fer_hybrid.video.Prefetch keeps order / re-raises / joins its thread."""
from __future__ import annotations

import contextlib
import threading
import time

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")

from test_realtime import FACE, face_frames, models_dir, read_jsonl, run_cli, write_video  # noqa: E402,F401

from fer_hybrid import realtime  # noqa: E402
from fer_hybrid.labels import STUDY_EMOTIONS  # noqa: E402
from fer_hybrid.predictors import load_predictor  # noqa: E402
from fer_hybrid.video import SAMPLE, Frame, Prefetch  # noqa: E402

STAGE_A = "fer_hybrid-stage-a"


def stage_a_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == STAGE_A]


def moving_faces(n: int = 12) -> list[np.ndarray]:
    """Two faces: one drifting right, one appearing at frame 4 (new track, new smoother mid-clip)."""
    face = cv2.imread(str(FACE))
    fh, fw = face.shape[:2]
    frames = []
    for i in range(n):
        img = np.full((max(240, fh + 4), 2 * fw + 80, 3), 90, np.uint8)
        img[2:2 + fh, 5 + 3 * i:5 + 3 * i + fw] = face
        if i >= 4:
            img[2:2 + fh, fw + 60:2 * fw + 60] = face[:, ::-1]
        frames.append(img)
    return frames


# ------------------------------------------------------------------------------------------ Prefetch
def test_prefetch_keeps_order_and_runs_in_its_thread():
    seen = []

    def gen():
        for i in range(20):
            seen.append(threading.current_thread().name)
            yield i

    with Prefetch(gen(), depth=2, name="probe") as it:
        assert list(it) == list(range(20))
    assert set(seen) == {"probe"}
    with pytest.raises(ValueError, match="depth"):
        Prefetch([], depth=0)


def test_prefetch_reraises_the_same_exception_after_earlier_items():
    class Boom(OSError):
        pass

    def gen():
        yield 1
        yield 2
        raise Boom("disk gone")

    it = Prefetch(gen())
    assert next(it) == 1 and next(it) == 2
    with pytest.raises(Boom, match="disk gone") as info:
        next(it)
    assert any(fr.name == "gen" for fr in info.traceback)  # the worker's frames are in the traceback
    with pytest.raises(StopIteration):
        next(it)
    it.close()
    assert not it._thread.is_alive()


def test_prefetch_close_stops_the_producer_early_and_joins():
    produced = []
    closed = []

    def gen():
        try:
            for i in range(1000):
                produced.append(i)
                yield i
        finally:
            closed.append(True)

    it = Prefetch(gen(), depth=2)
    assert [next(it) for _ in range(3)] == [0, 1, 2]
    it.close()
    assert not it._thread.is_alive()
    assert len(produced) <= 3 + 2 + 1  # consumed + queue depth + the one in hand when stopped
    assert closed == [True]  # the generator's finally ran (its resources are released)
    with pytest.raises(StopIteration):
        next(it)


# ------------------------------------------------------------------------------------------ runner level
def snapshot(frames_results) -> list:
    return [[(r.id, r.box.tolist(), r.detected, r.proba.tolist(), r.smoothed.tolist()) for r in res]
            for res in frames_results]


def run_stream(predictor, images, pipeline: bool, **kw) -> list:
    runner = realtime.RealtimeRunner(predictor, **kw)
    frames = [Frame(i, i / 10, img.copy()) for i, img in enumerate(images)]
    with contextlib.closing(realtime.stream(runner, frames, pipeline)) as it:
        return [runner.classify(f.image, loc) for f, loc in it]


def test_stream_pipelined_equals_sequential_and_process(models_dir):
    p = load_predictor("vggbn", models_dir)
    images = moving_faces(12)
    seq = snapshot(run_stream(p, images, False, detect_every=3, smoothing=0.5))
    pip = snapshot(run_stream(p, images, True, detect_every=3, smoothing=0.5))
    runner = realtime.RealtimeRunner(p, detect_every=3, smoothing=0.5)
    ref = snapshot([runner.process(img.copy()) for img in images])
    assert pip == seq == ref
    assert [len(f) for f in seq[:4]] == [1] * 4 and all(len(f) == 2 for f in seq[6:])  # the 2nd face starts
    assert len({r[0] for f in seq for r in f}) == 2
    assert not stage_a_threads()


def test_stage_a_places_landmarks_and_crops_and_stage_b_only_runs_the_model(models_dir, monkeypatch):
    """Pipelined, everything before the model (landmarks for the level crop, cropping) runs in stage A's
    thread, so the main thread's share of a frame is the model alone; the answers are unchanged."""
    from fer_hybrid.landmarks import detect

    p = load_predictor("vggbn", models_dir)
    images = moving_faces(6)
    seq = snapshot(run_stream(p, images, False, detect_every=3))
    where = {"landmarks": set(), "model": set()}
    real_landmarks, real_predict = detect.landmarks, p.predict_proba

    def landmarks(*a, **k):
        where["landmarks"].add(threading.current_thread().name)
        return real_landmarks(*a, **k)

    def predict_proba(crops):
        where["model"].add(threading.current_thread().name)
        assert len(crops) and all(c.ndim == 2 and c.shape[0] == c.shape[1] < 240 for c in crops)  # gray crops
        return real_predict(crops)

    monkeypatch.setattr(detect, "landmarks", landmarks)
    monkeypatch.setattr(p, "predict_proba", predict_proba)
    pip = snapshot(run_stream(p, images, True, detect_every=3))
    assert pip == seq
    assert where == {"landmarks": {STAGE_A}, "model": {threading.main_thread().name}}


def test_located_carries_the_prepared_crops(models_dir):
    runner = realtime.RealtimeRunner(load_predictor("vggbn", models_dir), detect_every=1)
    image = moving_faces(6)[5]
    loc = runner.locate(image)
    assert len(loc.ids) == 2 and loc.prepared is not None
    assert len(loc.prepared.crops) == 2 and loc.prepared.points.shape == (2, 68, 2)  # level crop needs them
    assert loc.prepared.timings["landmarks"] > 0
    assert runner.locate(np.full((240, 320), 90, np.uint8)).prepared is None  # no face, nothing prepared


# ------------------------------------------------------------------------------------------ CLI level
def strip_timing(rows: list[dict]) -> list[dict]:
    """JSONL rows without timing fields (there are none today besides the video timestamp, kept)."""
    return [{k: v for k, v in r.items() if k not in ("seconds", "fps")} for r in rows]


def both_modes(tmp_path, models, argv) -> tuple[list[dict], list[dict]]:
    out = []
    for mode in ("seq", "pip"):
        jl = tmp_path / f"{mode}.jsonl"
        extra = ["--no-pipeline"] if mode == "seq" else []
        assert run_cli([*argv, "--jsonl", jl, *extra], models) == 0
        out.append(strip_timing(read_jsonl(jl)))
    assert not stage_a_threads()
    return out[0], out[1]


def test_cli_jsonl_identical_on_a_generated_video(tmp_path, models_dir):
    video = write_video(tmp_path / "in.mp4", moving_faces(12))
    seq, pip = both_modes(tmp_path, models_dir, ["--source", video, "--detect-every", "3"])
    assert seq == pip
    assert [r["index"] for r in seq] == list(range(12))
    assert [len(r["faces"]) for r in seq] == [1] * 6 + [2] * 6  # 2nd face found at the frame-6 detection
    assert {f["label"] for r in seq for f in r["faces"]} <= set(STUDY_EMOTIONS)


@pytest.mark.skipif(not SAMPLE.exists(), reason="bundled sample clip missing")
def test_cli_jsonl_identical_on_the_sample_clip(tmp_path, models_dir):
    seq, pip = both_modes(tmp_path, models_dir, ["--source", "sample", "--max-frames", "40"])
    assert seq == pip and len(seq) == 40
    assert any(r["faces"] for r in seq)  # the clip has a face: the comparison covers probabilities
    assert any(not f["detected"] for r in seq for f in r["faces"])  # and tracked (not detected) boxes


def test_landmark_model_identical_in_both_modes(tmp_path):
    """The landmark ensemble through the frame API (predict_frame, with landmarks) - one load, both modes."""
    from test_bad_inputs import landmark_models

    p = load_predictor("landmarks", landmark_models(tmp_path))
    images = moving_faces(6)
    runs = [run_stream(p, images, pipeline, detect_every=3, want_landmarks=True) for pipeline in (False, True)]
    seq, pip = (snapshot(r) for r in runs)
    assert seq == pip and [len(f) for f in seq] == [1, 1, 1, 1, 1, 1]
    pts = [[f.landmarks.tolist() for f in res] for r in runs for res in r]
    assert pts[:6] == pts[6:] and np.isfinite(runs[0][0][0].landmarks).any()


def test_cli_pipeline_worker_error_exits_2_in_both_modes(tmp_path, models_dir, monkeypatch, capsys):
    """A source that fails while decoding (stage A, in the worker thread) gives the same one-line exit 2."""
    from fer_hybrid import video

    class Failing(video.FrameSource):
        kind, description, fps = "video", "failing.mp4", 10.0

        def __iter__(self):
            for i, img in enumerate(face_frames(3)):
                yield Frame(i, i / 10, img)
            raise OSError("device unplugged")

    monkeypatch.setattr(video, "open_source", lambda *a, **k: Failing())
    out = {}
    for extra in ([], ["--no-pipeline"]):
        jl = tmp_path / "x.jsonl"
        code = run_cli(["--source", "whatever", "--jsonl", jl, *extra], models_dir)
        err = capsys.readouterr().err
        assert code == 2 and "Traceback" not in err and "device unplugged" in err
        assert len(err.strip().splitlines()) == 1
        assert not jl.exists()  # aborted outputs are not published
        out[bool(extra)] = err
    assert out[True] == out[False]
    assert not stage_a_threads()


def test_cli_pipeline_other_worker_error_propagates_with_its_type(tmp_path, models_dir, monkeypatch):
    def broken(self, image):
        raise RuntimeError("tracker exploded")

    monkeypatch.setattr(realtime.RealtimeRunner, "locate", broken)
    video = write_video(tmp_path / "in.mp4", face_frames(3))  # videos are tracked; photos are not
    for extra in ([], ["--no-pipeline"]):
        with pytest.raises(RuntimeError, match="tracker exploded"):
            run_cli(["--source", video, *extra], models_dir)
    assert not stage_a_threads()


def test_window_q_quits_and_imshow_stays_in_main_thread(tmp_path, models_dir, monkeypatch):
    shown, keys = [], iter([-1, -1, ord("q")])
    monkeypatch.setattr(realtime, "has_display", lambda: True)
    monkeypatch.setattr(cv2, "imshow", lambda *a: shown.append(threading.current_thread().name))
    monkeypatch.setattr(cv2, "waitKey", lambda *a: next(keys))
    monkeypatch.setattr(cv2, "destroyAllWindows", lambda: None)
    video = write_video(tmp_path / "in.mp4", face_frames(10))
    jl = tmp_path / "w.jsonl"
    assert realtime.main(["--source", str(video), "--models-dir", str(models_dir), "--jsonl", str(jl)]) == 0
    assert shown == [threading.main_thread().name] * 3
    assert len(read_jsonl(jl)) == 3
    assert not stage_a_threads()


def test_keyboard_interrupt_publishes_nothing_and_stops_the_worker(tmp_path, models_dir, monkeypatch, capsys):
    """Ctrl-C mid-run: exit 130, 'interrupted after N frames', the previous output kept, no temp file left."""
    calls = []
    orig = realtime.RealtimeRunner.classify

    def classify(self, image, located):
        calls.append(1)
        if len(calls) == 4:
            raise KeyboardInterrupt
        return orig(self, image, located)

    monkeypatch.setattr(realtime.RealtimeRunner, "classify", classify)
    video = write_video(tmp_path / "in.mp4", face_frames(10))
    jl = tmp_path / "k.jsonl"
    jl.write_text("previous\n")
    assert run_cli(["--source", video, "--jsonl", jl], models_dir) == 130
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("interrupted after 3 frames (SIGINT)")
    assert jl.read_text() == "previous\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4", "k.jsonl"]  # no temp file
    time.sleep(0.01)
    assert not stage_a_threads()
