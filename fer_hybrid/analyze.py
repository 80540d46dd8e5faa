"""Analyse recorded videos, images and folders of images into tables, timelines and summaries.

    python -m fer_hybrid.analyze sample --out experiments/reports/analyze-sample
    python -m fer_hybrid.analyze clips/ photos/ interview.mp4 --out results --format parquet
    python -m fer_hybrid.analyze clips/ --out results --workers 2               # local Dask cluster
    python -m fer_hybrid.analyze clips/ --out results --scheduler tcp://10.0.0.5:8786   # existing cluster

Per input, ``OUT/<name>/`` gets ``table.csv`` (one row per face per frame, and one per frame without a
face), ``summary.csv``, ``timeline.png`` (videos) or ``contact_sheet.png`` (photos) and ``meta.json``;
``OUT/index.csv`` lists every input with its status (done, cached, error) in command-line order.
Re-running skips inputs whose outputs are up to date (same content, model and settings). See
:mod:`fer_hybrid.analysis.batch`.

Exit codes: 0 all inputs analysed (or up to date); 1 some input failed (they are named on stderr and in
index.csv; the others are done); 2 bad options (unknown model, missing model file, bad --out, cluster
that cannot be reached); 130 interrupted.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from .cli_args import OneLineParser, number_arg, rescue_arg

EXIT_FAILED_INPUTS = 1
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130
BIG = sys.maxsize


class CliError(Exception):
    """A bad option, reported as one line on stderr with exit code 2."""


def build_parser() -> argparse.ArgumentParser:
    ap = OneLineParser(
        prog="python -m fer_hybrid.analyze",
        description="Facial-expression analysis of videos, images and folders of images: per input a long "
                    "table (one row per face per frame), a summary and a timeline (videos) or contact sheet "
                    "(photos); one index.csv over all inputs. Resumable; parallel on Dask with --workers.")
    ap.add_argument("inputs", nargs="+", metavar="INPUT",
                    help="video file, image file, folder (its images form one input, each video in it one "
                         "input) or 'sample' (the bundled clip)")
    ap.add_argument("--out", type=Path, required=True, help="output folder (created if missing)")
    ap.add_argument("--model", default="default", help="registered model name (default: the shipped default)")
    ap.add_argument("--models-dir", type=Path,
                    help="folder with model artifacts (default: $FER_HYBRID_MODELS or models/)")
    where = ap.add_mutually_exclusive_group()
    where.add_argument("--workers", type=number_arg(int, 1, BIG, text="an integer >= 1"), default=1,
                       help="processes on a local Dask cluster started and stopped by this command "
                            "(default 1: in this process, no Dask)")
    where.add_argument("--scheduler", metavar="ADDRESS",
                       help="address of a running Dask scheduler (e.g. tcp://host:8786); its workers need the "
                            "inputs at the same paths and the model")
    ap.add_argument("--format", dest="fmt", choices=("csv", "parquet"), default="csv",
                    help="table format (default csv)")
    ap.add_argument("--detect-every", type=number_arg(int, 1, BIG, text="an integer >= 1"), default=3,
                    help="videos: run the face detector every N frames, track in between (default 3)")
    ap.add_argument("--detect-width", type=number_arg(int, 0, BIG, text="an integer >= 0"), default=480,
                    help="videos: detect/track on a copy at most this wide, px (0 = full size; default 480)")
    ap.add_argument("--smoothing", type=number_arg(float, 0, 1, lo_open=True), default=0.5,
                    help="videos: EMA alpha of each track's probabilities, weight of the newest frame "
                         "(1 = off; default 0.5)")
    ap.add_argument("--upsample", type=number_arg(int, 0, 3), default=None,
                    help="dlib HOG upsampling 0..3 (finds smaller faces, slower; default 0 for videos, for "
                         "photos once when the shorter side is below 400 px)")
    ap.add_argument("--rescue-threshold", type=rescue_arg, default="auto",
                    help="photos: when no face clears dlib's threshold, keep the best candidate scoring above this "
                         "(auto = the value chosen on val in the frame; none = never)")
    ap.add_argument("--crop-margin", type=number_arg(float, 0, 1), default=0.1,
                    help="with --align off: grow each face box by this fraction per side before cropping (default 0.1)")
    ap.add_argument("--align", choices=["auto", "off", "box", "level", "eyes"], default="auto",
                    help="face crop for crop models: auto (default: level for crop models, chosen on val in the frame; "
                         "models that place their own landmarks are not aligned), off (the box grown by --crop-margin), "
                         "box (FER2013's calibrated framing of the box), level (that, turned to level the eyes), "
                         "eyes (eyes on FER2013's mean eye positions)")
    ap.add_argument("--max-frames", type=number_arg(int, 1, BIG, text="an integer >= 1"), help="videos: analyse at most this many frames each")
    ap.add_argument("--tf-threads", type=number_arg(int, 0, BIG, text="an integer >= 0"), default=None,
                    help="intra-op threads of the model runtime (TensorFlow or onnxruntime) per process (default: "
                         "2 in this process, 1 per process with --workers N > 1 or --scheduler; 0 = TF default)")
    ap.add_argument("--no-pipeline", dest="pipeline", action="store_false",
                    help="videos: detect/track and classify one after the other in one thread")
    ap.add_argument("--force", action="store_true", help="re-analyse inputs whose outputs are up to date")
    ap.add_argument("--no-progress", action="store_true", help="no progress bars")
    return ap


def settings_from_args(args):
    """Settings with the model resolved; CliError for an unknown model or a missing/corrupt artifact."""
    from .analysis.batch import make_settings
    from .predictors import ArtifactError, ArtifactMissingError

    try:
        return make_settings(args.model, args.models_dir, detect_every=args.detect_every,
                             smoothing=args.smoothing, detect_width=args.detect_width or None,
                             upsample=args.upsample, crop_margin=args.crop_margin, align=args.align,
                             rescue_threshold=args.rescue_threshold,
                             max_frames=args.max_frames,
                             fmt=args.fmt, tf_threads=args.tf_threads, pipeline=args.pipeline)
    except (ValueError, ArtifactMissingError, ArtifactError) as e:
        raise CliError(str(e)) from None


def run(args) -> int:
    from .analysis.batch import run_batch, tf_thread_env, threads_per_process
    from .predictors import ArtifactError, ArtifactMissingError

    if args.out.exists() and not args.out.is_dir():
        raise CliError(f"--out {args.out} exists and is not a folder")
    if args.tf_threads is None:
        args.tf_threads = threads_per_process(args.workers, args.scheduler)
    os.environ.update(tf_thread_env(args.tf_threads))  # before TensorFlow starts in this process
    settings = settings_from_args(args)
    try:
        result = run_batch(args.inputs, args.out, settings, workers=args.workers, scheduler=args.scheduler,
                           force=args.force, progress=not args.no_progress)
    except (ArtifactMissingError, ArtifactError) as e:
        raise CliError(f"cannot load model {settings.model!r}: {e}") from None
    except OSError as e:  # --out not writable, scheduler unreachable, ...
        raise CliError(str(e) or type(e).__name__) from None
    n = len(result.index)
    print(f"fer_hybrid.analyze: {n} input(s): {result.done} analysed, {result.cached} up to date, "
          f"{result.errors} failed; {result.frames} frames in {result.timings['total']:.1f} s "
          f"({result.workers or 0} worker(s)), model {settings.model} -> {result.index_path}")
    if result.errors:
        print(f"error: {result.errors} of {n} input(s) failed: {', '.join(result.failed)} "
              f"(messages in {result.index_path})", file=sys.stderr)
        return EXIT_FAILED_INPUTS
    return 0


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # a bad video gives our one-line error only
    args = build_parser().parse_args(argv)
    try:
        return run(args)
    except CliError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("error: interrupted; finished inputs are kept, index.csv lists the rest as 'not run'",
              file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    raise SystemExit(main())
