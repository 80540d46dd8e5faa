"""Soak benchmark: many frames of the shared clip (looped, headless) through the realtime runner.

    python experiments/soak_realtime.py                                  # 10,000 frames, default model
    python experiments/soak_realtime.py --frames 1000 --models-dir /tmp/m --out /tmp/soak   # smoke run

Frames come from :func:`fer_hybrid.video.open_source` over /work/shared/video/WolfgangLanger_Pexels.mp4
(reopened at its end, so decoding is part of the loop) and go through the CLI's own per-frame path:
:class:`fer_hybrid.realtime.RealtimeRunner` (one runner for the whole run: tracks and smoothing carry on
across the loop point like a long stream), :func:`fer_hybrid.realtime.annotate` and the JSON record of
every face (serialised, not written). No window, no output video.

Every ``--every`` frames it records the process RSS (psutil if installed, else VmRSS from
/proc/self/status), FPS over the window, faces, undecodable frames and caught exceptions ("crashes":
an exception from one frame is counted, its first messages kept, and the run goes on). Writes
``soak.json``, ``soak.md`` and ``rss.png`` (atomically) to ``--out``
(default experiments/reports/soak-realtime/). Target: RSS growth < 50 MB from frame 1,000 to the last
frame of a 10,000-frame run, and zero crashes.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import sys
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VIDEO = ROOT.parent / "shared" / "video" / "WolfgangLanger_Pexels.mp4"
OUT = ROOT / "experiments" / "reports" / "soak-realtime"
TARGET_MB = 50.0
BASELINE_FRAME = 1000
EXIT_BAD_INPUT = 2


def rss_mb() -> float:
    """Resident set size of this process in MB (psutil, else /proc/self/status VmRSS)."""
    try:
        import psutil

        return psutil.Process().memory_info().rss / 2**20
    except ImportError:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024  # kB -> MB
    raise RuntimeError("cannot read RSS: no psutil and no /proc/self/status")


def looped_frames(source_spec: str, n: int, stats: dict):
    """Yield n frames (BGR uint8), reopening the source at its end; counts loops and undecodable frames."""
    from fer_hybrid.video import open_source

    done = 0
    while done < n:
        with open_source(source_spec) as src:
            got = 0
            for frame in src:
                yield frame
                got += 1
                done += 1
                if done >= n:
                    break
            stats["skipped"] += src.skipped
        stats["loops"] += 1
        if got == 0:
            raise RuntimeError(f"{source_spec} yielded no frame")


def soak(predictor, source: str, frames: int, every: int, detect_every: int = 3, detect_width: int | None = 480,
         smoothing: float = 0.5, progress: bool = True) -> dict:
    """Run the soak and return the measurements (no files written)."""
    from tqdm import tqdm

    from fer_hybrid.inference.analyzer import VideoSession as RealtimeRunner
    from fer_hybrid.overlay import draw_faces as annotate

    runner = RealtimeRunner(predictor, detect_every, smoothing, detect_width)
    stats = {"skipped": 0, "loops": 0}
    crashes, crash_messages = 0, []
    faces = labelled = 0
    samples = [{"frame": 0, "rss_mb": round(rss_mb(), 2), "seconds": 0.0, "window_fps": None, "faces": 0,
                "skipped": 0, "crashes": 0}]
    t_start = t_win = time.perf_counter()
    n = 0
    for frame in tqdm(looped_frames(source, frames, stats), total=frames, disable=not progress, unit="frame",
                      mininterval=5):
        try:
            results = runner.process(frame.image)
            annotate(frame.image, results, runner.classes, False)
            record = {"index": frame.index, "timestamp": frame.timestamp,
                      "faces": [r.to_json(runner.classes) for r in results]}
            json.dumps(record, allow_nan=False)
            faces += len(results)
            labelled += sum(r["label"] is not None for r in record["faces"])
        except Exception as e:  # a soak counts crashes instead of stopping
            crashes += 1
            if len(crash_messages) < 5:
                crash_messages.append(f"frame {n}: {type(e).__name__}: {e} | "
                                      + traceback.format_exc(limit=3).splitlines()[-2].strip())
        n += 1
        if n % every == 0 or n == frames:
            now = time.perf_counter()
            window = n - samples[-1]["frame"]
            samples.append({"frame": n, "rss_mb": round(rss_mb(), 2), "seconds": round(now - t_start, 2),
                            "window_fps": round(window / max(now - t_win, 1e-9), 2), "faces": faces,
                            "skipped": stats["skipped"], "crashes": crashes})
            t_win = now
    seconds = time.perf_counter() - t_start
    return {"frames": n, "seconds": round(seconds, 2), "fps": round(n / seconds, 2) if seconds else None,
            "faces": faces, "faces_labelled": labelled, "undecodable_frames": stats["skipped"],
            "dropped_frames": frames - n, "video_loops": stats["loops"], "crashes": crashes,
            "crash_messages": crash_messages, "samples": samples,
            "timings_s": {k: round(v, 2) for k, v in runner.timings.items()}}


def rss_growth(samples: list[dict], start_frame: int = BASELINE_FRAME) -> dict:
    """RSS change from the first sample at or after ``start_frame`` (else the first) to the last sample."""
    later = [s for s in samples if s["frame"] >= start_frame and s["frame"] > 0]
    first = later[0] if len(later) > 1 else samples[0]
    last = samples[-1]
    return {"from_frame": first["frame"], "to_frame": last["frame"], "from_mb": first["rss_mb"],
            "to_mb": last["rss_mb"], "growth_mb": round(last["rss_mb"] - first["rss_mb"], 2),
            "peak_mb": max(s["rss_mb"] for s in samples)}


def to_markdown(rep: dict) -> str:
    g, r = rep["rss"], rep["result"]
    full = r["frames"] >= 10_000
    verdict = ("PASS" if rep["passed"] else "FAIL") if full else \
        f"not judged (target applies to >= 10,000 frames; this run has {r['frames']:,})"
    lines = [
        "# Realtime soak", "",
        f"- command: `{rep['command']}`",
        f"- model: `{rep['model']}` from `{rep['models_dir']}`" + (f" ({rep['model_note']})" if rep.get("model_note") else ""),
        f"- source: `{rep['source']}` looped {r['video_loops']} time(s), headless; runner: detect every "
        f"{rep['settings']['detect_every']} frames at {rep['settings']['detect_width']} px, EMA alpha "
        f"{rep['settings']['smoothing']}, TF threads {rep['settings']['tf_threads']}",
        f"- {r['frames']:,} frames in {r['seconds']:.1f} s = **{r['fps']:.1f} FPS** (decode + detect/track + "
        f"classify + overlay + JSON), {r['faces']:,} faces ({r['faces_labelled']:,} labelled)",
        f"- undecodable frames: {r['undecodable_frames']}; dropped frames: {r['dropped_frames']}; "
        f"crashes (caught exceptions): **{r['crashes']}**",
        f"- RSS: {g['from_mb']:.1f} MB at frame {g['from_frame']:,} -> {g['to_mb']:.1f} MB at frame "
        f"{g['to_frame']:,}: growth **{g['growth_mb']:+.1f} MB** (target < {TARGET_MB:.0f} MB); peak "
        f"{g['peak_mb']:.1f} MB; RSS source {rep['rss_source']}",
        f"- verdict: **{verdict}**",
        f"- machine: {rep['environment']['cpu']} x {rep['environment']['cpu_count']} cores, load average at start "
        f"{rep['environment']['loadavg_start']}, python {rep['environment']['python']}, date {rep['date']}",
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


def save_plot(rep: dict, path: Path) -> Path:
    from fer_hybrid.reports import pyplot, save_figure

    plt = pyplot()
    s = rep["result"]["samples"]
    fig, ax = plt.subplots(figsize=(8, 3.6))
    ax.plot([x["frame"] for x in s], [x["rss_mb"] for x in s], marker="o", markersize=3)
    g = rep["rss"]
    ax.axhline(g["from_mb"] + TARGET_MB, color="red", linestyle="--", linewidth=0.8,
               label=f"frame-{g['from_frame']:,} RSS + {TARGET_MB:.0f} MB (target)")
    ax.set_xlabel("frame")
    ax.set_ylabel("RSS (MB)")
    ax.set_title(f"soak: {rep['model']}, {rep['result']['frames']:,} frames, {rep['result']['fps']:.1f} FPS")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=10_000, help="frames to process (default 10,000)")
    ap.add_argument("--every", type=int, default=500, help="record RSS/FPS every N frames (default 500)")
    ap.add_argument("--model", default=None, help="registered model (default: predictors.default_model())")
    ap.add_argument("--models-dir", type=Path, default=None, help="model folder (default: $FER_HYBRID_MODELS or models/)")
    ap.add_argument("--source", default=str(VIDEO), help=f"video to loop (default {VIDEO})")
    ap.add_argument("--out", type=Path, default=OUT, help=f"report folder (default {OUT})")
    ap.add_argument("--detect-every", type=int, default=3)
    ap.add_argument("--detect-width", type=int, default=480)
    ap.add_argument("--smoothing", type=float, default=0.5)
    ap.add_argument("--tf-threads", type=int, default=None, help="default: the realtime CLI's default")
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
    if args.frames < 1 or args.every < 1:
        print("soak_realtime: error: --frames and --every must be >= 1", file=sys.stderr)
        return EXIT_BAD_INPUT

    from fer_hybrid import _atomic
    from fer_hybrid.artifacts import models_dir as default_models_dir
    from fer_hybrid.errors import ArtifactError
    from fer_hybrid.keras_io import configure_tensorflow_threads
    from fer_hybrid.predictors import default_model, load_predictor
    from fer_hybrid.video import SourceError, open_source

    tf_threads = 1 if args.tf_threads is None else args.tf_threads  # the realtime CLI's default
    configure_tensorflow_threads(tf_threads)
    try:
        name = args.model or default_model(args.models_dir)
        open_source(args.source).close()
        predictor = load_predictor(name, args.models_dir)
    except (ValueError, ArtifactError, FileNotFoundError, SourceError) as e:
        print(f"soak_realtime: error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    root = Path(args.models_dir or default_models_dir())
    note = None
    try:
        from fer_hybrid.predictors import model_spec

        artifact = root / model_spec(name).artifact
        if artifact.suffix == ".keras" and artifact.stat().st_size < 100_000:
            note = f"{artifact.name} is only {artifact.stat().st_size:,} bytes: a tiny test model, not a trained one"
    except (OSError, ValueError):
        pass

    env = {"cpu": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
           "python": platform.python_version(),
           "loadavg_start": [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None}
    result = soak(predictor, args.source, args.frames, args.every, args.detect_every, args.detect_width or None,
                  args.smoothing, progress=not args.no_progress)
    growth = rss_growth(result["samples"])
    rep = {
        "kind": "soak", "model": name, "models_dir": str(root), "model_note": note, "source": args.source,
        "command": " ".join([Path(sys.executable).name, *sys.argv]) if argv is None else
        "soak_realtime.main(" + repr(list(argv)) + ")",
        "settings": {"frames": args.frames, "every": args.every, "detect_every": args.detect_every,
                     "detect_width": args.detect_width, "smoothing": args.smoothing, "tf_threads": tf_threads},
        "rss_source": "psutil" if _has_psutil() else "/proc/self/status VmRSS",
        "target": {"rss_growth_mb_lt": TARGET_MB, "from_frame": BASELINE_FRAME, "crashes": 0},
        "rss": growth, "result": result,
        "passed": bool(growth["growth_mb"] < TARGET_MB and result["crashes"] == 0 and result["frames"] >= 10_000),
        "environment": env, "date": dt.datetime.now().isoformat(timespec="seconds"),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    save_plot(rep, args.out / "rss.png")
    _atomic.write_text(args.out / "soak.md", to_markdown(rep))
    _atomic.write_text(args.out / "soak.json", json.dumps(rep, indent=2) + "\n")
    print(f"{result['frames']:,} frames, {result['fps']:.1f} FPS, {result['crashes']} crashes, "
          f"{result['undecodable_frames']} undecodable; RSS {growth['from_mb']:.1f} -> {growth['to_mb']:.1f} MB "
          f"({growth['growth_mb']:+.1f} MB from frame {growth['from_frame']:,}) -> {args.out}/soak.md")
    return 0 if result["crashes"] == 0 else 1


def _has_psutil() -> bool:
    try:
        import psutil  # noqa: F401

        return True
    except ImportError:
        return False


if __name__ == "__main__":
    sys.exit(main())
