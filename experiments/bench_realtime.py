"""Realtime speed benchmark: end-to-end FPS and p50/p95 per-frame times at 640x480, per shipped model and
per runner mode (pipelined = the CLI default, sequential = ``--no-pipeline``), split into detection /
landmarks / classification, beside the `fer` PyPI package on the same frames.

    python experiments/bench_realtime.py                         # every shipped model, both modes, + fer
    python experiments/bench_realtime.py --models-dir /tmp/m --models vggbn --frames 100 --fer-python none
    python experiments/bench_realtime.py --models vggbn landmarks --frames 150 --thread-sweep '' --out /tmp/b

Frames: the first ``--frames`` + ``--warmup`` frames of the shared Pexels clip, resized to 640x480
(INTER_AREA), decoded once and saved to a temporary .npy so that every model and the fer worker see
identical pixels. Each model runs in its own subprocess (TensorFlow's thread pools are fixed per process)
with one ``Analyzer``; each mode gets a fresh ``Analyzer.session()``, the warm-up frames, then the timed
frames through :func:`fer_hybrid.evaluation.throughput.video_speed`: the realtime CLI's own loop
(``run_frames``) plus its overlay drawing, frames from memory (no video decode/encode). FPS, frame and
latency percentiles, CPU use and the stage split are defined in the report. ``--repeats N`` runs N such rounds
(every model, then fer, in turn) and reports for each row the round with the median FPS, listing every
round's. ``--thread-sweep`` also times batch-1 classification per face for other TF intra-op thread counts.
fer runs in its own venv (default /work/venv-fer; its torch/numpy pins clash with ours) via
experiments/_bench_fer_worker.py, which returns its per-frame times; it is skipped with a message when
absent. Writes ``benchmark.json`` + ``benchmark.md`` (kind "benchmark") to ``--out`` (default
experiments/reports/bench-realtime/).
For quiet numbers pause other CPU jobs while it runs.
"""
from __future__ import annotations

import argparse
import functools
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fer_hybrid.evaluation import throughput as tp  # noqa: E402
from fer_hybrid.inference.analyzer import PIPELINE_DEPTH  # noqa: E402

VIDEO = ROOT.parent / "shared" / "video" / "WolfgangLanger_Pexels.mp4"
OUT = ROOT / "experiments" / "reports" / "bench-realtime"
FER_PYTHON = Path("/work/venv-fer/bin/python")
FER_WORKER = Path(__file__).resolve().parent / "_bench_fer_worker.py"
MODES = tp.REALTIME_MODES  # the CLI's default first


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
    ap.add_argument("--tf-threads", type=int, default=None,
                    help="model runtime intra-op threads for the end-to-end runs (default: the realtime CLI's)")
    ap.add_argument("--modes", default=",".join(MODES), help=f"comma list of runner modes (default {','.join(MODES)})")
    ap.add_argument("--depth", type=int, default=PIPELINE_DEPTH,
                    help=f"pipelined mode: frames located ahead (default {PIPELINE_DEPTH}, as the CLI)")
    ap.add_argument("--thread-sweep", default="1,2,0",
                    help="comma list of TF intra-op thread counts for the ms/face sweep ('' = skip; 0 = TF default)")
    ap.add_argument("--repeats", type=int, default=1,
                    help="rounds of end-to-end runs (every model, then fer, in turn); each row reports the round with "
                         "the median FPS and lists every round's FPS (default 1)")
    ap.add_argument("--fer-python", default=str(FER_PYTHON), help="python of a venv with `fer` ('none' = skip fer)")
    ap.add_argument("--out", "--reports", type=Path, default=OUT, help=f"report folder (default {OUT})")
    ap.add_argument("--worker", help=argparse.SUPPRESS)  # worker mode (internal)
    ap.add_argument("--frames-file", help=argparse.SUPPRESS)
    ap.add_argument("--thread-sweep-only", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.tf_threads is None:
        from fer_hybrid.realtime import DEFAULT_TF_THREADS

        args.tf_threads = DEFAULT_TF_THREADS
    if args.worker:
        from fer_hybrid.overlay import draw_faces
        print(json.dumps(tp.run_model(args.worker, args.frames_file, draw_faces, models_dir=args.models_dir,
                                      tf_threads=args.tf_threads, modes=args.modes.split(","),
                                      detect_every=args.detect_every, detect_width=args.detect_width,
                                      warmup=args.warmup, depth=args.depth, sweep_only=args.thread_sweep_only)))
        return 0
    bad = [m for m in args.modes.split(",") if m not in MODES]
    if bad or args.depth < 1 or args.repeats < 1:
        why = (f"unknown mode(s) {', '.join(bad)}; use {', '.join(MODES)}" if bad else
               f"--depth must be >= 1, got {args.depth}" if args.depth < 1 else
               f"--repeats must be >= 1, got {args.repeats}")
        print(f"error: {why}", file=sys.stderr)
        return 2
    from fer_hybrid.evaluate import command_line
    from fer_hybrid.predictors import list_models
    from fer_hybrid.video import SourceError

    models = args.models or list_models(available_only=True, root=args.models_dir)
    if not models:
        print(f"error: no shipped model in {args.models_dir or 'models/'}; train one or pass --models-dir",
              file=sys.stderr)
        return 2
    w, h = map(int, args.size.lower().split("x"))
    try:
        frames = tp.load_frames(args.video, args.frames + args.warmup, (w, h))
    except (SourceError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    sweep, load0 = [int(t) for t in args.thread_sweep.split(",") if t.strip()], tp.loadavg()
    with tempfile.TemporaryDirectory() as tmp:   # every worker and fer read the same frames from one .npy
        ff = Path(tmp) / "frames.npy"
        np.save(ff, frames)
        worker = [sys.executable, __file__, "--frames-file", str(ff), "--warmup", str(args.warmup), "--detect-every",
                  str(args.detect_every), "--detect-width", str(args.detect_width), "--modes", args.modes]
        worker += ["--models-dir", str(args.models_dir)] if args.models_dir else []
        results, fer, sweep_rows = tp.bench_rounds(
            worker, models, tf_threads=args.tf_threads, sweep=sweep, n_frames=len(frames) - args.warmup,
            repeats=args.repeats, fer=lambda: tp.run_fer(args.fer_python, FER_WORKER, ff, args.warmup),
            env={"PYTHONPATH": str(ROOT)}, log=functools.partial(print, flush=True))
    settings = dict(video=args.video.name, frames=len(frames) - args.warmup, warmup=args.warmup, size=f"{w}x{h}",
                    detect_every=args.detect_every, detect_width=args.detect_width, tf_threads=args.tf_threads,
                    thread_sweep=sweep, modes=args.modes.split(","), depth=args.depth, repeats=args.repeats)
    rep = tp.realtime_report(command=command_line(None if argv is None else [__file__, *argv]), settings=settings,
                             results=results, fer=fer, thread_sweep=sweep_rows, loadavg_start=load0)
    tp.save_report(args.out, "benchmark", rep, tp.realtime_markdown(rep))
    print(f"[bench] wrote {args.out / 'benchmark.json'} and benchmark.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
