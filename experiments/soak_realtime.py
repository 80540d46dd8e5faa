"""Soak benchmark: many frames of the shared clip (looped, headless) through the realtime CLI's loop.

    python experiments/soak_realtime.py                                  # 10,000 frames, default model
    python experiments/soak_realtime.py --frames 1000 --models-dir /tmp/m --out /tmp/soak   # smoke run

Frames come from :class:`fer_hybrid.evaluation.throughput.LoopedFrames` over
/work/shared/video/WolfgangLanger_Pexels.mp4 (reopened at its end, so decoding is part of the loop) and go
through the CLI's own path: one ``Analyzer(model).session()`` for the whole run (tracks and smoothing carry
on across the loop point like a long stream) driven by ``run_frames`` (pipelined like the CLI; sequential
with ``--no-pipeline``), then per frame :func:`fer_hybrid.overlay.draw_faces` and the JSON record of every
face (serialised, not written). No window, no output video.

:func:`fer_hybrid.evaluation.throughput.soak` records, every ``--every`` frames, the process RSS (psutil if
installed, else VmRSS from /proc/self/status), FPS over the window, faces, undecodable frames and caught
exceptions ("crashes": an exception from one frame is counted, its first messages kept, and the run goes
on). Writes ``soak.json``, ``soak.md`` and ``rss.png`` (atomically) to ``--out``
(default experiments/reports/soak-realtime/). Target: RSS growth < 50 MB from frame 1,000 to the last
frame of a 10,000-frame run, and zero crashes.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fer_hybrid.evaluation import throughput as tp  # noqa: E402

VIDEO = ROOT.parent / "shared" / "video" / "WolfgangLanger_Pexels.mp4"
OUT = ROOT / "experiments" / "reports" / "soak-realtime"
TARGET = {"rss_growth_mb_lt": 50.0, "from_frame": 1000, "crashes": 0, "min_frames": 10_000}
EXIT_BAD_INPUT = 2


def tiny_model_note(models_dir: Path, name: str) -> str | None:
    """A warning when the model's artifact is a tiny test .keras file rather than a trained model."""
    from fer_hybrid.predictors import model_spec

    try:
        artifact = models_dir / model_spec(name).artifact
        size = artifact.stat().st_size
    except (OSError, ValueError):
        return None
    if artifact.suffix == ".keras" and size < 100_000:
        return f"{artifact.name} is only {size:,} bytes: a tiny test model, not a trained one"
    return None


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=10_000, help="frames to process (default 10,000)")
    ap.add_argument("--every", type=int, default=500, help="record RSS/FPS every N frames (default 500)")
    ap.add_argument("--model", default=None, help="registered model (default: predictors.default_model())")
    ap.add_argument("--models-dir", type=Path, default=None,
                    help="model folder (default: $FER_HYBRID_MODELS or models/)")
    ap.add_argument("--source", default=str(VIDEO), help=f"video to loop (default {VIDEO})")
    ap.add_argument("--out", "--reports", type=Path, default=OUT, help=f"report folder (default {OUT})")
    ap.add_argument("--detect-every", type=int, default=3)
    ap.add_argument("--detect-width", type=int, default=480)
    ap.add_argument("--smoothing", type=float, default=0.5)
    ap.add_argument("--tf-threads", type=int, default=None, help="default: the realtime CLI's default")
    ap.add_argument("--no-pipeline", action="store_true", help="run the stages one after the other")
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
    if args.frames < 1 or args.every < 1:
        print("soak_realtime: error: --frames and --every must be >= 1", file=sys.stderr)
        return EXIT_BAD_INPUT

    from fer_hybrid import Analyzer
    from fer_hybrid.artifacts import models_dir as default_models_dir
    from fer_hybrid.errors import ArtifactError
    from fer_hybrid.keras_io import configure_tensorflow_threads
    from fer_hybrid.overlay import draw_faces
    from fer_hybrid.predictors import default_model
    from fer_hybrid.realtime import DEFAULT_TF_THREADS
    from fer_hybrid.video import SourceError, open_source

    tf_threads = DEFAULT_TF_THREADS if args.tf_threads is None else args.tf_threads
    configure_tensorflow_threads(tf_threads)
    try:
        name = args.model or default_model(args.models_dir)
        open_source(args.source).close()
        analyzer = Analyzer(name, models_dir=args.models_dir)
    except (ValueError, ArtifactError, FileNotFoundError, SourceError) as e:
        print(f"soak_realtime: error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    root = Path(args.models_dir or default_models_dir())
    env = tp.machine()

    def on_frame(frame, faces):  # what the CLI does with each frame, minus writing it
        draw_faces(frame.image, faces, analyzer.classes, False)
        json.dumps({"index": frame.index, "timestamp": frame.timestamp,
                    "faces": [f.to_json(analyzer.classes) for f in faces]}, allow_nan=False)

    frames = tp.LoopedFrames(args.source, args.frames)
    result = tp.soak(analyzer.session(args.detect_every, args.smoothing, args.detect_width or None), frames,
                     args.frames, args.every, pipeline=not args.no_pipeline, on_frame=on_frame,
                     progress=not args.no_progress)
    result["video_loops"] = frames.loops
    growth = tp.rss_growth(result["samples"], TARGET["from_frame"])
    from fer_hybrid.evaluate import command_line  # only now: it imports sklearn (~150 MB), the realtime path does not

    rep = {
        "kind": "soak", "model": name, "models_dir": str(root), "model_note": tiny_model_note(root, name),
        "source": args.source, "command": command_line(None if argv is None else [__file__, *argv]),
        "settings": {"frames": args.frames, "every": args.every, "detect_every": args.detect_every,
                     "detect_width": args.detect_width, "smoothing": args.smoothing, "tf_threads": tf_threads,
                     "pipeline": not args.no_pipeline},
        "rss_source": tp.rss_source(), "target": TARGET, "rss": growth, "result": result,
        "passed": bool(growth["growth_mb"] < TARGET["rss_growth_mb_lt"] and result["crashes"] == 0
                       and result["frames"] >= TARGET["min_frames"]),
        "environment": env, "date": dt.datetime.now().isoformat(timespec="seconds"),
    }
    tp.soak_plot(rep, args.out / "rss.png")
    tp.save_report(args.out, "soak", rep, tp.soak_markdown(rep))
    print(f"{result['frames']:,} frames, {result['fps']:.1f} FPS, {result['crashes']} crashes, "
          f"{result['undecodable_frames']} undecodable; RSS {growth['from_mb']:.1f} -> {growth['to_mb']:.1f} MB "
          f"({growth['growth_mb']:+.1f} MB from frame {growth['from_frame']:,}) -> {args.out}/soak.md")
    return 0 if result["crashes"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
