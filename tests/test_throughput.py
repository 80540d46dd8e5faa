"""fer_hybrid.evaluation.throughput: timed runs through the realtime loop with predictors that sleep a known
time, soak crash counting, RSS/process measurements and the report writers, on tiny generated inputs."""
from __future__ import annotations

import json
import sys
import time

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")

from test_realtime import face_frames, write_video  # noqa: E402

from fer_hybrid import Analyzer  # noqa: E402
from fer_hybrid.evaluation import throughput as tp  # noqa: E402
from fer_hybrid.inference.analyzer import PIPELINE_DEPTH  # noqa: E402
from fer_hybrid.labels import STUDY_EMOTIONS  # noqa: E402
from fer_hybrid.video import SourceError  # noqa: E402


class Sleepy:
    """A crop predictor that takes ``seconds`` per call, answers "happy" and can fail on one call."""

    name, classes, input_kind = "sleepy", STUDY_EMOTIONS, "crops"

    def __init__(self, seconds: float = 0.0, fail_on: int | None = None, sleep=time.sleep):
        self.seconds, self.fail_on, self.sleep, self.calls, self.shapes = seconds, fail_on, sleep, 0, []

    def predict_proba(self, crops):
        self.calls += 1
        self.shapes.append(np.asarray(crops[0]).shape)
        if self.calls == self.fail_on:
            raise RuntimeError("boom")
        self.sleep(self.seconds)
        return np.tile([0.1, 0.1, 0.6, 0.1, 0.1], (len(crops), 1))


class Clock:
    """A stand-in for time.perf_counter that moves only when ``sleep`` is called: timings become exact."""

    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock(monkeypatch):
    c = Clock()
    monkeypatch.setattr(time, "perf_counter", c)
    return c


def session(predictor):
    return Analyzer(predictor, align="off").session(detect_every=1)


# ------------------------------------------------------------------------------------------ timed runs
def test_frame_stats_known_answer():
    s = tp.frame_stats(0.0, [0.0, 1.0, 2.5], [1.0, 2.0, 4.0])
    assert s["frames"] == 3 and s["fps"] == pytest.approx(0.75)
    assert s["p50_ms"] == pytest.approx(1000) and s["mean_ms"] == pytest.approx(4000 / 3)
    assert s["p95_ms"] == pytest.approx(1900)  # intervals 1000, 1000, 2000 ms
    assert s["latency_p50_ms"] == pytest.approx(1000) and s["latency_p95_ms"] == pytest.approx(1450)


def test_frame_stats_refuses_no_frames_and_mismatched_lists():
    with pytest.raises(ValueError, match="no frame was timed"):
        tp.frame_stats(0.0, [], [])
    with pytest.raises(ValueError, match="2 start times for 1 finish times"):
        tp.frame_stats(0.0, [0.0, 1.0], [1.0])


@pytest.mark.parametrize("pipeline", [False, True])
def test_video_speed_gives_the_known_times_of_a_predictor_and_an_overlay(clock, pipeline):
    predictor = Sleepy(0.02, sleep=clock.sleep)  # 20 ms per face, 10 ms per overlay, nothing else takes time
    overlay = []
    r = tp.video_speed(session(predictor), face_frames(7), pipeline=pipeline, warmup=1,
                       on_frame=lambda frame, faces: (overlay.append(frame.index), clock.sleep(0.01)))
    assert predictor.calls == 7 and overlay == [0, 0, 1, 2, 3, 4, 5]  # warm-up frame, then the 6 timed ones
    assert r["frames"] == 6 and r["faces_per_frame"] == 1.0
    assert r["classification_ms"] == pytest.approx(20) and r["on_frame_ms"] == pytest.approx(10)
    assert r["landmarks_ms"] == 0.0 and r["fps"] == pytest.approx(1000 / 30)
    assert r["p50_ms"] == pytest.approx(30) and r["p95_ms"] == pytest.approx(30)
    if not pipeline:  # sequential: detection takes no clock time, a frame starts when the previous one is done
        assert r["detection_ms"] == 0.0
        assert r["latency_p50_ms"] == pytest.approx(30) and r["latency_p95_ms"] == pytest.approx(30)


def test_video_speed_with_real_sleeps():
    r = tp.video_speed(session(Sleepy(0.02)), face_frames(4), pipeline=True, warmup=1,
                       on_frame=lambda frame, faces: time.sleep(0.01))
    assert r["frames"] == 3 and r["classification_ms"] >= 20 and r["on_frame_ms"] >= 10
    assert r["p50_ms"] >= 30 and r["latency_p50_ms"] >= 30 and r["fps"] <= 1000 / 30
    assert r["detection_ms"] > 0 and 0 < r["cpu_util"] < 2.5


def test_video_speed_needs_frames_after_the_warm_up():
    with pytest.raises(ValueError, match="2 frames leave none to time after 2 warm-up frames"):
        tp.video_speed(session(Sleepy()), face_frames(2), warmup=2)


def test_timed_frames_stamps_in_order_and_resumes_a_shared_iterator():
    s, frames = session(Sleepy()), tp.as_frames(face_frames(5))
    first = []
    for tick in tp.timed_frames(s, frames, pipeline=False):
        first.append(tick)
        if len(first) == 2:
            break
    rest = list(tp.timed_frames(s, frames, pipeline=False))
    assert [t.frame.index for t in first + rest] == [0, 1, 2, 3, 4] and len(rest[0].faces) == 1
    assert all(t.started < t.finished for t in first + rest) and first[1].finished <= rest[0].started


def test_batch1_ms_per_face_times_one_centre_crop(clock):
    predictor = Sleepy(0.005, sleep=clock.sleep)
    ms = tp.batch1_ms_per_face(predictor, np.zeros((100, 90, 3), np.uint8), repeats=5)
    assert ms == pytest.approx(5) and predictor.calls == 10  # 5 warm-up calls + 5 timed
    assert set(predictor.shapes) == {(50, 30)}
    assert np.isnan(tp.batch1_ms_per_face(object(), np.zeros((10, 10), np.uint8)))


# ------------------------------------------------------------------------------------------ soak
class Counted(list):
    skipped = 2  # what a source reports as undecodable frames


@pytest.mark.parametrize("pipeline", [False, True])
def test_soak_counts_a_crash_and_goes_on(pipeline):
    frames = Counted(tp.as_frames(face_frames(8)))
    r = tp.soak(session(Sleepy(fail_on=3)), frames, 8, 3, pipeline=pipeline)
    assert r["crashes"] == 1 and r["frames"] + r["dropped_frames"] == 8
    assert r["crash_messages"][0].startswith("frame 2: RuntimeError: boom | ")
    if pipeline:  # frames read ahead when the crash came are dropped
        assert 8 - PIPELINE_DEPTH - 2 <= r["frames"] <= 8
    else:
        assert r["frames"] == 8 and r["faces"] == r["faces_labelled"] == 7
        assert [s["frame"] for s in r["samples"]] == [0, 3, 6, 8]
        assert [s["crashes"] for s in r["samples"]] == [0, 1, 1, 1]
    assert r["undecodable_frames"] == 2 and r["samples"][-1]["skipped"] == 2
    assert all(s["rss_mb"] > 0 for s in r["samples"])


def test_soak_counts_an_on_frame_exception_and_keeps_the_frame():
    def on_frame(frame, faces):
        if frame.index == 1:
            raise KeyError("draw")

    r = tp.soak(session(Sleepy()), tp.as_frames(face_frames(4)), 10, 100, pipeline=False, on_frame=on_frame)
    assert r["frames"] == 4 and r["faces"] == 3 and r["crashes"] == 1 and r["dropped_frames"] == 6
    assert "KeyError: 'draw'" in r["crash_messages"][0] and r["samples"][-1]["frame"] == 4


def test_soak_refuses_bad_counts():
    with pytest.raises(ValueError, match="total and every must be >= 1"):
        tp.soak(session(Sleepy()), [], 0, 1)


# ------------------------------------------------------------------------------------------ frames
def test_load_frames_resizes_and_stops_at_the_end(tmp_path):
    video = write_video(tmp_path / "v.mp4", face_frames(5))
    assert tp.load_frames(video, 3, (64, 48)).shape == (3, 48, 64, 3)
    assert tp.load_frames(video, 50, (64, 48)).shape == (5, 48, 64, 3)
    with pytest.raises(SourceError, match="not found"):
        tp.load_frames(tmp_path / "missing.mp4", 3, (64, 48))
    with pytest.raises(ValueError, match="n must be >= 1"):
        tp.load_frames(video, 0, (64, 48))


def test_cut_clips_and_looped_frames(tmp_path):
    video = write_video(tmp_path / "v.mp4", face_frames(7))
    clips = tp.cut_clips(video, 3, 3, 32, tmp_path)
    lengths = []
    for c in clips:
        cap = cv2.VideoCapture(str(c))
        lengths.append(int(cap.get(cv2.CAP_PROP_FRAME_COUNT)))
        assert int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)) == 32
        cap.release()
    assert [c.name for c in clips] == ["clip00.mp4", "clip01.mp4", "clip02.mp4"] and lengths == [3, 3, 1]
    looped = tp.LoopedFrames(str(video), 17)
    assert len(list(looped)) == 17 and looped.loops == 3 and looped.skipped == 0


# ------------------------------------------------------------------------------------------ memory, machine
def test_rss_growth_from_the_baseline_frame():
    samples = [{"frame": f, "rss_mb": m} for f, m in [(0, 100.0), (500, 110.0), (1000, 120.0), (2000, 125.5)]]
    assert tp.rss_growth(samples, 1000) == {"from_frame": 1000, "to_frame": 2000, "from_mb": 120.0,
                                            "to_mb": 125.5, "growth_mb": 5.5, "peak_mb": 125.5}
    short = tp.rss_growth(samples[:2], 1000)  # too short for the baseline: from the first sample
    assert (short["from_frame"], short["growth_mb"]) == (0, 10.0)
    with pytest.raises(ValueError, match="no RSS samples"):
        tp.rss_growth([], 1000)


def test_rss_mb_sees_a_100_mb_allocation():
    before = tp.rss_mb()
    block = np.ones(100 * 2**20 // 8)
    assert tp.rss_mb() - before >= 90
    del block


def test_load_average_and_cpu_busy_share():
    la = tp.loadavg()
    assert len(la) == 3 and all(x >= 0 and round(x, 2) == x for x in la)
    assert 0.0 <= tp.cpu_busy_fraction(0.2) <= 1.0
    m = tp.machine()
    assert m["cpu_count"] >= 1 and m["python"].count(".") == 2 and len(m["loadavg_start"]) == 3


# ------------------------------------------------------------------------------------------ processes
def test_run_process_reports_time_peak_rss_code_and_the_last_lines():
    code = ("import sys; b = b'x' * (60 * 2**20); print('noise'); print('last'); print('why', file=sys.stderr); "
            "sys.exit(3)")
    r = tp.run_process([sys.executable, "-c", code])
    assert r.code == 3 and r.last_line == "last" and r.error == "exit 3: why"
    assert r.rss_mb >= 60 and 0 < r.seconds < 60 and not r.timed_out


def test_run_process_kills_a_child_past_its_timeout():
    t0 = time.perf_counter()
    r = tp.run_process([sys.executable, "-c", "import time; time.sleep(30)"], timeout=0.5)
    assert r.timed_out and r.error == "timed out (killed)" and time.perf_counter() - t0 < 20


def test_subprocess_json_takes_the_last_json_line_or_says_why_not():
    ok = tp.subprocess_json([sys.executable, "-c", "print('{\"a\": 1}'); print('log'); print('{\"b\": 2}')"])
    assert ok == {"b": 2}
    assert tp.subprocess_json([sys.executable, "-c", "print('nothing')"]) == {"error": "exit 0: no JSON line on stdout"}
    bad = tp.subprocess_json([sys.executable, "-c", "import sys; sys.exit('no module named x')"])
    assert bad == {"error": "exit 1: no module named x"}
    env = tp.subprocess_json([sys.executable, "-c", "import json, os; print(json.dumps({'x': os.environ['X_T']}))"],
                             env={"X_T": "7"})
    assert env == {"x": "7"}


def test_startup_summary_uses_the_runs_that_exited_0():
    runs = [tp.ProcessRun(s, 100.0 + s, 0, f"out {s}\n", "") for s in (1.0, 3.0, 2.0)]
    runs.append(tp.ProcessRun(9.0, 1.0, 1, "", "broke\n"))
    assert tp.startup_summary(runs) == {"runs": 3, "median_s": 2.0, "min_s": 1.0, "median_rss_mb": 102.0,
                                        "example_output": "out 2.0"}
    assert tp.startup_summary(runs[3:]) == {"error": "exit 1: broke"}
    assert tp.startup_summary([]) == {"error": "no runs"}


def test_scaling_summary_medians_and_speedup():
    def run(w, fps, setup):
        return {"workers": w, "files_per_s": fps / 10, "frames_per_s": fps, "files_per_s_end_to_end": fps / 20,
                "frames_per_s_end_to_end": fps / 2, "setup_s": setup, "process_s": 1.0, "total_s": 1.0 + setup}

    s = tp.scaling_summary([run(1, 10, 0), run(1, 12, 2), run(2, 15, 4), run(2, 19, 6), run(1, 30, 0)])
    assert s["1"]["frames_per_s"] == 12 and s["1"]["runs"] == 3 and s["2"]["frames_per_s"] == 17
    assert s["2"]["setup_s"] == 5 and s["speedup_2_over_1"] == round(17 / 12, 3)
    assert "speedup_2_over_1" not in tp.scaling_summary([run(1, 10, 0)])


def test_worker_speed_and_ratios():
    raw = {"model": "fer", "version": "1", "t0": 0.0, "started": [0.0, 0.1], "finished": [0.1, 0.2], "faces": 3,
           "detection_s": [0.04, 0.06]}
    w = tp.worker_speed(raw)
    assert w["fps"] == pytest.approx(10) and w["faces_per_frame"] == 1.5
    assert w["detection_ms"] == pytest.approx(50) and w["classification_ms"] == pytest.approx(50)
    results = [{"model": "a", "mode": "pipelined", "fps": 30.0}, {"model": "a", "mode": "sequential", "fps": 20.0},
               {"model": "b", "mode": "pipelined", "error": "exit 1"}]
    assert tp.realtime_ratios(results, w) == {"speedup_vs_fer": {"a (pipelined)": 3.0, "a (sequential)": 2.0},
                                              "pipeline_gain": {"a": 1.5}}
    assert tp.realtime_ratios(results, {"skipped": "none"})["speedup_vs_fer"] == {}


# ------------------------------------------------------------------------------------------ reports
def realtime_report(fer: dict) -> dict:
    row = {"model": "vggbn", "mode": "pipelined", "fps": 50.0, "p50_ms": 20.0, "p95_ms": 25.0, "latency_p50_ms": 40.0,
           "latency_p95_ms": 45.0, "cpu_util": 1.5, "detection_ms": 7.0, "landmarks_ms": None,
           "classification_ms": 9.0, "overlay_ms": 0.5, "faces_per_frame": 1.0}
    results = [row, {"model": "hybrid", "mode": "sequential", "error": "exit 1: gone"}]
    return {"date": "2026-01-02T03:04:05", "command": "python x", "loadavg_start": [1.0, 1.0, 1.0],
            "env": {"cpu": "cpu", "cpu_count": 2},
            "settings": {"frames": 5, "video": "v.mp4", "size": "640x480", "warmup": 1, "detect_every": 3,
                         "detect_width": 480, "tf_threads": 1, "depth": 2, "thread_sweep": [1, 0]},
            "results": results, "fer": fer, **tp.realtime_ratios(results, fer),
            "thread_sweep": {"vggbn": {"1": 3.25, "0": None}}}


def test_realtime_markdown_rows():
    md = tp.realtime_markdown(realtime_report({"skipped": "skipped (--fer-python none)"}))
    assert "| vggbn (pipelined) | 50.0 | 20.0 | 25.0 | 40.0 | 45.0 | 1.50 | 7.0 | - | 9.0 | 0.5 | 1.00 |" in md
    assert "| hybrid (sequential) | error: exit 1: gone |" in md
    assert "`fer` package: skipped (--fer-python none)" in md and "| vggbn | 3.2 | - |" in md
    fer = {"model": "fer", "version": "25", "fps": 25.0, "p50_ms": 40.0, "p95_ms": 41.0, "faces_per_frame": 1.0,
           "detection_ms": 30.0, "classification_ms": 10.0}
    md = tp.realtime_markdown(realtime_report(fer))
    assert "| fer 25 (Haar + mini-Xception TFLite) | 25.0 | 40.0 | 41.0 | - | - | - | 30.0 | - | 10.0 |" in md
    assert "Speed-up over fer (FPS ratio): vggbn (pipelined): 2.00x" in md


def soak_report(frames: int, passed: bool) -> dict:
    samples = [{"frame": 0, "rss_mb": 100.0, "seconds": 0.0, "window_fps": None, "faces": 0, "skipped": 0,
                "crashes": 0}, {"frame": frames, "rss_mb": 120.0, "seconds": 10.0, "window_fps": frames / 10,
                                "faces": frames, "skipped": 0, "crashes": 1}]
    return {"model": "m", "models_dir": "d", "source": "s.mp4", "command": "python soak", "rss_source": "psutil",
            "settings": {"detect_every": 3, "detect_width": 480, "smoothing": 0.5, "tf_threads": 1, "pipeline": True},
            "target": {"rss_growth_mb_lt": 50.0, "from_frame": 1000, "crashes": 0, "min_frames": 10_000},
            "rss": tp.rss_growth(samples, 1000), "passed": passed, "date": "d",
            "environment": {"cpu": "c", "cpu_count": 2, "python": "3.11.7", "loadavg_start": [0.5, 0.5, 0.5]},
            "result": {"frames": frames, "seconds": 10.0, "fps": frames / 10, "faces": frames, "faces_labelled": frames,
                       "undecodable_frames": 0, "dropped_frames": 0, "video_loops": 1, "crashes": 1,
                       "crash_messages": ["frame 3: RuntimeError: boom"], "samples": samples}}


def test_soak_markdown_and_plot(tmp_path):
    md = tp.soak_markdown(soak_report(2000, False))
    assert "not judged (target applies to >= 10,000 frames; this run has 2,000)" in md
    assert "| 2,000 | 120.0 | 10.0 | 200.0 | 2,000 | 0 | 1 |" in md and "runner (pipelined)" in md
    assert "growth **+20.0 MB** (target < 50 MB)" in md and "- `frame 3: RuntimeError: boom`" in md
    assert "verdict: **FAIL**" in tp.soak_markdown(soak_report(10_000, False))
    assert tp.soak_plot(soak_report(10_000, True), tmp_path / "rss.png").read_bytes()[:4] == b"\x89PNG"


def test_scaling_and_startup_markdown(tmp_path):
    run = {"workers": 1, "frames": 72, "process_s": 2.0, "setup_s": 0.5, "frames_per_s": 36.0,
           "loadavg_before": [1.0], "loadavg_after": [1.1]}
    summary = {"1": {"runs": 1, "files_per_s": 0.5, "frames_per_s": 36.0, "files_per_s_end_to_end": 0.4,
                     "frames_per_s_end_to_end": 28.8, "setup_s": 0.5, "process_s": 2.0}}
    rep = {"command": "c", "clips": 1, "frames_per_clip": 72, "input_note": "n", "model": "m",
           "settings": {"detect_every": 3, "detect_width": 480, "tf_threads": 1}, "under_load": True,
           "load_note": tp.scaling_load_note(0.5, True), "loadavg_start": [1.0], "loadavg_end": [1.2],
           "tables_identical": False, "environment": {"cpu": "c", "cpu_count": 2, "versions": {"python": "3"}},
           "dask": "1", "date": "d", "summary": summary, "runs": [run],
           "failed_runs": [{"workers": 2, "repeat": 0, "error": "OSError: x", "loadavg": [2.0]}]}
    md = tp.scaling_markdown(rep)
    assert "| 1 | 1 | 0.500 | 36.00 | 0.400 | 28.80 | 0.5 | 2.0 |" in md and "CPU 50 % busy" in md
    assert "| 1 | 1 | 72 | 2.00 | 0.50 | 36.00 | [1.0] | [1.1] |" in md and "repeat 0: `OSError: x`" in md
    assert tp.scaling_plot(rep, tmp_path / "s.png").read_bytes()[:4] == b"\x89PNG"
    st = {"date": "2026-01-02", "runs_per_tool": 2, "photo": "/x/p.jpg", "loadavg_start": [0.5, 0.25, 0.0],
          "loadavg_end": None, "command": "c", "time_ratio_vs_fer": {"ours": 0.5},
          "results": {"ours": {"median_s": 1.0, "min_s": 0.9, "median_rss_mb": 200.4, "example_output": "happy"},
                      "fer": {"error": "exit 1: no"}}}
    md = tp.startup_markdown(st)
    assert "| ours | 1.00 | 0.90 | 200 | happy |" in md and "| fer | error: exit 1: no |||" in md
    assert "load average 0.5 0.25 0.0 at start, n/a at end" in md and "ours: 0.50x" in md


def test_save_report_writes_json_and_markdown(tmp_path):
    j, m = tp.save_report(tmp_path / "new", "bench", {"x": np.float32(0.5)}, "# hi\n")
    assert json.loads(j.read_text()) == {"x": 0.5} and m.read_text() == "# hi\n"


# ------------------------------------------------------------------------------------------ bench_realtime parts
FAKE_WORKER = """import json, sys
a = sys.argv[1:]
model, threads = a[a.index("--worker") + 1], int(a[a.index("--tf-threads") + 1])
if model == "bad":
    sys.exit("no such model")
if "--thread-sweep-only" in a:
    print(json.dumps({"model": model, "ms_per_face": 10.0 / (threads or 4)}))
else:
    print(json.dumps({"runs": [{"model": model, "mode": m, "fps": 20.0, "cpu_util": 1.0} for m in a[a.index("--modes") + 1].split(",")]}))
"""


def test_bench_models_runs_one_worker_per_model_and_thread_count(tmp_path):
    worker = tmp_path / "worker.py"
    worker.write_text(FAKE_WORKER)
    log = []
    results, sweep = tp.bench_models([sys.executable, str(worker), "--modes", "pipelined,sequential"], ["a", "bad"],
                                     tf_threads=1, sweep=[1, 0], n_frames=5, log=log.append)
    assert [tp.realtime_label(r) for r in results] == ["a (pipelined)", "a (sequential)", "bad"]
    assert results[2]["error"].startswith("exit 1: no such model")
    assert sweep == {"a": {"1": 10.0, "0": 2.5}, "bad": {"1": None, "0": None}}
    assert log[0] == "[bench] a (end to end, 5 frames)" and log[1] == "[bench]   a (pipelined): 20.0 FPS, CPU 1.00"
    assert log[-1].startswith("[bench]   bad: exit 1")


def test_run_fer_skips_without_fer_and_reads_its_worker(tmp_path):
    assert tp.run_fer("none", "w.py", "f.npy", 2) == {"skipped": "skipped (--fer-python none)"}
    gone = tp.run_fer(str(tmp_path / "python"), "w.py", "f.npy", 2)["skipped"]
    assert gone.startswith("skipped: no python at") and tp.FER_INSTALL in gone
    worker = tmp_path / "fer_worker.py"
    worker.write_text("import fer_package_that_is_not_installed\n")
    assert "`fer` not importable" in tp.run_fer(sys.executable, worker, "f.npy", 2)["skipped"]
    raw = {"model": "fer", "version": "1", "t0": 0.0, "started": [0.0, 0.1], "finished": [0.1, 0.2], "faces": 2,
           "detection_s": [0.05, 0.05]}
    worker.write_text(f"import json, sys\nassert sys.argv[1:] == ['f.npy', '--warmup', '2']\nprint(json.dumps({raw!r}))\n")
    assert tp.run_fer(sys.executable, worker, "f.npy", 2) == tp.worker_speed(raw)
    worker.write_text("raise SystemExit('broken')\n")
    assert tp.run_fer(sys.executable, worker, "f.npy", 2) == {"error": "exit 1: broken"}


def test_realtime_report_keys_in_order_and_ratios():
    results = [{"model": "a", "mode": "pipelined", "fps": 30.0}, {"model": "a", "mode": "sequential", "fps": 20.0}]
    rep = tp.realtime_report(command="python x", settings={"frames": 5}, results=results, fer={"fps": 10.0},
                             thread_sweep={"a": {"1": 3.0}}, loadavg_start=[1.0, 1.0, 1.0])
    assert list(rep) == ["kind", "name", "date", "command", "env", "loadavg_start", "loadavg_end", "settings",
                         "results", "fer", "speedup_vs_fer", "pipeline_gain", "thread_sweep"]
    assert rep["kind"] == "benchmark" and rep["name"] == "bench-realtime" and rep["results"] == results
    assert rep["speedup_vs_fer"] == {"a (pipelined)": 3.0, "a (sequential)": 2.0} and rep["pipeline_gain"] == {"a": 1.5}
    json.dumps(rep, default=float)


def test_median_run_picks_a_real_run_and_lists_every_fps():
    runs = [{"model": "a", "mode": "pipelined", "fps": f, "p50_ms": 1000 / f} for f in (58.0, 61.0, 55.0, 60.0)]
    m = tp.median_run(runs)
    assert m["fps"] == 58.0 and m["p50_ms"] == runs[0]["p50_ms"]          # lower middle of 4, a real row
    assert m["fps_runs"] == [58.0, 61.0, 55.0, 60.0]
    assert tp.median_run(runs[:3])["fps"] == 58.0
    one_failed = tp.median_run([{"model": "a", "error": "exit 1"}, runs[1]])
    assert one_failed["fps"] == 61.0 and one_failed["failed_runs"] == 1 and "failed_runs" not in m
    assert tp.median_run([{"skipped": "none"}, {"skipped": "none"}]) == {"skipped": "none"}


def test_median_runs_groups_rounds_by_model_and_mode():
    def row(model, mode, fps):
        return {"model": model, "mode": mode, "fps": fps}
    rounds = [[row("a", "pipelined", 50.0), row("a", "sequential", 40.0), {"model": "b", "error": "exit 1"}],
              [row("a", "pipelined", 54.0), row("a", "sequential", 38.0), {"model": "b", "error": "exit 1"}],
              [row("a", "pipelined", 52.0), row("a", "sequential", 39.0), {"model": "b", "error": "exit 1"}]]
    out = tp.median_runs(rounds)
    assert [tp.realtime_label(r) for r in out] == ["a (pipelined)", "a (sequential)", "b"]
    assert [r.get("fps") for r in out] == [52.0, 39.0, None] and out[0]["fps_runs"] == [50.0, 54.0, 52.0]
    assert out[2] == {"model": "b", "error": "exit 1"}


def test_realtime_markdown_lists_every_round_when_repeated():
    rep = realtime_report({"model": "fer", "version": "25", "fps": 25.0, "p50_ms": 40.0, "p95_ms": 41.0,
                           "faces_per_frame": 1.0, "detection_ms": 30.0, "classification_ms": 10.0,
                           "fps_runs": [24.0, 25.0, 26.0]})
    rep["settings"]["repeats"] = 3
    rep["results"][0]["fps_runs"] = [49.0, 50.0, 51.5]
    rep["results"][0]["failed_runs"] = 1
    md = tp.realtime_markdown(rep)
    assert ("Repeats: 3 rounds (every model, then fer, in turn); each row is the round with the median FPS. "
            "FPS of every round: vggbn (pipelined) 49.0, 50.0, 51.5 (1 failed); fer 24.0, 25.0, 26.0") in md
    assert "Repeats:" not in tp.realtime_markdown(realtime_report({"skipped": "none"}))


def test_bench_rounds_takes_turns_and_reports_the_median_round(tmp_path):
    worker = tmp_path / "worker.py"
    worker.write_text(FAKE_WORKER)
    fer_fps = iter([21.0, 19.0, 20.0])
    log = []
    results, fer, sweep = tp.bench_rounds([sys.executable, str(worker), "--modes", "pipelined"], ["a", "bad"],
                                          tf_threads=1, sweep=[1], n_frames=5, repeats=3,
                                          fer=lambda: {"model": "fer", "fps": next(fer_fps)}, log=log.append)
    assert [tp.realtime_label(r) for r in results] == ["a (pipelined)", "bad"]
    assert results[0]["fps_runs"] == [20.0, 20.0, 20.0] and results[1]["error"].startswith("exit 1: no such model")
    assert fer == {"model": "fer", "fps": 20.0, "fps_runs": [21.0, 19.0, 20.0]}
    assert sweep == {"a": {"1": 10.0}, "bad": {"1": None}}                      # swept in round 1 only
    assert [line for line in log if "round" in line] == ["[bench] round 1 of 3", "[bench] round 2 of 3",
                                                        "[bench] round 3 of 3"]
    assert log.index("[bench] round 2 of 3") > log.index('[bench] fer: {"model": "fer", "fps": 21.0}')
