"""Realtime speed benchmark: end-to-end FPS and p50/p95 per-frame times at 640x480, per shipped model and
per runner mode (pipelined = the CLI default, sequential = ``--no-pipeline``), split into detection /
landmarks / classification, beside the `fer` PyPI package on the same frames.

    python experiments/bench_realtime.py                         # every shipped model, both modes, + fer
    python experiments/bench_realtime.py --models-dir /tmp/m --models vggbn --frames 100 --fer-python none
    python experiments/bench_realtime.py --models vggbn landmarks --frames 150 --thread-sweep '' --out /tmp/b

Frames: the first ``--frames`` frames of the shared Pexels clip, resized to 640x480 (INTER_AREA), decoded
once and saved to a temporary .npy so that every model and the fer worker see identical pixels. Each model
runs in its own subprocess (TensorFlow's thread pools are fixed per process); inside it, each mode gets
its own runner, warm-up frames, then the timed frames through :func:`fer_hybrid.realtime.stream` +
``RealtimeRunner.classify`` + overlay drawing, exactly as the CLI loop does (frames come from memory:
no video decode/encode). FPS = frames / wall time of the timed loop. "frame p50/p95" are the intervals
between consecutive finished frames (1 / throughput); "latency p50/p95" is from the start of a frame's
detection/tracking to its finished overlay (in the pipelined mode it includes waiting in the queue).
"CPU" is process CPU time / wall time (2.0 = both cores busy): the overlap measured, not assumed.
``--thread-sweep`` also times batch-1 classification per face for other TF intra-op thread counts.
fer runs in its own venv (default /work/venv-fer; its torch/numpy pins clash with ours) via
experiments/_bench_fer_worker.py; it is skipped with a message when absent.
Writes experiments/reports/bench-realtime/benchmark.json + benchmark.md (kind "benchmark").
For quiet numbers pause other CPU jobs while it runs.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

VIDEO = ROOT.parent / "shared" / "video" / "WolfgangLanger_Pexels.mp4"
OUT = ROOT / "experiments" / "reports" / "bench-realtime"
FER_PYTHON = Path("/work/venv-fer/bin/python")
FER_WORKER = Path(__file__).resolve().parent / "_bench_fer_worker.py"
MODES = ("pipelined", "sequential")  # the CLI's default first


def load_frames(video: Path, n: int, size: tuple[int, int]) -> np.ndarray:
    """uint8 (n, h, w, 3) BGR: the first n decodable frames of ``video`` resized to ``size`` (w, h)."""
    import cv2

    cap = cv2.VideoCapture(str(video))
    frames = []
    while len(frames) < n:
        ok, f = cap.read()
        if not ok:
            break
        frames.append(cv2.resize(f, size, interpolation=cv2.INTER_AREA))
    cap.release()
    if not frames:
        raise SystemExit(f"error: no frames read from {video}")
    return np.stack(frames)


# ---------------------------------------------------------------------------------------------
# Worker: one model in this process
# ---------------------------------------------------------------------------------------------
def run_model(args) -> dict:
    from fer_hybrid.predictors import load_predictor, model_spec
    from fer_hybrid.keras_io import configure_tensorflow_threads

    configure_tensorflow_threads(args.tf_threads)
    t0 = time.perf_counter()
    predictor = load_predictor(args.worker, args.models_dir)
    load_s = time.perf_counter() - t0
    frames = np.load(args.frames_file, mmap_mode="r")
    if args.thread_sweep_only:
        return {"model": args.worker, "tf_intra_op_threads": args.tf_threads, "ms_per_face": _ms_per_face(predictor, frames)}
    base = {"model": args.worker, "kind": model_spec(args.worker).kind, "tf_intra_op_threads": args.tf_threads,
            "load_seconds": load_s}
    return {"runs": [{**base, **time_mode(predictor, frames, args, mode)} for mode in args.modes.split(",")]}


def time_mode(predictor, frames: np.ndarray, args, mode: str) -> dict:
    """One runner through the frames in ``mode`` ('pipelined' or 'sequential') -> FPS, times, stage split."""
    from contextlib import closing

    from fer_hybrid.inference.analyzer import VideoSession as RealtimeRunner, stream
    from fer_hybrid.overlay import draw_faces as annotate
    from fer_hybrid.video import Frame

    if mode not in MODES:
        raise SystemExit(f"error: unknown mode {mode!r}; use {', '.join(MODES)}")
    runner = RealtimeRunner(predictor, args.detect_every, 0.5, args.detect_width or None, 0, 0.1,
                            want_landmarks=False)
    for f in frames[:args.warmup]:
        res = runner.process(np.array(f))
        annotate(np.array(f), res, runner.classes, False)
    runner.timings = dict.fromkeys(runner.timings, 0.0)
    timed = frames[args.warmup:]
    source = (Frame(i, 0.0, np.array(f)) for i, f in enumerate(timed))  # the copy is part of stage A
    finished, latency, overlay, faces = [], [], 0.0, 0
    cpu0, t0 = time.process_time(), time.perf_counter()
    with closing(stream(runner, source, mode == "pipelined", args.depth)) as located:
        for frame, loc in located:
            res = runner.classify(frame.image, loc)
            ta = time.perf_counter()
            annotate(frame.image, res, runner.classes, False)
            now = time.perf_counter()
            overlay += now - ta
            finished.append(now)
            latency.append(now - loc.started)
            faces += len(res)
    wall, cpu = finished[-1] - t0, time.process_time() - cpu0
    n = len(finished)
    gaps = np.diff([t0, *finished]) * 1000
    lat = np.asarray(latency) * 1000
    out = {"mode": mode, "frames": n, "fps": n / wall, "cpu_util": cpu / wall,
           "p50_ms": float(np.percentile(gaps, 50)), "p95_ms": float(np.percentile(gaps, 95)),
           "mean_ms": float(gaps.mean()), "latency_p50_ms": float(np.percentile(lat, 50)),
           "latency_p95_ms": float(np.percentile(lat, 95)), "faces_per_frame": faces / max(n, 1),
           **{f"{k}_ms": v / max(n, 1) * 1000 for k, v in runner.timings.items()},
           "overlay_ms": overlay / max(n, 1) * 1000}
    if runner.timings["landmarks"] == 0.0:
        out["landmarks_ms"] = None  # not reported separately (CNN, or inside the predictor's classification)
    return out


def _ms_per_face(predictor, frames, repeats: int = 50) -> float:
    """Median batch-1 classification latency on one 48x48 gray crop of the first frame's centre."""
    import cv2

    gray = cv2.cvtColor(np.array(frames[0]), cv2.COLOR_BGR2GRAY)
    h, w = gray.shape
    face = [gray[h // 4: 3 * h // 4, w // 3: 2 * w // 3]]
    if hasattr(predictor, "predict_proba_frame") and not hasattr(predictor, "predict_proba"):
        return float("nan")
    for _ in range(5):
        predictor.predict_proba(face)
    ts = []
    for _ in range(repeats):
        t = time.perf_counter()
        predictor.predict_proba(face)
        ts.append(time.perf_counter() - t)
    return float(np.median(ts) * 1000)


# ---------------------------------------------------------------------------------------------
# Driver
# ---------------------------------------------------------------------------------------------
def _subprocess_json(cmd: list[str], timeout: float) -> dict:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(ROOT)}
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("{")]
    if r.returncode != 0 or not lines:
        err = (r.stderr.strip().splitlines() or ["no output"])[-1]
        return {"error": f"exit {r.returncode}: {err[:300]}"}
    return json.loads(lines[-1])


def _label(r: dict) -> str:
    return f"{r['model']} ({r['mode']})" if r.get("mode") else r["model"]


def to_markdown(rep: dict) -> str:
    s = rep["settings"]
    lines = [f"# Realtime benchmark ({rep['date'][:10]})", "",
             f"{s['frames']} frames of `{s['video']}` resized to {s['size']}, after {s['warmup']} warm-up frames; "
             f"detection every {s['detect_every']} frames on a copy {s['detect_width']} px wide, dlib correlation "
             f"tracking in between; TensorFlow intra-op threads {s['tf_threads']}. Modes: pipelined (CLI default: "
             f"decode + detection/tracking of the next frames in a background thread, queue depth {s['depth']}, "
             f"while the main thread classifies, draws and writes) and sequential (`--no-pipeline`). "
             f"CPU: {rep['env'].get('cpu')}, {os.cpu_count()} cores; load average at start {rep['loadavg_start']}, "
             f"at end {rep.get('loadavg_end')}.", "",
             "| model (mode) | FPS | frame p50 ms | frame p95 ms | latency p50 ms | latency p95 ms | CPU | "
             "detection ms | landmarks ms | classification ms | overlay ms | faces/frame |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    f = lambda v: "-" if v is None or (isinstance(v, float) and np.isnan(v)) else f"{v:.1f}"  # noqa: E731
    for r in rep["results"]:
        if "error" in r:
            lines.append(f"| {_label(r)} | error: {r['error']} |||||||||||")
            continue
        lines.append(f"| {_label(r)} | {f(r['fps'])} | {f(r['p50_ms'])} | {f(r['p95_ms'])} | "
                     f"{f(r.get('latency_p50_ms'))} | {f(r.get('latency_p95_ms'))} | {r.get('cpu_util', float('nan')):.2f} | "
                     f"{f(r['detection_ms'])} | {f(r['landmarks_ms'])} | {f(r['classification_ms'])} | "
                     f"{f(r['overlay_ms'])} | {r['faces_per_frame']:.2f} |")
    fer = rep["fer"]
    if "skipped" in fer or "error" in fer:
        lines += ["", f"`fer` package: {fer.get('skipped') or fer.get('error')}"]
    else:
        lines.append(f"| fer {fer['version']} (Haar + mini-Xception TFLite) | {f(fer['fps'])} | {f(fer['p50_ms'])} | "
                     f"{f(fer['p95_ms'])} | {f(fer['p50_ms'])} | {f(fer['p95_ms'])} | - | {f(fer['detection_ms'])} | - | "
                     f"{f(fer['classification_ms'])} | - | {fer['faces_per_frame']:.2f} |")
        lines += ["", "Speed-up over fer (FPS ratio): " + ", ".join(
            f"{m}: {x:.2f}x" for m, x in rep["speedup_vs_fer"].items())]
    if rep.get("pipeline_gain"):
        lines += ["", "Pipelined over sequential (FPS ratio, same process): " + ", ".join(
            f"{m}: {x:.2f}x" for m, x in rep["pipeline_gain"].items())]
    if rep.get("thread_sweep"):
        lines += ["", "## TensorFlow intra-op threads (batch-1 classification, median ms per face)", "",
                  "| model | " + " | ".join(f"threads={t if t else 'default'}" for t in s["thread_sweep"]) + " |",
                  "|---|" + "---:|" * len(s["thread_sweep"])]
        for m, row in rep["thread_sweep"].items():
            lines.append(f"| {m} | " + " | ".join(f(row.get(str(t))) for t in s["thread_sweep"]) + " |")
    lines += ["", "Stage columns are per-frame means of wall time; in the pipelined mode detection runs in the "
              "background thread at the same time as classification, so the stage columns add up to more than "
              "the frame time (and detection, timed in its thread, includes waits for the CPU/GIL). Landmarks "
              "time is shown separately only when the predictor reports it (`last_timings`), otherwise it is "
              "inside classification. fer runs sequentially (its own API, one call per frame); its latency "
              "columns repeat its frame times, and its detection column is its `find_faces` (OpenCV Haar) "
              "timed in a second pass.", "",
              f"Command: `{rep['command']}`", ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--video", type=Path, default=VIDEO)
    ap.add_argument("--frames", type=int, default=300, help="timed frames (after warm-up)")
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--size", default="640x480")
    ap.add_argument("--models", nargs="*", help="model names (default: every shipped model)")
    ap.add_argument("--models-dir", type=Path)
    ap.add_argument("--detect-every", type=int, default=3)
    ap.add_argument("--detect-width", type=int, default=480)
    ap.add_argument("--tf-threads", type=int, default=1, help="TF intra-op threads for the end-to-end runs")
    ap.add_argument("--modes", default=",".join(MODES),
                    help=f"comma list of runner modes to time, each in the same model process (default {','.join(MODES)})")
    ap.add_argument("--depth", type=int, default=None,
                    help="pipelined mode: frames stage A may run ahead (default: the CLI's PIPELINE_DEPTH)")
    ap.add_argument("--thread-sweep", default="1,2,0",
                    help="comma list of TF intra-op thread counts for the ms/face sweep ('' = skip; 0 = TF default)")
    ap.add_argument("--fer-python", default=str(FER_PYTHON),
                    help="python of a venv with `fer` installed ('none' = skip fer)")
    ap.add_argument("--out", type=Path, default=OUT)
    # worker mode (internal)
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--frames-file", help=argparse.SUPPRESS)
    ap.add_argument("--thread-sweep-only", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.depth is None:
        from fer_hybrid.inference.analyzer import PIPELINE_DEPTH

        args.depth = PIPELINE_DEPTH
    if args.worker:
        print(json.dumps(run_model(args)))
        return 0
    bad = [m for m in args.modes.split(",") if m not in MODES]
    if bad:
        print(f"error: unknown mode(s) {', '.join(bad)}; use {', '.join(MODES)}", file=sys.stderr)
        return 2

    from fer_hybrid import _atomic
    from fer_hybrid.evaluate import environment
    from fer_hybrid.predictors import list_models

    models = args.models or list_models(available_only=True, root=args.models_dir)
    if not models:
        print(f"error: no shipped model in {args.models_dir or 'models/'}; train one or pass --models-dir",
              file=sys.stderr)
        return 2
    w, h = map(int, args.size.lower().split("x"))
    frames = load_frames(args.video, args.frames + args.warmup, (w, h))
    sweep = [int(t) for t in args.thread_sweep.split(",") if t.strip()]
    loadavg = [round(x, 2) for x in os.getloadavg()]
    results, sweep_rows = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        ff = Path(tmp) / "frames.npy"
        np.save(ff, frames)
        base = [sys.executable, __file__, "--frames-file", str(ff), "--warmup", str(args.warmup),
                "--detect-every", str(args.detect_every), "--detect-width", str(args.detect_width),
                "--modes", args.modes, "--depth", str(args.depth)]
        if args.models_dir:
            base += ["--models-dir", str(args.models_dir)]
        for m in models:
            print(f"[bench] {m} (end to end, {len(frames) - args.warmup} frames)", flush=True)
            r = _subprocess_json(base + ["--worker", m, "--tf-threads", str(args.tf_threads)], 3600)
            runs = r.get("runs") or [{"model": m, **r}]
            results.extend(runs)
            for run in runs:
                print(f"[bench]   {_label(run)}: " + (f"{run['fps']:.1f} FPS, CPU {run['cpu_util']:.2f}"
                                                      if "fps" in run else run.get("error", "?")), flush=True)
            for t in sweep:
                r = _subprocess_json(base + ["--worker", m, "--tf-threads", str(t), "--thread-sweep-only"], 600)
                sweep_rows.setdefault(m, {})[str(t)] = r.get("ms_per_face")
        fer = run_fer(args.fer_python, ff, args.warmup)
    print(f"[bench] fer: {json.dumps(fer)[:300]}", flush=True)
    speedup = {_label(r): r["fps"] / fer["fps"] for r in results if "fps" in r and fer.get("fps")}
    fps = {(r["model"], r.get("mode")): r["fps"] for r in results if "fps" in r}
    gain = {m: fps[m, "pipelined"] / fps[m, "sequential"] for m in models
            if (m, "pipelined") in fps and (m, "sequential") in fps}
    rep = {"kind": "benchmark", "name": "bench-realtime", "date": dt.datetime.now().isoformat(timespec="seconds"),
           "command": " ".join([Path(sys.executable).name, *sys.argv]), "env": environment(),
           "loadavg_start": loadavg, "loadavg_end": [round(x, 2) for x in os.getloadavg()],
           "settings": {"video": args.video.name, "frames": len(frames) - args.warmup, "warmup": args.warmup,
                        "size": f"{w}x{h}", "detect_every": args.detect_every, "detect_width": args.detect_width,
                        "tf_threads": args.tf_threads, "thread_sweep": sweep, "modes": args.modes.split(","),
                        "depth": args.depth},
           "results": results, "fer": fer, "speedup_vs_fer": speedup, "pipeline_gain": gain,
           "thread_sweep": sweep_rows}
    _atomic.write_text(args.out / "benchmark.json", json.dumps(rep, indent=2, default=float) + "\n")
    _atomic.write_text(args.out / "benchmark.md", to_markdown(rep))
    print(f"[bench] wrote {args.out / 'benchmark.json'} and benchmark.md")
    return 0


def run_fer(python: str, frames_file: Path, warmup: int) -> dict:
    """The fer package's FER() on the same frames, in its own interpreter; {'skipped': why} when absent."""
    if python in ("", "none"):
        return {"skipped": "skipped (--fer-python none)"}
    if not Path(python).exists():
        return {"skipped": f"skipped: no python at {python} (install fer into a separate venv: "
                           f"python -m venv /work/venv-fer && /work/venv-fer/bin/pip install --no-deps fer "
                           f"&& /work/venv-fer/bin/pip install tensorflow-cpu 'opencv-python-headless<5' pandas "
                           f"requests pillow tqdm 'setuptools<81')"}
    r = _subprocess_json([python, str(FER_WORKER), str(frames_file), "--warmup", str(warmup)], 3600)
    if "error" in r and "No module named" in r["error"]:
        return {"skipped": f"skipped: `fer` not importable by {python} ({r['error']})"}
    return r


if __name__ == "__main__":
    raise SystemExit(main())
