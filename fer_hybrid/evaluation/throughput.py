"""Speed, memory and start-up measurements behind experiments/bench_realtime.py, soak_realtime.py,
bench_analyze.py and bench_startup.py, and the markdown/PNG of their reports.

Every timed video run goes through :func:`fer_hybrid.inference.analyzer.run_frames`, the loop the realtime
CLI runs (a :class:`~fer_hybrid.inference.analyzer.VideoSession` from ``Analyzer.session``; pipelined or
sequential), so a benchmark measures the code a user runs, not a copy of it:

- :func:`timed_frames` stamps each frame: ``started`` when stage A takes it from the source (decode or
  copy included), ``finished`` after ``on_frame`` (e.g. the overlay) returns.
- :func:`video_speed`: FPS, frame-interval and latency percentiles, CPU use and the per-stage split.
- :func:`soak`: a long run sampling RSS and window FPS, counting exceptions instead of stopping.

Frames: :func:`load_frames` (decoded once, resized), :func:`cut_clips` / :func:`sample_clips` (short mp4
files), :class:`LoopedFrames` (a video reopened at its end). Machine: :func:`rss_mb`, :func:`loadavg`,
:func:`cpu_busy_fraction`. Processes: :func:`run_process` (wall time + the child's peak RSS) and
:func:`subprocess_json` (a worker's JSON line). bench_realtime: :func:`run_model` (the worker),
:func:`bench_models` (one worker per model), :func:`run_fer` (the fer package), :func:`bench_rounds` (repeated
rounds of both, :func:`median_runs`) and :func:`realtime_report`.
"""
from __future__ import annotations

import collections
import contextlib
import dataclasses
import itertools
import json
import os
import platform
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import traceback
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np

from .. import _atomic
from ..inference.analyzer import PIPELINE_DEPTH, run_frames
from ..video import Frame, SourceError, open_source


# ---------------------------------------------------------------------------------------------
# Frames
# ---------------------------------------------------------------------------------------------
def _resized(image: np.ndarray, size: tuple[int, int] | None = None, width: int | None = None) -> np.ndarray:
    """``image`` resized (INTER_AREA) to ``size`` (w, h), or to ``width`` px wide with an even height."""
    import cv2

    if size is None:
        h, w = image.shape[:2]
        size = (width, int(round(h * width / w / 2)) * 2)
    return cv2.resize(image, tuple(size), interpolation=cv2.INTER_AREA)


def load_frames(video: str | os.PathLike, n: int, size: tuple[int, int]) -> np.ndarray:
    """uint8 (m, h, w, 3) BGR: the first ``n`` decodable frames of ``video`` (m <= n) resized to ``size``
    (w, h). ValueError for n < 1; SourceError when the video cannot be opened or gives no frame."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    with open_source(Path(video)) as src:
        frames = [_resized(f.image, size) for f in itertools.islice(src, n)]
    if not frames:
        raise SourceError(f"no frames read from {video}")
    return np.stack(frames)


def as_frames(images: Iterable[np.ndarray]) -> Iterator[Frame]:
    """:class:`fer_hybrid.video.Frame` items for in-memory images, each a fresh copy (so reading a memory-mapped
    array is part of the frame's stage A, as decoding is for a video)."""
    for i, image in enumerate(images):
        yield Frame(i, 0.0, np.array(image))


def cut_clips(video: str | os.PathLike, n: int, frames: int, width: int, folder: Path) -> list[Path]:
    """Up to ``n`` mp4 clips (``folder``/clipNN.mp4) of ``frames`` consecutive frames of ``video``, resized
    to ``width`` px; the last clip may be shorter when the video ends."""
    from ..video import AtomicVideoWriter

    clips, writer = [], None
    with open_source(Path(video)) as src:
        for j, frame in enumerate(itertools.islice(src, n * frames)):
            k, i = divmod(j, frames)
            image = _resized(frame.image, width=width)
            if i == 0:
                clips.append(Path(folder) / f"clip{k:02d}.mp4")
                writer = AtomicVideoWriter(clips[-1], src.fps, (image.shape[1], image.shape[0]))
            writer.write(image)
            if i == frames - 1:
                writer.close()
                writer = None
    if writer is not None:
        writer.close()
    return clips


def sample_clips(n: int, folder: Path) -> list[Path]:
    """``n`` copies of the bundled sample clip in ``folder`` (sampleNN.mp4)."""
    from ..video import SAMPLE

    clips = [Path(folder) / f"sample{k:02d}.mp4" for k in range(n)]
    for c in clips:
        shutil.copy(SAMPLE, c)
    return clips


class LoopedFrames:
    """``n`` frames of the video ``source``, reopened at its end (decoding stays part of the loop).
    ``loops`` counts the passes begun, ``skipped`` the undecodable frames so far; RuntimeError when a
    pass gives no frame."""

    def __init__(self, source: str, n: int):
        self.source, self.n = source, n
        self.loops, self._skipped, self._src = 0, 0, None

    @property
    def skipped(self) -> int:
        return self._skipped + (self._src.skipped if self._src is not None else 0)

    def __iter__(self) -> Iterator[Frame]:
        done = 0
        while done < self.n:
            got = 0
            with open_source(self.source) as self._src:
                self.loops += 1
                for frame in itertools.islice(self._src, self.n - done):
                    got += 1
                    yield frame
                self._skipped += self._src.skipped
                self._src = None
            if got == 0:
                raise RuntimeError(f"{self.source} yielded no frame")
            done += got


# ---------------------------------------------------------------------------------------------
# Timed runs through the realtime CLI's loop (run_frames)
# ---------------------------------------------------------------------------------------------
@dataclasses.dataclass
class Tick:
    """One finished frame of :func:`timed_frames` (times are ``time.perf_counter()`` seconds)."""

    frame: Frame
    faces: list
    started: float      # when stage A asked the source for this frame
    finished: float     # after on_frame returned
    on_frame_s: float   # time spent in on_frame


def timed_frames(session, frames: Iterable, pipeline: bool = True,
                 on_frame: Callable[[Frame, list], object] | None = None,
                 depth: int = PIPELINE_DEPTH) -> Iterator[Tick]:
    """:func:`~fer_hybrid.inference.analyzer.run_frames` over ``frames`` (items with an ``.image``), calling
    ``on_frame(frame, faces)`` in the caller's thread (as the CLI draws and writes), one :class:`Tick` per
    frame. ``frames`` is iterated with ``next`` only, so an iterator can be resumed by a later call."""
    starts: collections.deque = collections.deque()

    def stamped():
        while True:
            t = time.perf_counter()
            try:
                frame = next(source)
            except StopIteration:
                return
            starts.append(t)
            yield frame

    source = iter(frames)
    with contextlib.closing(run_frames(session, stamped(), pipeline, depth)) as results:
        for frame, faces in results:
            t = time.perf_counter()
            if on_frame is not None:
                on_frame(frame, faces)
            now = time.perf_counter()
            yield Tick(frame, faces, starts.popleft(), now, now - t)


def frame_stats(t0: float, started: Sequence[float], finished: Sequence[float]) -> dict:
    """Speed of frames timed from ``t0`` (seconds, one clock): ``fps`` = frames / (last finish - t0);
    ``p50_ms``/``p95_ms``/``mean_ms`` of the intervals between consecutive finishes (the first from t0:
    1 / throughput); ``latency_p50_ms``/``latency_p95_ms`` of finish - start. ValueError when no frame
    was timed or the two lists differ in length."""
    if not len(finished):
        raise ValueError("no frame was timed")
    if len(started) != len(finished):
        raise ValueError(f"{len(started)} start times for {len(finished)} finish times")
    gaps = np.diff([t0, *finished]) * 1000
    lat = (np.asarray(finished, float) - np.asarray(started, float)) * 1000
    return {"frames": len(gaps), "fps": len(gaps) / max(finished[-1] - t0, 1e-12),
            "p50_ms": float(np.percentile(gaps, 50)), "p95_ms": float(np.percentile(gaps, 95)),
            "mean_ms": float(gaps.mean()), "latency_p50_ms": float(np.percentile(lat, 50)),
            "latency_p95_ms": float(np.percentile(lat, 95))}


def worker_speed(raw: dict) -> dict:
    """The speed of a run timed in another interpreter (experiments/_bench_fer_worker.py), from its raw
    ``t0``, ``started``, ``finished``, ``faces`` and per-frame ``detection_s``: :func:`frame_stats` plus
    ``faces_per_frame``, ``detection_ms`` (mean) and ``classification_ms`` (mean frame time minus detection),
    with the raw ``model`` and ``version``."""
    s = frame_stats(raw["t0"], raw["started"], raw["finished"])
    det = float(np.mean(raw["detection_s"]) * 1000) if len(raw["detection_s"]) else float("nan")
    return {"model": raw.get("model"), "version": raw.get("version"), **s,
            "faces_per_frame": raw["faces"] / s["frames"], "detection_ms": det,
            "classification_ms": max(0.0, s["mean_ms"] - det)}


def video_speed(session, images: Sequence[np.ndarray], *, pipeline: bool = True, warmup: int = 0,
                on_frame: Callable[[Frame, list], object] | None = None, depth: int = PIPELINE_DEPTH) -> dict:
    """Time ``session`` (an ``Analyzer.session()``) over in-memory ``images``: the first ``warmup`` run
    sequentially and untimed, then the rest through :func:`timed_frames`.

    Returns :func:`frame_stats` plus ``cpu_util`` (process CPU time / wall time: 2.0 = two cores busy),
    ``faces_per_frame``, ``<stage>_ms`` per frame from ``session.timings`` (detection, landmarks,
    classification; in the pipelined mode detection runs beside classification, so they overlap) and
    ``on_frame_ms``. ValueError when no frame is left after the warm-up.
    """
    if len(images) <= warmup:
        raise ValueError(f"{len(images)} frames leave none to time after {warmup} warm-up frames")
    collections.deque(timed_frames(session, as_frames(images[:warmup]), False, on_frame), maxlen=0)
    session.timings = dict.fromkeys(session.timings, 0.0)
    started, finished, faces, on_frame_s = [], [], 0, 0.0
    cpu0, t0 = time.process_time(), time.perf_counter()
    for tick in timed_frames(session, as_frames(images[warmup:]), pipeline, on_frame, depth):
        started.append(tick.started)
        finished.append(tick.finished)
        faces += len(tick.faces)
        on_frame_s += tick.on_frame_s
    cpu = time.process_time() - cpu0
    stats = frame_stats(t0, started, finished)
    n = stats["frames"]
    return {**stats, "cpu_util": cpu / max(finished[-1] - t0, 1e-12), "faces_per_frame": faces / n,
            **{f"{k}_ms": v / n * 1000 for k, v in session.timings.items()}, "on_frame_ms": on_frame_s / n * 1000}


def batch1_ms_per_face(predictor, image: np.ndarray, repeats: int = 50) -> float:
    """Median ms of ``predictor.predict_proba([crop])`` on one gray crop of ``image``'s centre (the middle
    half of the rows, the middle third of the columns); NaN for a predictor without ``predict_proba``."""
    from ..evaluate import ms_per_face
    from ..images import to_gray

    if not hasattr(predictor, "predict_proba"):
        return float("nan")
    gray = to_gray(np.asarray(image))
    h, w = gray.shape[:2]
    face = gray[h // 4: 3 * h // 4, w // 3: 2 * w // 3]
    return ms_per_face(lambda f: predictor.predict_proba([f]), face, repeats)


# ---------------------------------------------------------------------------------------------
# Memory and machine
# ---------------------------------------------------------------------------------------------
def rss_source() -> str:
    """Where :func:`rss_mb` reads the resident set size: "psutil" when installed, else /proc."""
    import importlib.util

    return "psutil" if importlib.util.find_spec("psutil") else "/proc/self/status VmRSS"


def rss_mb() -> float:
    """Resident set size of this process in MB (psutil, else VmRSS of /proc/self/status); RuntimeError
    when neither is available."""
    if rss_source() == "psutil":
        import psutil

        return psutil.Process().memory_info().rss / 2**20
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024  # kB -> MB
    except OSError:
        pass
    raise RuntimeError("cannot read RSS: no psutil and no VmRSS in /proc/self/status")


def rss_growth(samples: Sequence[dict], start_frame: int) -> dict:
    """RSS change from the first sample at or after ``start_frame`` (the first sample when fewer than two
    samples are that late) to the last sample, and the peak. ``samples`` have "frame" and "rss_mb"."""
    if not samples:
        raise ValueError("no RSS samples")
    later = [s for s in samples if s["frame"] >= start_frame and s["frame"] > 0]
    first = later[0] if len(later) > 1 else samples[0]
    last = samples[-1]
    return {"from_frame": first["frame"], "to_frame": last["frame"], "from_mb": first["rss_mb"],
            "to_mb": last["rss_mb"], "growth_mb": round(last["rss_mb"] - first["rss_mb"], 2),
            "peak_mb": max(s["rss_mb"] for s in samples)}


def loadavg() -> list[float] | None:
    """The 1, 5 and 15 min load averages, rounded to 0.01; None where the OS has none."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def cpu_busy_fraction(seconds: float = 2.0) -> float:
    """Share of all CPU time that was busy over the next ``seconds`` (from /proc/stat; 0.0 where unavailable).
    Unlike the load average it does not lag: a run that just ended does not count."""
    def snap():
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        return sum(v), v[3] + (v[4] if len(v) > 4 else 0)   # total, idle + iowait
    try:
        t0, i0 = snap()
        time.sleep(seconds)
        t1, i1 = snap()
    except OSError:
        return 0.0
    return round(1.0 - (i1 - i0) / max(1, t1 - t0), 3)


def machine() -> dict:
    """CPU architecture, cores, python version and the load average now. Light on purpose (unlike
    :func:`fer_hybrid.evaluate.environment`, which imports sklearn, ~150 MB): a soak measures its own RSS."""
    return {"cpu": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
            "python": platform.python_version(), "loadavg_start": loadavg()}


# ---------------------------------------------------------------------------------------------
# Soak: a long run, sampled
# ---------------------------------------------------------------------------------------------
def soak(session, frames: Iterable, total: int, every: int, *, pipeline: bool = True,
         on_frame: Callable[[Frame, list], object] | None = None, progress: bool = False) -> dict:
    """Run ``session`` over up to ``total`` of ``frames`` through :func:`timed_frames`; every ``every``
    frames (and at the end) sample RSS, seconds, window FPS, faces, ``frames.skipped`` and crashes.

    An exception from a frame (detection, classification or ``on_frame``) is a crash: counted, its first
    5 messages kept, and the run goes on with the next frame (with ``pipeline`` the frames already read
    ahead are dropped and counted in ``dropped_frames``). ValueError for total or every < 1.
    """
    if total < 1 or every < 1:
        raise ValueError(f"total and every must be >= 1, got {total} and {every}")
    from tqdm import tqdm

    source = itertools.islice(frames, total)
    skipped = lambda: getattr(frames, "skipped", 0)  # noqa: E731
    c = {"frames": 0, "faces": 0, "labelled": 0, "crashes": 0}
    messages: list[str] = []
    samples = [{"frame": 0, "rss_mb": round(rss_mb(), 2), "seconds": 0.0, "window_fps": None, "faces": 0,
                "skipped": 0, "crashes": 0}]
    t_start = t_win = time.perf_counter()
    bar = tqdm(total=total, disable=not progress, unit="frame", mininterval=5)

    def crash(e: Exception) -> None:
        c["crashes"] += 1
        if len(messages) < 5:
            where = traceback.extract_tb(e.__traceback__)[-1]
            messages.append(f"frame {c['frames']}: {type(e).__name__}: {e} | "
                            f"{Path(where.filename).name}:{where.lineno}: {where.line}")

    def sample(force: bool = False) -> None:
        nonlocal t_win
        n = c["frames"]
        if n == samples[-1]["frame"] or not (force or n % every == 0):
            return
        now = time.perf_counter()
        samples.append({"frame": n, "rss_mb": round(rss_mb(), 2), "seconds": round(now - t_start, 2),
                        "window_fps": round((n - samples[-1]["frame"]) / max(now - t_win, 1e-9), 2),
                        "faces": c["faces"], "skipped": skipped(), "crashes": c["crashes"]})
        t_win = now

    def done_one() -> None:
        c["frames"] += 1
        bar.update()
        sample()

    while True:
        try:
            for tick in timed_frames(session, source, pipeline):
                try:
                    if on_frame is not None:
                        on_frame(tick.frame, tick.faces)
                    c["faces"] += len(tick.faces)
                    c["labelled"] += sum(f.label is not None for f in tick.faces)
                except Exception as e:  # a soak counts crashes instead of stopping
                    crash(e)
                done_one()
            break
        except Exception as e:  # from detection/classification: that frame is lost, the run goes on
            crash(e)
            done_one()
            if c["frames"] >= total:  # never loop on a source that fails without giving frames
                break
    bar.close()
    sample(force=True)
    seconds = time.perf_counter() - t_start
    n = c["frames"]
    return {"frames": n, "seconds": round(seconds, 2), "fps": round(n / seconds, 2) if seconds else None,
            "faces": c["faces"], "faces_labelled": c["labelled"], "undecodable_frames": skipped(),
            "dropped_frames": total - n, "crashes": c["crashes"], "crash_messages": messages, "samples": samples,
            "timings_s": {k: round(v, 2) for k, v in session.timings.items()}}


# ---------------------------------------------------------------------------------------------
# Processes
# ---------------------------------------------------------------------------------------------
@dataclasses.dataclass
class ProcessRun:
    """A finished child process: wall ``seconds`` from spawn to exit, its own peak ``rss_mb``, exit ``code``."""

    seconds: float
    rss_mb: float
    code: int
    stdout: str
    stderr: str
    timed_out: bool = False

    @property
    def last_line(self) -> str:
        return (self.stdout.strip().splitlines() or [""])[-1][:200]

    @property
    def error(self) -> str | None:
        """None after exit 0, else "exit N: <last stderr line>" ("timed out after ..." when killed)."""
        if self.code == 0:
            return None
        if self.timed_out:
            return "timed out (killed)"
        return f"exit {self.code}: {(self.stderr.strip().splitlines() or ['no output'])[-1][:300]}"


def run_process(cmd: Sequence[str], *, timeout: float | None = None, env: dict | None = None,
                cwd: str | os.PathLike | None = None) -> ProcessRun:
    """Run ``cmd`` with ``env`` over this environment (TensorFlow's C++ logs off unless ``env`` says
    otherwise); a child still running after ``timeout`` s is killed. Unix (``os.wait4``)."""
    full = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **(env or {})}
    killed = threading.Event()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(list(cmd), stdout=out, stderr=err, env=full, cwd=cwd)

        def kill():  # os.kill, not proc.kill: Popen.poll could reap the child before os.wait4 reads its usage
            killed.set()
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGKILL)

        timer = threading.Timer(timeout, kill) if timeout else None
        if timer:
            timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
            seconds = time.perf_counter() - t0
            proc.returncode = os.waitstatus_to_exitcode(status)
        finally:
            if timer:
                timer.cancel()
        out.seek(0), err.seek(0)
        return ProcessRun(seconds, usage.ru_maxrss / 1024, proc.returncode, out.read().decode(errors="replace"),
                          err.read().decode(errors="replace"), killed.is_set())


def subprocess_json(cmd: Sequence[str], timeout: float | None = None, env: dict | None = None) -> dict:
    """The last stdout line of ``cmd`` that starts with "{", parsed; {"error": ...} (see
    :attr:`ProcessRun.error`) when the command fails or prints no such line."""
    r = run_process(cmd, timeout=timeout, env=env)
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("{")]
    if r.code != 0 or not lines:
        return {"error": r.error or "exit 0: no JSON line on stdout"}
    return json.loads(lines[-1])


def startup_summary(runs: Sequence[ProcessRun]) -> dict:
    """Median and min seconds, median peak RSS and the last output line over the runs that exited 0;
    {"error": the last run's error} when none did."""
    ok = [r for r in runs if r.code == 0]
    if not ok:
        return {"error": runs[-1].error if runs else "no runs"}
    s = [r.seconds for r in ok]
    return {"runs": len(ok), "median_s": float(np.median(s)), "min_s": float(np.min(s)),
            "median_rss_mb": float(np.median([r.rss_mb for r in ok])), "example_output": ok[-1].last_line}


def scaling_summary(runs: Sequence[dict]) -> dict:
    """Per worker count ("1", "2", ...): the median over its runs of each rate and time, and ``runs``; with
    both 1 and 2 workers also ``speedup_2_over_1`` (frames/s while processing) and its end-to-end twin."""
    by = {}
    keys = ("files_per_s", "frames_per_s", "files_per_s_end_to_end", "frames_per_s_end_to_end", "setup_s",
            "process_s", "total_s")
    for w in sorted({r["workers"] for r in runs}):
        rs = [r for r in runs if r["workers"] == w]
        by[str(w)] = {k: round(float(np.median([r[k] for r in rs])), 3) for k in keys}
        by[str(w)]["runs"] = len(rs)
    if "1" in by and "2" in by:
        by["speedup_2_over_1"] = round(by["2"]["frames_per_s"] / by["1"]["frames_per_s"], 3)
        by["speedup_2_over_1_end_to_end"] = round(by["2"]["frames_per_s_end_to_end"]
                                                  / by["1"]["frames_per_s_end_to_end"], 3)
    return by


# ---------------------------------------------------------------------------------------------
# bench_realtime: one model per worker process, the fer package in its own interpreter
# ---------------------------------------------------------------------------------------------
REALTIME_MODES = ("pipelined", "sequential")  # the CLI's default first
FER_INSTALL = ("python -m venv /work/venv-fer && /work/venv-fer/bin/pip install --no-deps fer && "
               "/work/venv-fer/bin/pip install tensorflow-cpu 'opencv-python-headless<5' pandas requests pillow tqdm "
               "'setuptools<81'")


def run_model(model: str, frames_file: str | os.PathLike, draw: Callable, *, models_dir=None, tf_threads: int = 1,
              modes: Sequence[str] = REALTIME_MODES, detect_every: int = 3, detect_width: int | None = 480,
              warmup: int = 0, depth: int = PIPELINE_DEPTH, sweep_only: bool = False) -> dict:
    """Worker: ``model`` in this process (one ``Analyzer``, TF intra-op threads ``tf_threads``) on the frames
    saved in ``frames_file`` (.npy) -> {"runs": one :func:`video_speed` row per mode, each with a fresh
    ``Analyzer.session()`` and ``draw(image, faces, classes, False)`` (the overlay) as on_frame}; with
    ``sweep_only`` the model's :func:`batch1_ms_per_face` instead. Rows carry model, kind, threads, load seconds."""
    from ..inference.analyzer import Analyzer
    from ..keras_io import configure_tensorflow_threads
    from ..predictors import model_spec

    configure_tensorflow_threads(tf_threads)
    t0 = time.perf_counter()
    analyzer = Analyzer(model, models_dir=models_dir)
    base = {"model": model, "kind": model_spec(model).kind, "tf_intra_op_threads": tf_threads,
            "load_seconds": time.perf_counter() - t0}
    frames = np.load(frames_file, mmap_mode="r")
    if sweep_only:
        return {**base, "ms_per_face": batch1_ms_per_face(analyzer.predictor, frames[0])}
    runs = []
    for mode in modes:
        session = analyzer.session(detect_every, 0.5, detect_width or None)
        r = video_speed(session, frames, pipeline=mode == "pipelined", warmup=warmup, depth=depth,
                        on_frame=lambda f, faces: draw(f.image, faces, analyzer.classes, False))
        r["overlay_ms"] = r.pop("on_frame_ms")
        r["landmarks_ms"] = r["landmarks_ms"] or None  # 0: not reported apart (inside classification)
        runs.append({**base, "mode": mode, **r})
    return {"runs": runs}


def bench_models(worker_cmd: Sequence[str], models: Sequence[str], *, tf_threads: int, sweep: Sequence[int],
                 n_frames: int, env: dict | None = None, log: Callable[[str], object] | None = None) -> tuple[list, dict]:
    """(rows, thread sweep) of each model, each run by ``worker_cmd`` + ``--worker MODEL --tf-threads N`` in
    its own process (:func:`run_model` there): its end-to-end rows per mode ({"model", "error"} when the worker
    failed) and {model: {threads: batch-1 ms/face}} for each thread count of ``sweep``."""
    say = log or (lambda _: None)
    results, sweep_rows = [], {}
    for m in models:
        say(f"[bench] {m} (end to end, {n_frames} frames)")
        r = subprocess_json([*worker_cmd, "--worker", m, "--tf-threads", str(tf_threads)], 3600, env)
        runs = r.get("runs") or [{"model": m, **r}]
        results.extend(runs)
        for run in runs:
            got = f"{run['fps']:.1f} FPS, CPU {run['cpu_util']:.2f}" if "fps" in run else run.get("error", "?")
            say(f"[bench]   {realtime_label(run)}: {got}")
        for t in sweep:
            r = subprocess_json([*worker_cmd, "--worker", m, "--tf-threads", str(t), "--thread-sweep-only"], 600, env)
            sweep_rows.setdefault(m, {})[str(t)] = r.get("ms_per_face")
    return results, sweep_rows


def run_fer(python: str, worker: str | os.PathLike, frames_file: str | os.PathLike, warmup: int) -> dict:
    """The fer package's FER() on the same frames, timed by ``worker`` (experiments/_bench_fer_worker.py) in the
    interpreter ``python`` -> :func:`worker_speed`; {'skipped': why} when ``python`` is "none"/"" or absent, or
    cannot import fer; {'error': ...} when the worker fails otherwise."""
    if python in ("", "none"):
        return {"skipped": "skipped (--fer-python none)"}
    if not Path(python).exists():
        return {"skipped": f"skipped: no python at {python} (install fer into a separate venv: {FER_INSTALL})"}
    r = subprocess_json([python, str(worker), str(frames_file), "--warmup", str(warmup)], 3600)
    if "error" not in r:
        return worker_speed(r)
    if "No module named" in r["error"]:
        return {"skipped": f"skipped: `fer` not importable by {python} ({r['error']})"}
    return r


def median_run(runs: Sequence[dict]) -> dict:
    """The run with the median FPS of repeated runs of one model and mode (of an even count, the lower of the
    middle two: a real run, never an average), with ``fps_runs`` = every run's FPS in the order they ran.
    Runs without ``fps`` (errors) are counted in ``failed_runs`` (when any); with no timed run, the first run
    is returned."""
    timed = [r for r in runs if "fps" in r]
    if not timed:
        return dict(runs[0])
    middle = sorted(timed, key=lambda r: r["fps"])[(len(timed) - 1) // 2]
    failed = {"failed_runs": len(runs) - len(timed)} if len(timed) < len(runs) else {}
    return {**middle, "fps_runs": [r["fps"] for r in timed], **failed}


def median_runs(rounds: Sequence[Sequence[dict]]) -> list[dict]:
    """One :func:`median_run` per "model (mode)" over ``rounds`` (each a list of rows of one pass over every
    model), in the order of the first round."""
    groups: dict[str, list[dict]] = {}
    for rows in rounds:
        for r in rows:
            groups.setdefault(realtime_label(r), []).append(r)
    return [median_run(g) for g in groups.values()]


def bench_rounds(worker_cmd: Sequence[str], models: Sequence[str], *, tf_threads: int, sweep: Sequence[int],
                 n_frames: int, repeats: int = 1, fer: Callable[[], dict] = lambda: {"skipped": "skipped"},
                 env: dict | None = None, log: Callable[[str], object] | None = None) -> tuple[list, dict, dict]:
    """(rows, fer row, thread sweep) of ``repeats`` rounds, each :func:`bench_models` over every model and then
    ``fer()`` (e.g. :func:`run_fer`), in turn, so that a slow spell of the machine hits every row alike. Rows are
    :func:`median_runs` of the rounds, the fer row their :func:`median_run`; the thread sweep runs in round 1 only."""
    say = log or (lambda _: None)
    rounds, fers, sweep_rows = [], [], {}
    for k in range(repeats):
        say(f"[bench] round {k + 1} of {repeats}")
        rows, swept = bench_models(worker_cmd, models, tf_threads=tf_threads, sweep=sweep if k == 0 else [],
                                   n_frames=n_frames, env=env, log=log)
        rounds.append(rows)
        if k == 0:
            sweep_rows = swept
        fers.append(fer())
        say(f"[bench] fer: {json.dumps(fers[-1])[:300]}")
    return median_runs(rounds), median_run(fers), sweep_rows


def realtime_report(*, command: str, settings: dict, results: Sequence[dict], fer: dict, thread_sweep: dict,
                    loadavg_start: list | None) -> dict:
    """benchmark.json of bench_realtime (kind "benchmark"): date, command, environment, load average at the
    start and now, ``settings``, the rows, fer's row, :func:`realtime_ratios` and the thread sweep."""
    import datetime as dt

    from ..evaluate import environment   # imported here: it pulls in sklearn, which a worker does not need

    return {"kind": "benchmark", "name": "bench-realtime", "date": dt.datetime.now().isoformat(timespec="seconds"),
            "command": command, "env": environment(), "loadavg_start": loadavg_start, "loadavg_end": loadavg(),
            "settings": settings, "results": list(results), "fer": fer, **realtime_ratios(results, fer),
            "thread_sweep": thread_sweep}


# ---------------------------------------------------------------------------------------------
# Reports
# ---------------------------------------------------------------------------------------------
def save_report(folder: str | os.PathLike, stem: str, report: dict, markdown: str) -> tuple[Path, Path]:
    """Write ``folder``/``stem``.json and ``stem``.md atomically (numpy numbers as floats)."""
    folder = Path(folder)
    return (_atomic.write_text(folder / f"{stem}.json", json.dumps(report, indent=2, default=float) + "\n"),
            _atomic.write_text(folder / f"{stem}.md", markdown))


def _f(v, digits: int = 1) -> str:
    return "-" if v is None or (isinstance(v, float) and np.isnan(v)) else f"{v:.{digits}f}"


def realtime_label(r: dict) -> str:
    """A bench_realtime row's name: "model (mode)"."""
    return f"{r['model']} ({r['mode']})" if r.get("mode") else r["model"]


def realtime_ratios(results: Sequence[dict], fer: dict) -> dict:
    """``speedup_vs_fer``: FPS over fer's per "model (mode)" row (empty without a fer FPS); ``pipeline_gain``:
    pipelined over sequential FPS per model timed in both modes. Rows without ``fps`` (errors) are left out."""
    fps = {(r["model"], r.get("mode")): r["fps"] for r in results if "fps" in r}
    return {"speedup_vs_fer": {realtime_label(r): r["fps"] / fer["fps"]
                               for r in results if "fps" in r and fer.get("fps")},
            "pipeline_gain": {m: fps[m, "pipelined"] / fps[m, "sequential"] for m, mode in fps
                              if mode == "pipelined" and (m, "sequential") in fps}}


def realtime_markdown(rep: dict) -> str:
    """benchmark.md of bench_realtime: one row per model and mode, fer's row, ratios and the thread sweep."""
    s = rep["settings"]
    lines = [f"# Realtime benchmark ({rep['date'][:10]})", "",
             f"{s['frames']} frames of `{s['video']}` resized to {s['size']}, after {s['warmup']} warm-up frames; "
             f"detection every {s['detect_every']} frames on a copy {s['detect_width']} px wide, dlib correlation "
             f"tracking in between; model runtime (TensorFlow / onnxruntime) intra-op threads {s['tf_threads']}. "
             f"Every run is the realtime CLI's loop (`Analyzer.session` + `run_frames`) plus its overlay drawing. "
             f"Modes: pipelined (CLI default: decode + detection/tracking + landmarks and crops of the next frames "
             f"in a background thread, queue depth {s['depth']}, while the main thread classifies, draws and "
             f"writes) and sequential (`--no-pipeline`). "
             f"CPU: {rep['env'].get('cpu')}, {rep['env'].get('cpu_count')} cores; load average at start "
             f"{rep['loadavg_start']}, at end {rep.get('loadavg_end')}.", "",
             "| model (mode) | FPS | frame p50 ms | frame p95 ms | latency p50 ms | latency p95 ms | CPU | "
             "detection ms | landmarks ms | classification ms | overlay ms | faces/frame |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rep["results"]:
        if "error" in r:
            lines.append(f"| {realtime_label(r)} | error: {r['error']} |||||||||||")
            continue
        lines.append(f"| {realtime_label(r)} | {_f(r['fps'])} | {_f(r['p50_ms'])} | {_f(r['p95_ms'])} | "
                     f"{_f(r.get('latency_p50_ms'))} | {_f(r.get('latency_p95_ms'))} | {_f(r.get('cpu_util'), 2)} | "
                     f"{_f(r['detection_ms'])} | {_f(r['landmarks_ms'])} | {_f(r['classification_ms'])} | "
                     f"{_f(r['overlay_ms'])} | {r['faces_per_frame']:.2f} |")
    fer = rep["fer"]
    if "skipped" in fer or "error" in fer:
        lines += ["", f"`fer` package: {fer.get('skipped') or fer.get('error')}"]
    else:
        lines.append(f"| fer {fer['version']} (Haar + mini-Xception TFLite) | {_f(fer['fps'])} | "
                     f"{_f(fer['p50_ms'])} | {_f(fer['p95_ms'])} | {_f(fer.get('latency_p50_ms'))} | "
                     f"{_f(fer.get('latency_p95_ms'))} | - | {_f(fer['detection_ms'])} | - | "
                     f"{_f(fer['classification_ms'])} | - | {fer['faces_per_frame']:.2f} |")
        lines += ["", "Speed-up over fer (FPS ratio): " + ", ".join(
            f"{m}: {x:.2f}x" for m, x in rep["speedup_vs_fer"].items())]
    if rep.get("pipeline_gain"):
        lines += ["", "Pipelined over sequential (FPS ratio, same process): " + ", ".join(
            f"{m}: {x:.2f}x" for m, x in rep["pipeline_gain"].items())]
    if s.get("repeats", 1) > 1:
        lines += ["", f"Repeats: {s['repeats']} rounds (every model, then fer, in turn); each row is the round with "
                  "the median FPS. FPS of every round: " + "; ".join(
                      f"{realtime_label(r)} {', '.join(_f(v) for v in r['fps_runs'])}"
                      + (f" ({r['failed_runs']} failed)" if r.get("failed_runs") else "")
                      for r in [*rep["results"], {**fer, "model": "fer"}] if r.get("fps_runs"))]
    if rep.get("thread_sweep"):
        lines += ["", "## Model runtime intra-op threads (batch-1 classification, median ms per face)", "",
                  "| model | " + " | ".join(f"threads={t if t else 'default'}" for t in s["thread_sweep"]) + " |",
                  "|---|" + "---:|" * len(s["thread_sweep"])]
        for m, row in rep["thread_sweep"].items():
            lines.append(f"| {m} | " + " | ".join(_f(row.get(str(t))) for t in s["thread_sweep"]) + " |")
    lines += ["", "FPS = timed frames / wall time of the timed loop. Frame p50/p95 are the intervals between "
              "consecutive finished frames (1 / throughput); latency is from the moment stage A takes a frame from "
              "the source to its finished overlay (in the pipelined mode it includes waiting in the queue). CPU is "
              "process CPU time / wall time (2.0 = both cores busy). Stage columns are per-frame means of wall time; "
              "in the pipelined mode detection (and, for crop models, landmarks and cropping) runs in the "
              "background thread at the same time as classification, so the stage columns add up to more than the "
              "frame time (and what is timed in that thread includes waits for the CPU/GIL). Landmarks of a crop "
              "model are placed by the Analyzer (for the aligned crop) and timed there; a frame model's landmarks "
              "are shown only when it reports them (`last_timings`), otherwise they are inside classification. "
              "Classification includes cropping. fer runs sequentially (its own "
              "API, one call per frame); its latency is the time of one `detect_emotions` call, and its detection "
              "column is its `find_faces` (OpenCV Haar) timed in a second pass.", "",
              f"Command: `{rep['command']}`", ""]
    return "\n".join(lines)


def soak_markdown(rep: dict) -> str:
    """soak.md: the run's figures, RSS growth against the target, verdict and the sample table."""
    g, r, t, st = rep["rss"], rep["result"], rep["target"], rep["settings"]
    verdict = ("PASS" if rep["passed"] else "FAIL") if r["frames"] >= t["min_frames"] else \
        f"not judged (target applies to >= {t['min_frames']:,} frames; this run has {r['frames']:,})"
    env = rep["environment"]
    lines = [
        "# Realtime soak", "",
        f"- command: `{rep['command']}`",
        f"- model: `{rep['model']}` from `{rep['models_dir']}`"
        + (f" ({rep['model_note']})" if rep.get("model_note") else ""),
        f"- source: `{rep['source']}` looped {r['video_loops']} time(s), headless; runner "
        f"({'pipelined' if st.get('pipeline', False) else 'sequential'}): detect every {st['detect_every']} frames "
        f"at {st['detect_width']} px, EMA alpha {st['smoothing']}, TF threads {st['tf_threads']}",
        f"- {r['frames']:,} frames in {r['seconds']:.1f} s = **{r['fps']:.1f} FPS** (decode + detect/track + "
        f"classify + overlay + JSON), {r['faces']:,} faces ({r['faces_labelled']:,} labelled)",
        f"- undecodable frames: {r['undecodable_frames']}; dropped frames: {r['dropped_frames']}; "
        f"crashes (caught exceptions): **{r['crashes']}**",
        f"- RSS: {g['from_mb']:.1f} MB at frame {g['from_frame']:,} -> {g['to_mb']:.1f} MB at frame "
        f"{g['to_frame']:,}: growth **{g['growth_mb']:+.1f} MB** (target < {t['rss_growth_mb_lt']:.0f} MB); peak "
        f"{g['peak_mb']:.1f} MB; RSS source {rep['rss_source']}",
        f"- verdict: **{verdict}**",
        f"- machine: {env['cpu']} x {env['cpu_count']} cores, load average at start {env['loadavg_start']}, "
        f"python {env['python']}, date {rep['date']}",
        "", "![RSS over frames](rss.png)", "",
        "| frame | RSS MB | seconds | window FPS | faces | undecodable | crashes |",
        "|---:|---:|---:|---:|---:|---:|---:|"]
    for s in r["samples"]:
        fps = "–" if s["window_fps"] is None else f"{s['window_fps']:.1f}"
        lines.append(f"| {s['frame']:,} | {s['rss_mb']:.1f} | {s['seconds']:.1f} | {fps} | {s['faces']:,} | "
                     f"{s['skipped']} | {s['crashes']} |")
    if r["crash_messages"]:
        lines += ["", "## First crash messages", ""] + [f"- `{m}`" for m in r["crash_messages"]]
    return "\n".join(lines) + "\n"


def soak_plot(rep: dict, path: str | os.PathLike) -> Path:
    """rss.png: RSS over frames with the target line (the baseline sample's RSS + the allowed growth)."""
    from ..reports import pyplot, save_figure

    plt = pyplot()
    s, g, target = rep["result"]["samples"], rep["rss"], rep["target"]["rss_growth_mb_lt"]
    fig, ax = plt.subplots(figsize=(8, 3.6))
    ax.plot([x["frame"] for x in s], [x["rss_mb"] for x in s], marker="o", markersize=3)
    ax.axhline(g["from_mb"] + target, color="red", linestyle="--", linewidth=0.8,
               label=f"frame-{g['from_frame']:,} RSS + {target:.0f} MB (target)")
    ax.set_xlabel("frame")
    ax.set_ylabel("RSS (MB)")
    ax.set_title(f"soak: {rep['model']}, {rep['result']['frames']:,} frames, {rep['result']['fps']:.1f} FPS")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path)


def scaling_load_note(busy: float, under_load: bool) -> str:
    """What the machine's state means for bench_analyze's numbers; ``busy`` = :func:`cpu_busy_fraction` before
    the first run."""
    if under_load:
        return (f"the cores were shared with other work while these timings were taken (CPU {100 * busy:.0f} % busy "
                "in the 2 s before the first run), so absolute rates are lower than on an idle machine and the "
                "2-worker speed-up is limited by the CPU the other work leaves free.")
    return ("nothing else was running. One worker already uses both cores: its videos are pipelined (decoding and "
            "detection/tracking in a second thread while the model classifies), so a second worker process adds "
            "contention and Dask overhead, not a free core (the CPU column of experiments/reports/bench-realtime "
            "shows how busy one pipelined process keeps the 2 cores).")


def scaling_markdown(rep: dict) -> str:
    """scaling.md of bench_analyze: medians per worker count, the speed-up, every run and the failed ones."""
    s, env = rep["summary"], rep["environment"]
    lines = [
        "# Batch analysis: 1 vs 2 workers", "",
        f"- command: `{rep['command']}`",
        f"- inputs: {rep['clips']} clips x {rep['frames_per_clip']} frames ({rep['input_note']}); model "
        f"`{rep['model']}`; detection every {rep['settings']['detect_every']} frames at "
        f"{rep['settings']['detect_width']} px; TensorFlow threads per process {rep['settings']['tf_threads']}",
        "- 1 worker = in-process (no Dask); 2 workers = Dask LocalCluster, 2 processes x 1 thread, started and "
        "stopped by each run",
        f"- {'**timings taken under load**' if rep['under_load'] else 'idle machine'}: {rep['load_note']} "
        f"Load average (1, 5, 15 min) at start {rep['loadavg_start']}, at end {rep['loadavg_end']}; per run below.",
        f"- tables and summaries identical between 1 and 2 workers (byte for byte): **{rep['tables_identical']}**",
        f"- machine: {env['cpu']} x {env['cpu_count']} cores; python {env['versions'].get('python')}, dask "
        f"{rep['dask']}; date {rep['date']}; git {env.get('git_commit')}",
        "", "| workers | runs | files/s | frames/s | end-to-end files/s | end-to-end frames/s | setup s | process s |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for w in ("1", "2"):
        if w in s:
            r = s[w]
            lines.append(f"| {w} | {r['runs']} | {r['files_per_s']:.3f} | {r['frames_per_s']:.2f} | "
                         f"{r['files_per_s_end_to_end']:.3f} | {r['frames_per_s_end_to_end']:.2f} | "
                         f"{r['setup_s']:.1f} | {r['process_s']:.1f} |")
    if "speedup_2_over_1" in s:
        lines += ["", f"2 workers over 1 (median frames/s): **{s['speedup_2_over_1']:.2f}x** while processing, "
                      f"{s['speedup_2_over_1_end_to_end']:.2f}x end to end (with cluster start and model loading)."]
    lines += ["", "Medians over the runs. Rates over `process` (analysing the clips and writing every output); "
                  "end-to-end rates include `setup` (cluster start, model loading in each worker). A 1-worker run "
                  "after the first reuses the model this process already loaded (setup near 0 s); every 2-worker "
                  "run starts a new cluster.", "",
              "![frames/s](scaling.png)", "", "## Runs", "",
              "| # | workers | frames | process s | setup s | frames/s | load before | load after |",
              "|---:|---:|---:|---:|---:|---:|---|---|"]
    for i, r in enumerate(rep["runs"], 1):
        lines.append(f"| {i} | {r['workers']} | {r['frames']} | {r['process_s']:.2f} | {r['setup_s']:.2f} | "
                     f"{r['frames_per_s']:.2f} | {r['loadavg_before']} | {r['loadavg_after']} |")
    if rep["failed_runs"]:
        lines += ["", "## Failed runs", ""] + [f"- {f['workers']} worker(s), repeat {f['repeat']}: `{f['error']}` "
                                               f"(load {f['loadavg']})" for f in rep["failed_runs"]]
    return "\n".join(lines) + "\n"


def scaling_plot(rep: dict, path: str | os.PathLike) -> Path:
    """scaling.png: median frames/s per worker count as bars, every run as a dot."""
    from ..reports import pyplot, save_figure

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.4))
    for r in rep["runs"]:
        ax.scatter(r["workers"], r["frames_per_s"], color="grey", s=14, zorder=3)
    ws = [w for w in ("1", "2") if w in rep["summary"]]
    ax.bar([int(w) for w in ws], [rep["summary"][w]["frames_per_s"] for w in ws], width=0.5, color="#1f77b4",
           label="median frames/s")
    ax.set_xticks([int(w) for w in ws])
    ax.set_xlabel("workers")
    ax.set_ylabel("frames/s (processing)")
    ax.set_title(f"analyze: {rep['clips']} clips x {rep['frames_per_clip']} frames, {rep['model']}"
                 + (" (under load)" if rep["under_load"] else ""), fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path)


def startup_markdown(rep: dict) -> str:
    """benchmark.md of bench_startup: one row per tool and the time ratios to fer."""
    la = lambda v: " ".join(map(str, v)) if v else "n/a"  # noqa: E731
    lines = [f"# Time to the first label for one photo ({rep['date'][:10]})", "",
             f"Whole process, spawn to exit, {rep['runs_per_tool']} runs per tool alternating; photo "
             f"`{Path(rep['photo']).name}`; load average {la(rep['loadavg_start'])} at start, "
             f"{la(rep['loadavg_end'])} at end.", "",
             "| tool | median s | min s | median peak RSS MB | output |", "|---|---:|---:|---:|---|"]
    for k, r in rep["results"].items():
        lines.append(f"| {k} | error: {r['error']} |||" if "error" in r else
                     f"| {k} | {r['median_s']:.2f} | {r['min_s']:.2f} | {r['median_rss_mb']:.0f} | "
                     f"{r['example_output'][:60]} |")
    if rep["time_ratio_vs_fer"]:
        lines += ["", "Median time relative to fer: " + ", ".join(
            f"{k}: {v:.2f}x" for k, v in rep["time_ratio_vs_fer"].items())]
    return "\n".join(lines + ["", f"Command: `{rep['command']}`", ""])
