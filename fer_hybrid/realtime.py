"""Realtime expression recognition with any registered model: frames -> faces -> probabilities -> overlay/JSONL.

    python -m fer_hybrid.realtime --model vggbn --source sample --no-display --output demo.mp4 --jsonl demo.jsonl
    python -m fer_hybrid.realtime --source 0                      # webcam, window (q or Esc quits)
    python -m fer_hybrid.realtime --list-models

Faces come from dlib HOG every ``--detect-every`` frames (on a copy at most ``--detect-width`` px wide) and
from dlib correlation trackers in between; each face track has its own EMA of probabilities
(``--smoothing`` alpha). A predictor is used through the contract of :mod:`fer_hybrid.predictors`;
optional duck-typed extras are used when present:

* ``predict_proba_frame(frame, boxes) -> (k, 5)`` - the predictor works on the full frame and the boxes
  (e.g. landmarks), instead of on crops;
* for ``--landmarks`` (first found): ``predict_frame(frame, boxes) -> (proba (k, 5), points (k, 68, 2))``
  in one pass, ``last_landmarks`` set by ``predict_proba_frame``, ``landmarks_frame(frame, boxes)`` in
  frame pixels, or ``landmarks(faces) -> (k, 68, 2)`` in crop pixels (mapped back by the crop origin);
* ``last_timings = {"landmarks": s, "classification": s}`` set after a call - splits the time report.

A NaN probability row (no landmarks) gives ``label: null`` and ``no_landmarks: true``; never a guess.

Pipelining (default; ``--no-pipeline`` turns it off): each frame goes through two stages,
A = decode + gray + detect/track -> boxes (:meth:`RealtimeRunner.locate`) and B = crop + predict +
smooth (:meth:`RealtimeRunner.classify`) + annotate + write/show. With the pipeline, stage A runs in one
background thread (:class:`fer_hybrid.video.Prefetch`) up to :data:`PIPELINE_DEPTH` frames ahead while
the main thread does stage B. dlib's HOG detector (checked: Python code runs during its calls), its
correlation tracker, OpenCV and TensorFlow/XGBoost release the GIL in their C++ parts, so the two
stages overlap on two cores (experiments/bench_realtime.py measures both modes and the CPU use).
The tracker is only touched by stage A and each track's smoother only by stage B, in frame order, so
the output (boxes, ids, probabilities, smoothing, JSONL) is identical to the sequential mode.
Windows (cv2.imshow / waitKey) stay in the main thread.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import itertools
import os
import sys
import time
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np

from .labels import STUDY_EMOTIONS

EXIT_BAD_INPUT = 2
DEFAULT_TF_THREADS = 1  # measured: see experiments/reports/bench-realtime/benchmark.md
PIPELINE_DEPTH = 2      # frames stage A may run ahead of stage B (bounded queue; see stream())


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
# Per-frame processing
# ---------------------------------------------------------------------------------------------
@dataclasses.dataclass
class FaceResult:
    id: int
    box: np.ndarray                 # int (4,) [x0, y0, x1, y1] frame pixels
    proba: np.ndarray               # float (5,), NaN when the model has no answer
    smoothed: np.ndarray            # float (5,), NaN when proba is NaN
    detected: bool                  # box from the detector (False: from the tracker)
    landmarks: np.ndarray | None = None  # float (68, 2) frame pixels
    fallback: str | None = None     # e.g. "cnn": the hybrid had no landmarks and answered with its CNN alone

    def label(self, classes: Sequence[str]) -> str | None:
        return classes[int(np.argmax(self.proba))] if np.all(np.isfinite(self.proba)) else None

    def smoothed_label(self, classes: Sequence[str]) -> str | None:
        return classes[int(np.argmax(self.smoothed))] if np.all(np.isfinite(self.smoothed)) else None

    def to_json(self, classes: Sequence[str], digits: int = 4) -> dict:
        ok = bool(np.all(np.isfinite(self.proba)))
        probs = {c: round(float(p), digits) for c, p in zip(classes, self.proba)} if ok else None
        smoothed = {c: round(float(p), digits) for c, p in zip(classes, self.smoothed)} if ok else None
        out = {"id": self.id, "box": [int(v) for v in self.box], "detected": self.detected,
               "probabilities": probs, "label": self.label(classes),
               "smoothed_probabilities": smoothed, "smoothed_label": self.smoothed_label(classes),
               "no_landmarks": not ok}
        if self.fallback:
            out["fallback"] = self.fallback
        if self.landmarks is not None:
            ok_pts = bool(np.all(np.isfinite(self.landmarks)))
            out["landmarks"] = np.round(self.landmarks, 1).tolist() if ok_pts else None
        return out


@dataclasses.dataclass
class Located:
    """Stage A's result for one frame: a snapshot of the face tracks (taken so that stage A can move
    on to the next frame while stage B uses this one)."""
    ids: list[int]                  # track ids, (k,)
    boxes: np.ndarray               # int64 (k, 4) [x0, y0, x1, y1] frame pixels
    detected: list[bool]            # (k,) box from the detector on this frame
    smoothers: list                 # (k,) the tracks' ProbabilityEMA objects (updated by stage B only)
    seconds: float                  # detection/tracking time of this frame, s
    started: float                  # time.perf_counter() when stage A began on this frame


def crop_faces(gray: np.ndarray, boxes: np.ndarray, margin: float = 0.0) -> tuple[list[np.ndarray], np.ndarray]:
    """Gray crops of ``boxes`` (k, 4) grown by ``margin`` x box size per side -> (crops, int (k, 2) origins)."""
    h, w = gray.shape[:2]
    crops, origins = [], []
    for x0, y0, x1, y1 in np.asarray(boxes, dtype=np.float64):
        mx, my = margin * (x1 - x0), margin * (y1 - y0)
        a0, b0 = int(max(0, x0 - mx)), int(max(0, y0 - my))
        a1, b1 = int(min(w, x1 + mx + 1)), int(min(h, y1 + my + 1))
        crops.append(gray[b0:b1, a0:a1])
        origins.append((a0, b0))
    return crops, np.array(origins, dtype=np.int64).reshape(-1, 2)


class RealtimeRunner:
    """Runs detection/tracking + a predictor on frames. ``process(frame) -> list[FaceResult]``.

    ``timings`` accumulates seconds per stage (detection, landmarks, classification) over all frames.
    """

    def __init__(self, predictor, detect_every: int = 3, smoothing: float = 0.5, detect_width: int | None = 480,
                 upsample: int = 0, crop_margin: float = 0.1, want_landmarks: bool = False):
        from .tracking import FaceTracker

        self.predictor = predictor
        self.classes = tuple(getattr(predictor, "classes", STUDY_EMOTIONS))
        self.tracker = FaceTracker(detect_every, detect_width, smoothing, upsample)
        self.crop_margin = crop_margin
        self.want_landmarks = want_landmarks
        self.offers_landmarks = any(hasattr(predictor, a) for a in
                                    ("predict_frame", "landmarks_frame", "landmarks", "last_landmarks"))
        self.timings = {"detection": 0.0, "landmarks": 0.0, "classification": 0.0}
        self.last_timings = dict(self.timings)

    def reset(self) -> None:
        """Forget all face tracks and their smoothing state (call between two unrelated sources)."""
        from .tracking import FaceTracker

        t = self.tracker
        self.tracker = FaceTracker(t.detect_every, t.detect_width, t.smoothing, t.upsample, t.match_iou)

    def _predict(self, image: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray | None, dict]:
        from .landmarks.detect import to_gray

        p, t = self.predictor, {"landmarks": 0.0, "classification": 0.0}
        t0 = time.perf_counter()
        crops = origins = pts = None
        if self.want_landmarks and hasattr(p, "predict_frame"):
            proba, pts = p.predict_frame(image, boxes)  # probabilities and frame-pixel points in one pass
            pts = np.asarray(pts, dtype=np.float32)
        elif hasattr(p, "predict_proba_frame"):
            proba = p.predict_proba_frame(image, boxes)
        else:
            crops, origins = crop_faces(to_gray(image), boxes, self.crop_margin)
            proba = p.predict_proba(crops)
        elapsed = time.perf_counter() - t0
        reported = getattr(p, "last_timings", None)
        if isinstance(reported, dict) and "landmarks" in reported:
            t["landmarks"] = float(reported["landmarks"])
            t["classification"] = max(0.0, elapsed - t["landmarks"])
        else:
            t["classification"] = elapsed
        if self.want_landmarks and self.offers_landmarks and pts is None:
            t0 = time.perf_counter()
            if hasattr(p, "predict_proba_frame") and getattr(p, "last_landmarks", None) is not None:
                pts = np.asarray(p.last_landmarks, dtype=np.float32)
            elif hasattr(p, "landmarks_frame"):
                pts = np.asarray(p.landmarks_frame(image, boxes), dtype=np.float32)
            elif hasattr(p, "landmarks"):
                if crops is None:
                    crops, origins = crop_faces(to_gray(image), boxes, self.crop_margin)
                pts = np.asarray(p.landmarks(crops), dtype=np.float32) + origins[:, None, :]
            t["landmarks"] += time.perf_counter() - t0
        proba = np.asarray(proba, dtype=np.float64).reshape(len(boxes), len(self.classes))
        return proba, pts, t

    def process(self, image: np.ndarray) -> list[FaceResult]:
        """Faces of one BGR frame (h, w, 3), with probabilities and smoothed probabilities.

        ``classify(image, locate(image))``. ValueError for a frame that is not a non-empty uint8
        gray (h, w) / BGR (h, w, 3) / BGRA image.
        """
        return self.classify(image, self.locate(image))

    def locate(self, image: np.ndarray) -> Located:
        """Stage A: advance the face tracker by one frame (detect or track) -> :class:`Located`.

        Call it for the frames in order, from one thread at a time. ValueError for a bad frame.
        """
        started = time.perf_counter()
        image = np.asarray(image)
        if image.dtype != np.uint8 or image.size == 0 or not (
                image.ndim == 2 or (image.ndim == 3 and image.shape[2] in (1, 3, 4))):
            raise ValueError(f"expected a non-empty uint8 gray or BGR frame, got {image.dtype} {image.shape}")
        tracks = list(self.tracker.step(image))
        boxes = np.array([np.round(t.box) for t in tracks], dtype=np.int64).reshape(-1, 4)
        return Located([t.id for t in tracks], boxes, [bool(t.detected) for t in tracks],
                       [t.smoother for t in tracks], time.perf_counter() - started, started)

    def classify(self, image: np.ndarray, located: Located) -> list[FaceResult]:
        """Stage B: probabilities of the located faces of ``image``, smoothed per track -> list[FaceResult].

        Call it for the frames in the order they were located. Adds the frame's times to ``timings``.
        """
        image = np.asarray(image)
        timings = {"detection": located.seconds, "landmarks": 0.0, "classification": 0.0}
        k = len(located.ids)
        if not k:
            self._add(timings)
            return []
        boxes = located.boxes
        proba, pts, t = self._predict(image, boxes)
        timings.update(t)
        self._add(timings)
        fell_back = getattr(self.predictor, "last_fallback", None)  # hybrid: rows answered by the CNN alone
        if fell_back is None or len(fell_back) != k:
            fell_back = [False] * k
        return [FaceResult(located.ids[i], boxes[i], proba[i], located.smoothers[i].update(proba[i]),
                           located.detected[i], None if pts is None else pts[i], "cnn" if fell_back[i] else None)
                for i in range(k)]

    def _add(self, timings: dict) -> None:
        self.last_timings = timings
        for k, v in timings.items():
            self.timings[k] += v


def stream(runner: RealtimeRunner, frames: Iterable, pipeline: bool = True,
           depth: int = PIPELINE_DEPTH) -> Iterator[tuple]:
    """``(frame, located)`` pairs for ``frames`` (items with an ``.image``, e.g. :class:`fer_hybrid.video.Frame`).

    pipeline=True: iterating ``frames`` (decoding) and ``runner.locate`` run in one background thread,
    up to ``depth`` frames ahead; exceptions from there are re-raised here. pipeline=False: both run
    lazily in the caller's thread, one frame at a time. Either way, close the result (``with
    contextlib.closing(...)``) before releasing the source.
    """
    located = ((f, runner.locate(f.image)) for f in frames)
    if not pipeline:
        return located
    from .video import Prefetch

    return Prefetch(located, depth, name="fer_hybrid-stage-a")


def annotate(image: np.ndarray, faces: list[FaceResult], classes: Sequence[str], draw_landmarks: bool) -> None:
    from .overlay import draw_face

    for f in faces:
        label = f.smoothed_label(classes)
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
    ap.add_argument("--detect-width", type=int, default=480,
                    help="detect/track on a copy at most this wide, px (0 = full size; default 480)")
    ap.add_argument("--upsample", type=int, default=0, help="dlib HOG upsampling (finds smaller faces, slower)")
    ap.add_argument("--smoothing", type=_alpha,
                    help="EMA alpha for per-face probabilities, weight of the newest frame "
                         "(1 = off; default 0.5; 1 for images)")
    ap.add_argument("--crop-margin", type=float, default=0.1,
                    help="grow each face box by this fraction per side before cropping (default 0.1)")
    ap.add_argument("--landmarks", action="store_true", help="draw landmarks when the model offers them")
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
        runner = RealtimeRunner(predictor, detect_every, smoothing, args.detect_width or None, args.upsample,
                                args.crop_margin, args.landmarks)
        if args.landmarks and not runner.offers_landmarks:
            print(f"note: model {name!r} offers no landmarks; --landmarks draws nothing", file=sys.stderr)
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
            with contextlib.closing(stream(runner, wanted, getattr(args, "pipeline", True))) as located:
                for frame, loc in located:
                    results = runner.classify(frame.image, loc)
                    annotate(frame.image, results, runner.classes, args.landmarks)
                    now = time.perf_counter()  # FPS = output rate: frame-to-frame time, whatever overlaps
                    dt, t_last = max(now - t_last, 1e-6), now
                    fps_ema = 1 / dt if fps_ema is None else 0.9 * fps_ema + 0.1 / dt
                    draw_fps(frame.image, fps_ema, name)
                    outputs.write(frame.image, {"index": frame.index, "timestamp": frame.timestamp,
                                                "faces": [r.to_json(runner.classes) for r in results]})
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
