"""Realtime speed benchmark: end-to-end FPS and p50/p95 per-frame latency at 640x480, per shipped model,
split into detection / landmarks / classification, beside the `fer` PyPI package on the same frames.

    python experiments/bench_realtime.py                         # every shipped model + fer
    python experiments/bench_realtime.py --models-dir /tmp/m --models vggbn --frames 100 --fer-python none

Frames: the first ``--frames`` frames of the shared Pexels clip, resized to 640x480 (INTER_AREA), decoded
once and saved to a temporary .npy so that every model and the fer worker see identical pixels. Each model
runs in its own subprocess (TensorFlow's thread pools are fixed per process): warm-up frames, then the timed
frames through :class:`fer_hybrid.realtime.RealtimeRunner` + overlay drawing (no video decode/encode).
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


def latency_stats(per_frame_s: list[float]) -> dict:
    ms = np.asarray(per_frame_s) * 1000
    return {"fps": float(len(ms) / (ms.sum() / 1000)), "p50_ms": float(np.percentile(ms, 50)),
            "p95_ms": float(np.percentile(ms, 95)), "mean_ms": float(ms.mean()), "frames": int(len(ms))}


# ---------------------------------------------------------------------------------------------
# Worker: one model in this process
# ---------------------------------------------------------------------------------------------
def run_model(args) -> dict:
    from fer_hybrid.realtime import RealtimeRunner, annotate, configure_tensorflow_threads
    from fer_hybrid.predictors import load_predictor, model_spec

    configure_tensorflow_threads(args.tf_threads)
    t0 = time.perf_counter()
    predictor = load_predictor(args.worker, args.models_dir)
    load_s = time.perf_counter() - t0
    frames = np.load(args.frames_file, mmap_mode="r")
    if args.thread_sweep_only:
        return {"model": args.worker, "tf_intra_op_threads": args.tf_threads, "ms_per_face": _ms_per_face(predictor, frames)}
    runner = RealtimeRunner(predictor, args.detect_every, 0.5, args.detect_width or None, 0, 0.1,
                            want_landmarks=False)
    for f in frames[:args.warmup]:
        runner.process(np.array(f))
    runner.timings = dict.fromkeys(runner.timings, 0.0)
    per_frame, faces = [], 0
    for f in frames[args.warmup:]:
        img = np.array(f)
        t = time.perf_counter()
        res = runner.process(img)
        annotate(img, res, runner.classes, False)
        per_frame.append(time.perf_counter() - t)
        faces += len(res)
    n = len(per_frame)
    out = {"model": args.worker, "kind": model_spec(args.worker).kind, "tf_intra_op_threads": args.tf_threads,
           "load_seconds": load_s, "faces_per_frame": faces / max(n, 1), **latency_stats(per_frame),
           **{f"{k}_ms": v / max(n, 1) * 1000 for k, v in runner.timings.items()}}
    out["overlay_ms"] = max(0.0, out["mean_ms"] - sum(out[f"{k}_ms"] for k in runner.timings))
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


def to_markdown(rep: dict) -> str:
    s = rep["settings"]
    lines = [f"# Realtime benchmark ({rep['date'][:10]})", "",
             f"{s['frames']} frames of `{s['video']}` resized to {s['size']}, after {s['warmup']} warm-up frames; "
             f"detection every {s['detect_every']} frames on a copy {s['detect_width']} px wide, dlib correlation "
             f"tracking in between; TensorFlow intra-op threads {s['tf_threads']}. CPU: {rep['env'].get('cpu')}, "
             f"{os.cpu_count()} cores; load average at start {rep['loadavg_start']}.", "",
             "| model | FPS | p50 ms | p95 ms | detection ms | landmarks ms | classification ms | overlay ms | faces/frame |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    f = lambda v: "-" if v is None or (isinstance(v, float) and np.isnan(v)) else f"{v:.1f}"  # noqa: E731
    for r in rep["results"]:
        if "error" in r:
            lines.append(f"| {r['model']} | error: {r['error']} |||||||| ")
            continue
        lines.append(f"| {r['model']} | {f(r['fps'])} | {f(r['p50_ms'])} | {f(r['p95_ms'])} | {f(r['detection_ms'])} | "
                     f"{f(r['landmarks_ms'])} | {f(r['classification_ms'])} | {f(r['overlay_ms'])} | "
                     f"{r['faces_per_frame']:.2f} |")
    fer = rep["fer"]
    if "skipped" in fer or "error" in fer:
        lines += ["", f"`fer` package: {fer.get('skipped') or fer.get('error')}"]
    else:
        lines.append(f"| fer {fer['version']} (Haar + mini-Xception TFLite) | {f(fer['fps'])} | {f(fer['p50_ms'])} | "
                     f"{f(fer['p95_ms'])} | {f(fer['detection_ms'])} | - | {f(fer['classification_ms'])} | - | "
                     f"{fer['faces_per_frame']:.2f} |")
        lines += ["", "Speed-up over fer (FPS ratio): " + ", ".join(
            f"{m}: {x:.2f}x" for m, x in rep["speedup_vs_fer"].items())]
    if rep.get("thread_sweep"):
        lines += ["", "## TensorFlow intra-op threads (batch-1 classification, median ms per face)", "",
                  "| model | " + " | ".join(f"threads={t if t else 'default'}" for t in s["thread_sweep"]) + " |",
                  "|---|" + "---:|" * len(s["thread_sweep"])]
        for m, row in rep["thread_sweep"].items():
            lines.append(f"| {m} | " + " | ".join(f(row.get(str(t))) for t in s["thread_sweep"]) + " |")
    lines += ["", "Timing columns are per-frame means; landmarks time is shown separately only when the "
              "predictor reports it (`last_timings`), otherwise it is inside classification. "
              "fer's detection column is its `find_faces` (OpenCV Haar) timed in a second pass.", "",
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

    if args.worker:
        print(json.dumps(run_model(args)))
        return 0

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
                "--detect-every", str(args.detect_every), "--detect-width", str(args.detect_width)]
        if args.models_dir:
            base += ["--models-dir", str(args.models_dir)]
        for m in models:
            print(f"[bench] {m} (end to end, {len(frames) - args.warmup} frames)", flush=True)
            r = _subprocess_json(base + ["--worker", m, "--tf-threads", str(args.tf_threads)], 3600)
            results.append({"model": m, **r})
            print(f"[bench]   {json.dumps(r)[:300]}", flush=True)
            for t in sweep:
                r = _subprocess_json(base + ["--worker", m, "--tf-threads", str(t), "--thread-sweep-only"], 600)
                sweep_rows.setdefault(m, {})[str(t)] = r.get("ms_per_face")
        fer = run_fer(args.fer_python, ff, args.warmup)
    print(f"[bench] fer: {json.dumps(fer)[:300]}", flush=True)
    speedup = {r["model"]: r["fps"] / fer["fps"] for r in results if "fps" in r and fer.get("fps")}
    rep = {"kind": "benchmark", "name": "bench-realtime", "date": dt.datetime.now().isoformat(timespec="seconds"),
           "command": " ".join([Path(sys.executable).name, *sys.argv]), "env": environment(),
           "loadavg_start": loadavg, "loadavg_end": [round(x, 2) for x in os.getloadavg()],
           "settings": {"video": args.video.name, "frames": len(frames) - args.warmup, "warmup": args.warmup,
                        "size": f"{w}x{h}", "detect_every": args.detect_every, "detect_width": args.detect_width,
                        "tf_threads": args.tf_threads, "thread_sweep": sweep},
           "results": results, "fer": fer, "speedup_vs_fer": speedup, "thread_sweep": sweep_rows}
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
