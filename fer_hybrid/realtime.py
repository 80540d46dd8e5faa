"""Realtime expression recognition with any registered model: frames -> faces -> probabilities -> overlay/JSONL.

    python -m fer_hybrid.realtime --model vggbn --source sample --no-display --output demo.mp4 --jsonl demo.jsonl
    python -m fer_hybrid.realtime --source 0                      # webcam, window (q or Esc quits)
    python -m fer_hybrid.realtime --source photos/ --jsonl faces.jsonl
    python -m fer_hybrid.realtime --list-models

This module is the command line around :class:`fer_hybrid.inference.Analyzer`, which owns detection ->
crop -> predict. Videos and cameras go through :meth:`Analyzer.session` (dlib HOG every ``--detect-every``
frames on a copy at most ``--detect-width`` px wide, correlation trackers in between, an EMA of
probabilities per track, ``--smoothing``); images and folders go through :meth:`Analyzer.analyze`, one
independent photo at a time at full resolution (no tracks, no smoothing; each JSONL line names its file).

A NaN probability row (no landmarks) gives ``label: null`` and ``no_landmarks: true``; never a guess.

Pipelining (default; ``--no-pipeline`` turns it off): stage A (decode + detect/track) runs one or two
frames ahead in a background thread while the main thread classifies, annotates and writes
(:func:`fer_hybrid.inference.analyzer.stream`); the output is identical to the sequential mode.
Windows (cv2.imshow / waitKey) stay in the main thread.
"""
from __future__ import annotations

import argparse
import contextlib
import itertools
import os
import sys
import time
from pathlib import Path
from typing import Sequence

import numpy as np

from .inference.analyzer import PIPELINE_DEPTH, Analyzer, Face, VideoSession, run_frames, stream  # noqa: F401
from .inference.framing import crop_faces  # noqa: F401  (re-exported)

EXIT_BAD_INPUT = 2
DEFAULT_TF_THREADS = 1  # measured: see experiments/reports/bench-realtime/benchmark.md


# ---------------------------------------------------------------------------------------------
# Setup helpers
# ---------------------------------------------------------------------------------------------
def configure_tensorflow_threads(intra_op: int | None = DEFAULT_TF_THREADS, inter_op: int | None = 1) -> None:
    """Limit TensorFlow's thread pools (must happen before TF runs its first op; 0/None = TF default).

    Uses the TF_NUM_*_THREADS variables so that predictors without TensorFlow never import it.
    """
    for var, n in (("TF_NUM_INTRAOP_THREADS", intra_op), ("TF_NUM_INTEROP_THREADS", inter_op)):
        if n:
            os.environ[var] = str(int(n))
    if "tensorflow" in sys.modules:
        tf = sys.modules["tensorflow"]
        try:
            if intra_op:
                tf.config.threading.set_intra_op_parallelism_threads(int(intra_op))
            if inter_op:
                tf.config.threading.set_inter_op_parallelism_threads(int(inter_op))
        except (RuntimeError, AttributeError):
            pass  # context already initialised: keep what it has


def has_display() -> bool:
    """True when a window can be shown (an X11/Wayland display on Linux; assumed on Windows/macOS)."""
    if sys.platform.startswith("linux") or "bsd" in sys.platform:
        return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    return True


# ---------------------------------------------------------------------------------------------
# Per-frame processing lives in fer_hybrid.inference (the Analyzer); these names stay for users
# ---------------------------------------------------------------------------------------------
RealtimeRunner = VideoSession  # detection/tracking + predictor over one video's frames
FaceResult = Face


def annotate(image: np.ndarray, faces: list[Face], classes: Sequence[str], draw_landmarks: bool) -> None:
    from .overlay import draw_face

    for f in faces:
        label = f.smoothed_label
        draw_face(image, f.box, label, f.smoothed if label else None, classes,
                  f.landmarks if draw_landmarks else None, None if label else "no landmarks")


# ---------------------------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------------------------
class CliError(Exception):
    """A bad input reported as one line on stderr with exit code 2."""


def _positive_int(s: str) -> int:
    v = int(s)
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {v}")
    return v


def _alpha(s: str) -> float:
    v = float(s)
    if not 0 < v <= 1:
        raise argparse.ArgumentTypeError(f"must be in (0, 1], got {v}")
    return v


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m fer_hybrid.realtime",
                                 description="Facial-expression recognition on a webcam, video, image(s) or the "
                                             "bundled sample clip, with any registered model.")
    ap.add_argument("--model", help="registered model name (default: the best shipped model)")
    ap.add_argument("--list-models", action="store_true", help="list model names and whether they are shipped")
    ap.add_argument("--models-dir", type=Path, help="folder with model artifacts (default: $FER_HYBRID_MODELS or models/)")
    ap.add_argument("--source", default="0",
                    help="webcam index (0), video file, image file, folder of images, or 'sample' (default: 0)")
    ap.add_argument("--output", type=Path, help="write the annotated video here (mp4v)")
    ap.add_argument("--jsonl", type=Path, help="write one JSON line per frame here")
    ap.add_argument("--no-display", action="store_true", help="no window (automatic when there is no display)")
    ap.add_argument("--max-frames", type=_positive_int, help="stop after this many frames")
    ap.add_argument("--detect-every", type=_positive_int,
                    help="run the face detector every N frames, track in between (default 3; 1 for images)")
    ap.add_argument("--detect-width", type=int, default=None,
                    help="videos and cameras: detect/track on a copy at most this wide, px (0 = full size; default "
                         "480); images are always detected at full size")
    ap.add_argument("--upsample", type=int, default=None,
                    help="dlib HOG upsampling (finds smaller faces, slower; default 0 for videos, for images once "
                         "when the shorter side is below 400 px)")
    ap.add_argument("--smoothing", type=_alpha,
                    help="EMA alpha for per-face probabilities, weight of the newest frame "
                         "(1 = off; default 0.5; 1 for images)")
    ap.add_argument("--crop-margin", type=float, default=0.1,
                    help="grow each face box by this fraction per side before cropping (default 0.1)")
    ap.add_argument("--landmarks", action="store_true", help="compute and draw dlib's 68 landmarks (JSONL gains them)")
    ap.add_argument("--tf-threads", type=int, default=DEFAULT_TF_THREADS,
                    help=f"TensorFlow intra-op threads (default {DEFAULT_TF_THREADS}, measured fastest for "
                         "batch-1 inference on 2 cores; 0 = TF default)")
    ap.add_argument("--image-fps", type=float, default=10.0, help="frame rate of videos made from images")
    ap.add_argument("--no-pipeline", dest="pipeline", action="store_false",
                    help="run decoding + detection/tracking and classification one after the other in one "
                         "thread (default: detection/tracking of the next frame overlaps classification)")
    return ap


def list_models_text(root: Path | None) -> str:
    from .predictors import default_model, list_models, model_spec

    available = set(list_models(available_only=True, root=root))
    try:
        default = default_model(root)
    except FileNotFoundError:
        default = None
    lines = []
    for name in list_models():
        spec = model_spec(name)
        state = "shipped" if name in available else f"missing (train: {spec.train_command})"
        mark = " (default)" if name == default else ""
        lines.append(f"{name:12s} {spec.kind:9s} {state}{mark}  - {spec.description}")
    return "\n".join(lines)


def _model_errors():
    from .landmarks.detect import LandmarkModelMissing
    from .predictors import ArtifactError, ArtifactMissingError

    return ValueError, ArtifactMissingError, ArtifactError, LandmarkModelMissing


def resolve_model(name: str | None, root: Path | None) -> str:
    """The model name to use (default: the best shipped one); CliError when unknown or not shipped.

    Cheap: reads no model, so bad names fail before the source or TensorFlow is opened.
    """
    from .predictors import default_model, list_models, load_predictor, model_spec

    try:
        name = name or default_model(root)
        model_spec(name)
        if name not in list_models(available_only=True, root=root):
            load_predictor(name, root)  # raises ArtifactMissingError naming the training command
        return name
    except _model_errors() as e:
        raise CliError(str(e)) from None


def load_model(name: str, root: Path | None, tf_threads: int | None = DEFAULT_TF_THREADS):
    """Predictor for ``name`` with TensorFlow limited to ``tf_threads``; CliError for a missing/corrupt artifact."""
    from .predictors import load_predictor

    configure_tensorflow_threads(tf_threads)
    try:
        return load_predictor(name, root)
    except _model_errors() as e:
        raise CliError(str(e)) from None


class _Outputs:
    """The annotated video and JSONL writers (both optional), opened lazily on the first frame."""

    def __init__(self, video: Path | None, jsonl: Path | None, fps: float):
        from .video import AtomicJsonlWriter

        self.video_path, self.fps = video, fps
        self.video = None
        self.jsonl = AtomicJsonlWriter(jsonl) if jsonl else None

    def write(self, image: np.ndarray, record: dict) -> None:
        from .video import AtomicVideoWriter

        if self.video_path is not None:
            if self.video is None:
                self.video = AtomicVideoWriter(self.video_path, self.fps, (image.shape[1], image.shape[0]))
            self.video.write(image)
        if self.jsonl is not None:
            self.jsonl.write(record)

    def close(self, ok: bool) -> list[str]:
        done = []
        for name, w in (("video", self.video), ("jsonl", self.jsonl)):
            if w is None:
                continue
            if ok:
                done.append(f"{name} -> {w.close()}")
            else:
                w.abort()
        if ok and self.video_path is not None and self.video is None:
            done.append("video -> (no frames, not written)")
        return done


def run(args) -> dict:
    """Run the CLI job; returns the summary dict. Raises CliError for bad inputs."""
    import cv2

    from .overlay import draw_fps
    from .video import SourceError, open_source

    if args.list_models:
        print(list_models_text(args.models_dir))
        return {}
    name = resolve_model(args.model, args.models_dir)
    try:
        source = open_source(args.source, image_fps=args.image_fps)
    except SourceError as e:
        raise CliError(str(e)) from None
    images = source.kind == "images"
    detect_every = args.detect_every or (1 if images else 3)
    smoothing = args.smoothing or (1.0 if images else 0.5)
    display = not args.no_display and has_display()

    with source:
        predictor = load_model(name, args.models_dir, args.tf_threads)
        analyzer = Analyzer(predictor, crop_margin=args.crop_margin, landmarks=args.landmarks,
                            upsample=args.upsample if images and args.upsample is not None else None)
        detect_width = args.detect_width if args.detect_width is not None else 480
        runner = analyzer.session(detect_every, smoothing, detect_width or None, args.upsample or 0)
        try:
            outputs = _Outputs(args.output, args.jsonl, source.fps)
        except OSError as e:
            raise CliError(f"cannot write output: {e}") from None
        frames = faces = 0
        ok = False
        t_start = t_last = time.perf_counter()
        fps_ema = None
        try:
            wanted = itertools.islice(source, args.max_frames) if args.max_frames else source
            results_iter = (((f, analyzer.analyze(f.image)) for f in wanted) if images
                            else run_frames(runner, wanted, getattr(args, "pipeline", True)))
            with contextlib.closing(results_iter):
                for frame, results in results_iter:
                    annotate(frame.image, results, runner.classes, args.landmarks)
                    now = time.perf_counter()  # FPS = output rate: frame-to-frame time, whatever overlaps
                    dt, t_last = max(now - t_last, 1e-6), now
                    fps_ema = 1 / dt if fps_ema is None else 0.9 * fps_ema + 0.1 / dt
                    draw_fps(frame.image, fps_ema, name)
                    record = {"index": frame.index, "timestamp": frame.timestamp,
                              "faces": [r.to_json(runner.classes) for r in results]}
                    if frame.path is not None:
                        record["file"] = frame.path
                    outputs.write(frame.image, record)
                    frames += 1
                    faces += len(results)
                    if display:
                        cv2.imshow(f"fer_hybrid - {name} (q/Esc quits)", frame.image)
                        if cv2.waitKey(1) & 0xFF in (ord("q"), 27):
                            break
            ok = True
        except KeyboardInterrupt:
            ok = True  # keep what was written so far
        except OSError as e:
            raise CliError(f"I/O error while reading the source or writing outputs: {e}") from None
        finally:
            written = outputs.close(ok)
            if display:
                cv2.destroyAllWindows()
    seconds = time.perf_counter() - t_start
    summary = {"model": name, "source": source.description, "frames": frames, "skipped": source.skipped,
               "faces": faces, "seconds": seconds, "fps": frames / seconds if seconds > 0 else 0.0,
               "pipeline": bool(getattr(args, "pipeline", True)), "timings": runner.timings, "outputs": written}
    mode = "pipelined" if summary["pipeline"] else "sequential"
    print(f"fer_hybrid.realtime: {frames} frames ({source.skipped} undecodable skipped), {faces} faces, "
          f"{summary['fps']:.1f} FPS ({mode}), model {name}, source {source.description}; "
          + ("; ".join(written) if written else "no outputs written (use --output/--jsonl)"))
    return summary


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # FFmpeg quiet: a bad video gives our one-line error only
    args = build_parser().parse_args(argv)
    try:
        run(args)
    except CliError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
