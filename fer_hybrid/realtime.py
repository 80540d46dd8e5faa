"""Realtime expression recognition with any registered model: frames -> faces -> probabilities -> overlay/JSONL.

    python -m fer_hybrid.realtime --model vggbn --source sample --no-display --output demo.mp4 --jsonl demo.jsonl
    python -m fer_hybrid.realtime --source 0                      # webcam, window (q or Esc quits)
    python -m fer_hybrid.realtime --source photos/ --jsonl faces.jsonl --output annotated/
    python -m fer_hybrid.realtime --list-models

This module is the command line around :class:`fer_hybrid.inference.Analyzer`, which owns detection ->
crop -> predict. Videos and cameras go through :meth:`Analyzer.session` (dlib HOG every ``--detect-every``
frames on a copy at most ``--detect-width`` px wide, correlation trackers in between, an EMA of
probabilities per track, ``--smoothing``); images and folders go through :meth:`Analyzer.analyze`, one
independent photo at a time at full resolution (no tracks, no smoothing; each JSONL line names its file).

A NaN probability row (no landmarks) gives ``label: null`` and ``no_landmarks: true``; never a guess.

Outputs (:func:`plan_outputs`, checked before any work starts): ``--output`` picks its format by extension
- a video for .mp4/.avi/.mkv/.mov; one annotated image for an image extension (.png, .jpg, ...) when the
source is one image; a folder (``DIR/`` or an existing folder) for one annotated image per input image,
named like the input. ``--jsonl`` is one JSON line per frame. Every output is written to a hidden temp
file beside it (``.NAME.tmp-<pid>-...``) and published only when complete (a video must reopen with all
its frames); a failed or interrupted run publishes nothing, leaves existing files unchanged and removes
its temp files (those of a killed run are removed by the next run writing the same file). Devices,
folders, FIFOs, the input itself and one path for two outputs are refused. A symlinked output is
written through (the file it points at is replaced; the link stays); an existing file keeps its mode.

Exit codes: 0 done; 2 bad input or an output that could not be written (one line on stderr);
128 + signal number when interrupted (130 for Ctrl-C, 143 for SIGTERM), with "interrupted after N frames".

Pipelining (default; ``--no-pipeline`` turns it off): stage A (decode + detect/track) runs one or two
frames ahead in a background thread while the main thread classifies, annotates and writes
(:func:`fer_hybrid.inference.analyzer.stream`); the output is identical to the sequential mode.
Windows (cv2.imshow / waitKey) stay in the main thread, and are only opened when a display answers
(:func:`display_problem`); otherwise the run continues headless after a one-line notice.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import itertools
import os
import re
import signal
import stat
import sys
import threading
import time
from pathlib import Path
from typing import Iterator

import numpy as np

from .inference.analyzer import PIPELINE_DEPTH, Analyzer, Face, VideoSession, run_frames, stream  # noqa: F401
from .inference.framing import crop_faces  # noqa: F401  (re-exported)
from .keras_io import configure_tensorflow_threads, default_intra_op_threads  # noqa: F401  (re-exported)
from .overlay import draw_faces as annotate  # noqa: F401  (re-exported under its old name)
from .cli_args import OneLineParser, number_arg, rescue_arg

EXIT_BAD_INPUT = 2
DEFAULT_TF_THREADS = default_intra_op_threads()  # 2 (1 on one core); measured: experiments/reports/bench-realtime


# ---------------------------------------------------------------------------------------------
# Setup helpers
# ---------------------------------------------------------------------------------------------
def quiet_tensorflow_logs() -> None:
    """Before TensorFlow is imported: its C++ log level to errors only, absl's and TF's Python loggers to
    ERROR. (TF 2.20+ still prints a few INFO lines from C++ before absl is initialised; the CLI filters
    those out of stderr while it loads a model: :func:`native_log_filter`.)"""
    import logging

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    try:
        import absl.logging

        absl.logging.set_verbosity(absl.logging.ERROR)
    except ImportError:
        pass


# absl/TF C++ lines printed before absl::InitializeLog() (INFO and WARNING severities)
NATIVE_NOISE = re.compile(r"^(WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
                          r"|[IW]\d{4} \d\d:\d\d:\d+\.\d+ +\d+ \S+:\d+\] )")


@contextlib.contextmanager
def native_log_filter() -> Iterator[None]:
    """Capture file descriptor 2 (native libraries' stderr) for the duration; afterwards replay what was
    written, minus TensorFlow/absl INFO and WARNING lines (:data:`NATIVE_NOISE`). Python's own stderr
    output in the block is kept."""
    import tempfile

    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, AttributeError, ValueError):
        yield
        return
    capture = tempfile.TemporaryFile()
    os.dup2(capture.fileno(), 2)
    try:
        yield
    finally:
        with contextlib.suppress(Exception):
            sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        capture.seek(0)
        text = capture.read().decode("utf-8", "replace")
        capture.close()
        kept = [ln for ln in text.splitlines() if ln.strip() and not NATIVE_NOISE.match(ln)]
        if kept:
            sys.stderr.write("\n".join(kept) + "\n")
            sys.stderr.flush()


def _opencv_gui() -> str:
    """OpenCV's GUI backend as its build information names it ('QT5', 'GTK3', 'NONE', ...)."""
    import cv2

    m = re.search(r"^\s*GUI:\s*(\S+)", cv2.getBuildInformation(), re.M)
    return m.group(1).upper() if m else "UNKNOWN"


def _x11_answers(display: str) -> bool:
    """True when an X server accepts a connection on ``display`` (libxcb's xcb_connect, what Qt's xcb
    plugin does; libX11's XOpenDisplay when libxcb is missing)."""
    import ctypes
    import ctypes.util

    name = display.encode()
    for lib, connect, check, close in (("xcb", "xcb_connect", "xcb_connection_has_error", "xcb_disconnect"),
                                       ("X11", "XOpenDisplay", None, "XCloseDisplay")):
        path = ctypes.util.find_library(lib)
        if not path:
            continue
        try:
            so = ctypes.CDLL(path)
        except OSError:
            continue
        fn = getattr(so, connect)
        fn.restype = ctypes.c_void_p
        conn = fn(name, None) if lib == "xcb" else fn(name)
        if not conn:
            return False
        ok = True
        if check:
            getattr(so, check).argtypes = [ctypes.c_void_p]
            ok = getattr(so, check)(ctypes.c_void_p(conn)) == 0
        getattr(so, close).argtypes = [ctypes.c_void_p]
        getattr(so, close)(ctypes.c_void_p(conn))
        return ok
    return True  # cannot probe: trust $DISPLAY


def display_problem() -> str | None:
    """Why no window can be shown here, or None when one can (Linux/BSD: OpenCV has a GUI backend and
    the X display in $DISPLAY - or, for GTK builds, a Wayland display - answers; Windows/macOS: assumed).
    Probing first matters: OpenCV's Qt backend aborts the process when the display does not answer."""
    if not (sys.platform.startswith("linux") or "bsd" in sys.platform):
        return None
    gui = _opencv_gui()
    if gui == "NONE":
        return "OpenCV was built without a GUI backend"
    display = os.environ.get("DISPLAY", "")
    if not display:
        if os.environ.get("WAYLAND_DISPLAY") and gui.startswith("GTK"):
            return None
        return "$DISPLAY is not set"
    if not _x11_answers(display):
        return f"the X display {display!r} does not answer"
    return None


def has_display() -> bool:
    """True when a window can be shown (see :func:`display_problem`)."""
    return display_problem() is None


# ---------------------------------------------------------------------------------------------
# Per-frame processing lives in fer_hybrid.inference (the Analyzer); these names stay for users
# ---------------------------------------------------------------------------------------------
RealtimeRunner = VideoSession  # detection/tracking + predictor over one video's frames
FaceResult = Face


# ---------------------------------------------------------------------------------------------
# Errors, signals
# ---------------------------------------------------------------------------------------------
class CliError(Exception):
    """A bad input reported as one line on stderr with exit code 2."""


class Interrupted(KeyboardInterrupt):
    """The run was stopped by a signal (SIGINT = Ctrl-C, SIGTERM, SIGHUP) after ``frames`` frames."""

    def __init__(self, signum: int = signal.SIGINT, frames: int = 0, started: bool = False):
        super().__init__(signum)
        self.signum, self.frames, self.started = int(signum), frames, started


def _raise_interrupted(signum, _frame):
    raise Interrupted(signum)


_CATCHABLE = tuple(getattr(signal, n) for n in ("SIGTERM", "SIGHUP") if hasattr(signal, n))


@contextlib.contextmanager
def signals_interrupt() -> Iterator[None]:
    """SIGTERM and SIGHUP raise :class:`Interrupted` in the main thread, like Ctrl-C raises
    KeyboardInterrupt, so that the same cleanup runs (signals already ignored, e.g. under nohup, stay so)."""
    old = {}
    if threading.current_thread() is threading.main_thread():
        for sig in _CATCHABLE:
            if signal.getsignal(sig) == signal.SIG_DFL:
                old[sig] = signal.signal(sig, _raise_interrupted)
    try:
        yield
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)


@contextlib.contextmanager
def signals_ignored() -> Iterator[None]:
    """Ignore SIGINT/SIGTERM/SIGHUP for the duration (publishing or removing outputs must not be cut)."""
    old = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, *_CATCHABLE):
            old[sig] = signal.signal(sig, signal.SIG_IGN)
    try:
        yield
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)


# ---------------------------------------------------------------------------------------------
# Options
# ---------------------------------------------------------------------------------------------
def _source(s: str) -> str:
    if not s.strip():
        raise argparse.ArgumentTypeError("is empty; give a camera index, a video, an image, a folder or 'sample'")
    return s


def build_parser() -> argparse.ArgumentParser:
    from .video import MAX_CAMERA_INDEX

    big = sys.maxsize
    ap = OneLineParser(prog="python -m fer_hybrid.realtime",
                 description="Facial-expression recognition on a webcam, video, image(s) or the "
                             "bundled sample clip, with any registered model.")
    ap.add_argument("--model", help="registered model name (default: the best shipped model)")
    ap.add_argument("--list-models", action="store_true", help="list model names and whether they are shipped")
    ap.add_argument("--models-dir", type=Path,
                    help="folder with model artifacts (default: $FER_HYBRID_MODELS or models/)")
    ap.add_argument("--source", default="0", type=_source,
                    help=f"webcam index (0..{MAX_CAMERA_INDEX}), video file, image file, folder of images, or "
                         "'sample' (default: 0)")
    ap.add_argument("--output",
                    help="annotated output; the format follows the name: .mp4/.avi/.mkv/.mov = a video; "
                         ".png/.jpg/... = the annotated image (one image source); DIR/ or an existing folder = "
                         "one annotated image per input image, named like the input")
    ap.add_argument("--jsonl", type=Path, help="write one JSON line per frame here")
    ap.add_argument("--no-display", action="store_true",
                    help="no window (automatic, with a notice, when no display answers)")
    ap.add_argument("--max-frames", type=number_arg(int, 1, big, text="an integer >= 1"),
                    help="stop after this many frames")
    ap.add_argument("--detect-every", type=number_arg(int, 1, big, text="an integer >= 1"),
                    help="run the face detector every N frames, track in between (default 3; 1 for images)")
    ap.add_argument("--detect-width", type=number_arg(int, 32, big, also=(0,), text="0 or an integer >= 32"),
                    default=None,
                    help="videos and cameras: detect/track on a copy at most this wide, px (0 = full size; default "
                         "480); images are always detected at full size")
    ap.add_argument("--upsample", type=number_arg(int, 0, 3), default=None,
                    help="dlib HOG upsampling, 0..3 (finds smaller faces, slower; default 0 for videos, for images "
                         "once when the shorter side is below 400 px)")
    ap.add_argument("--rescue-threshold", type=rescue_arg, default="auto",
                    help="images: when no face clears dlib's threshold, keep the best candidate scoring above this "
                         "(auto = the value chosen on val in the frame; none = never)")
    ap.add_argument("--smoothing", type=number_arg(float, 0, 1, lo_open=True),
                    help="EMA alpha for per-face probabilities in (0, 1], weight of the newest frame "
                         "(1 = off; default 0.5; 1 for images)")
    ap.add_argument("--crop-margin", type=number_arg(float, 0, 2), default=0.1,
                    help="with --align off: grow each face box by this fraction per side before cropping, 0..2 "
                         "(default 0.1)")
    ap.add_argument("--align", choices=["auto", "off", "box", "level", "eyes"], default="auto",
                    help="face crop for crop models: auto (default: level for crop models, chosen on val in the frame; "
                         "models that place their own landmarks are not aligned), off (the box grown by --crop-margin), "
                         "box (FER2013's calibrated framing of the box), level (that, turned to level the eyes), "
                         "eyes (eyes on FER2013's mean eye positions)")
    ap.add_argument("--landmarks", action="store_true", help="compute and draw dlib's 68 landmarks (JSONL gains them)")
    ap.add_argument("--tf-threads", type=number_arg(int, 0, 64), default=DEFAULT_TF_THREADS,
                    help=f"intra-op threads of the model runtime (TensorFlow or onnxruntime), 0..64 (default "
                         f"{DEFAULT_TF_THREADS}: 2, or 1 on one core, measured fastest live on 2 cores; 0 = "
                         "TensorFlow's default)")
    ap.add_argument("--image-fps", type=number_arg(float, 0, 240, lo_open=True), default=10.0,
                    help="frame rate of videos made from images, (0, 240] (default 10)")
    ap.add_argument("--no-pipeline", dest="pipeline", action="store_false",
                    help="run decoding + detection/tracking and classification one after the other in one "
                         "thread (default: detection/tracking of the next frame overlaps classification)")
    return ap


# ---------------------------------------------------------------------------------------------
# Models
# ---------------------------------------------------------------------------------------------
def list_models_text(root: Path | None) -> str:
    """One line per registered model of ``root``: name, kind, test accuracy as the registry runs it,
    batch-1 ms/face from its report, state."""
    from .predictors import model_table

    rows = model_table(root)
    lines = [f"{'name':16s} {'kind':9s} {'test':>6s} {'ms/face':>8s}  state - description"]
    for r in rows:
        acc = f"{r['test_accuracy']:.4f}" if r["test_accuracy"] is not None else "-"
        ms = f"{r['ms_per_face']:.1f}" if r["ms_per_face"] is not None else "-"
        if r["ms_per_face"] is not None and r["tta"] not in (None, "none"):
            ms += "*"
        state = "shipped" if r["available"] else f"missing (train: {r['train_command']})"
        mark = " (default)" if r["default"] else ""
        lines.append(f"{r['name']:16s} {r['kind']:9s} {acc:>6s} {ms:>8s}  {state}{mark} - {r['description']}")
    lines.append("test: FER2013-5 PrivateTest accuracy as the registry runs the model (TTA included); ms/face: "
                 "batch-1 from its report; * = one view, while the registry runs the TTA's views (flip: 2)")
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
    """Predictor for ``name`` with TensorFlow limited to ``tf_threads``; CliError for a missing/corrupt artifact.

    TensorFlow's pre-initialisation log lines are filtered out of stderr while it loads."""
    from .predictors import load_predictor

    quiet_tensorflow_logs()
    configure_tensorflow_threads(tf_threads)
    try:
        with native_log_filter():
            return load_predictor(name, root)
    except _model_errors() as e:
        raise CliError(str(e)) from None


# ---------------------------------------------------------------------------------------------
# Outputs: planned and checked before any work, written atomically, published only when complete
# ---------------------------------------------------------------------------------------------
@dataclasses.dataclass
class OutputPlan:
    """Where each output goes (resolved through symlinks). ``image_dir``: one annotated image per input
    image in this folder; ``image``: the one annotated image of a single-image source."""

    video: Path | None = None
    image: Path | None = None
    image_dir: Path | None = None
    jsonl: Path | None = None
    image_names: dict = dataclasses.field(default_factory=dict)  # input path -> output file name
    named: list = dataclasses.field(default_factory=list)  # (target, how the user named it), for messages

    def image_target(self, input_path: str | None) -> Path | None:
        if self.image is not None:
            return self.image
        if self.image_dir is not None and input_path is not None:
            return self.image_dir / self.image_names.get(str(input_path), Path(input_path).name)
        return None

    def targets(self) -> list[Path]:
        return [t for t, _ in self.named]


def _kind_of(mode: int) -> str | None:
    for test, name in ((stat.S_ISDIR, "a folder"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return None if stat.S_ISREG(mode) else "not a regular file"


def _check_file_target(option: str, raw: str | Path) -> Path:
    """The resolved file ``option`` will replace; CliError unless it is a regular file or a new path
    whose nearest existing parent is a folder."""
    from ._atomic import resolve_target

    target = resolve_target(raw)
    try:
        st = os.stat(target)
    except FileNotFoundError:
        st = None
    except OSError as e:
        raise CliError(f"{option} {raw}: {e.strerror}") from None
    if st is not None:
        kind = _kind_of(st.st_mode)
        if kind:
            raise CliError(f"{option} {raw} is {kind}, not a regular file; refusing to write onto it")
    parent = target.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise CliError(f"{option} {raw}: {parent} is not a folder")
    return target


def _file_key(path: Path) -> tuple | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _input_paths(source) -> list[Path]:
    paths = getattr(source, "paths", None)
    if paths is None:
        one = getattr(source, "path", None)
        paths = [one] if one is not None else []
    return [Path(p) for p in paths]


def plan_outputs(args, source) -> OutputPlan:
    """Check ``--output`` / ``--jsonl`` against the source before any work (see the module doc); CliError
    with one line when an output would be refused. Removes temp files left by killed runs beside them."""
    from ._atomic import clean_stale, resolve_target
    from .video import VIDEO_EXTS, image_writer_exts

    plan = OutputPlan()
    images = source.kind == "images"
    inputs = _input_paths(source)
    if args.output is not None:
        raw = str(args.output)
        if not raw.strip():
            raise CliError("--output is empty")
        out = resolve_target(raw)
        ext = out.suffix.lower()
        image_exts = image_writer_exts()
        if raw.endswith(("/", os.sep)) or out.is_dir():
            if out.exists() and not out.is_dir():
                raise CliError(f"--output {raw} is not a folder")
            if not images:
                raise CliError(f"--output {raw} is a folder: a {source.kind} source writes one video; give a file "
                               f"name ending in {'/'.join(VIDEO_EXTS)}")
            _check_file_target("--output", out / "x")  # the folder (or its nearest existing parent) is usable
            plan.image_dir = out
            for p in inputs:
                name = p.name if p.suffix.lower() in image_exts else p.name + ".png"
                plan.image_names[str(p)] = name
                plan.named.append((_check_file_target("--output", out / name), f"--output {raw} (file {name})"))
        elif ext in VIDEO_EXTS:
            plan.video = _check_file_target("--output", raw)
            plan.named.append((plan.video, f"--output {raw}"))
        elif ext in image_exts:
            if not images:
                raise CliError(f"--output {raw} is an image, but the source is a {source.kind}: use a video name "
                               f"({'/'.join(VIDEO_EXTS)})")
            if len(inputs) != 1:
                raise CliError(f"--output {raw} names one image, but the source has {len(inputs)} images: use "
                               f"--output DIR/ for one annotated image per input, or a video name "
                               f"({'/'.join(VIDEO_EXTS)})")
            plan.image = _check_file_target("--output", raw)
            plan.named.append((plan.image, f"--output {raw}"))
        else:
            raise CliError(f"--output {raw}: unsupported extension {ext or '(none)'!r}; use a video "
                           f"({', '.join(VIDEO_EXTS)}), an image ({', '.join(image_exts)}) or a folder DIR/")
    if args.jsonl is not None:
        if not str(args.jsonl).strip():
            raise CliError("--jsonl is empty")
        plan.jsonl = _check_file_target("--jsonl", args.jsonl)
        plan.named.append((plan.jsonl, f"--jsonl {args.jsonl}"))

    input_real = {os.path.realpath(p): p for p in inputs}
    input_keys = {k: p for p in inputs if (k := _file_key(p)) is not None}
    seen: dict = {}
    for target, label in plan.named:
        real, key = os.path.realpath(target), _file_key(target)
        hit = input_real.get(real) or (input_keys.get(key) if key else None)
        if hit is not None:
            raise CliError(f"{label} would overwrite the input {hit}; refusing")
        for k in (real, key):
            if k is not None and k in seen:
                raise CliError(f"{seen[k]} and {label} are the same file {real}; "
                               "give the outputs different names")
        seen[real] = label
        if key is not None:
            seen[key] = label
    clean_stale(*plan.targets())
    return plan


class _Outputs:
    """The annotated video / images and JSONL writers of an :class:`OutputPlan`; the JSONL temp file is
    opened at once, the video one on the first frame (its size). :meth:`close` finishes and verifies every
    output before it publishes any; :meth:`abort` removes every temp file."""

    def __init__(self, plan: OutputPlan, fps: float):
        from .video import AtomicImageWriter, AtomicJsonlWriter

        self.plan, self.fps = plan, fps
        self.video = None
        self.images = AtomicImageWriter() if (plan.image or plan.image_dir) else None
        self.jsonl = AtomicJsonlWriter(plan.jsonl) if plan.jsonl else None

    def write(self, image: np.ndarray, record: dict, input_path: str | None) -> None:
        from .video import AtomicVideoWriter

        if self.plan.video is not None:
            if self.video is None:
                self.video = AtomicVideoWriter(self.plan.video, self.fps, (image.shape[1], image.shape[0]))
            self.video.write(image)
        if self.images is not None:
            target = self.plan.image_target(input_path)
            if target is not None:
                self.images.write(target, image)
        if self.jsonl is not None:
            self.jsonl.write(record)

    def close(self) -> list[str]:
        """Finish and verify everything, then publish; OutputError (nothing published) when one fails."""
        if self.video is not None:
            self.video.finish()
        if self.jsonl is not None:
            self.jsonl.finish()
        done = []
        if self.video is not None:
            done.append(f"video -> {self.video.publish()}")
        elif self.plan.video is not None:
            done.append("video -> (no frames, not written)")
        if self.images is not None:
            paths = self.images.close()
            if self.plan.image is not None:
                done.append(f"image -> {paths[0]}" if paths else "image -> (no frames, not written)")
            else:
                done.append(f"images -> {self.plan.image_dir}{os.sep} ({len(paths)} files)")
        if self.jsonl is not None:
            done.append(f"jsonl -> {self.jsonl.publish()}")
        return done

    def abort(self) -> None:
        for w in (self.video, self.images, self.jsonl):
            if w is not None:
                with contextlib.suppress(OSError):
                    w.abort()


# ---------------------------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------------------------
def run(args) -> dict:
    """Run the CLI job; returns the summary dict. Raises CliError for bad inputs and failed outputs,
    :class:`Interrupted` (a KeyboardInterrupt) when stopped by a signal after the model loaded."""
    import cv2

    from .overlay import draw_fps
    from .video import OutputError, SourceError, open_source

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

    with source:
        plan = plan_outputs(args, source)
        predictor = load_model(name, args.models_dir, args.tf_threads)
        analyzer = Analyzer(predictor, crop_margin=args.crop_margin, landmarks=args.landmarks, align=args.align,
                            rescue_threshold=args.rescue_threshold,
                            upsample=args.upsample if images and args.upsample is not None else None)
        detect_width = args.detect_width if args.detect_width is not None else 480
        runner = analyzer.session(detect_every, smoothing, detect_width or None, args.upsample or 0, photos=images)
        display = not args.no_display and has_display()
        if not args.no_display and not display:
            print(f"notice: no window ({display_problem() or 'no usable display'}); running headless "
                  "(--no-display skips this check)", file=sys.stderr)
        frames = faces = 0
        outputs = None
        t_start = t_last = time.perf_counter()
        fps_ema = None
        try:
            try:
                outputs = _Outputs(plan, source.fps)
            except OSError as e:
                raise CliError(f"cannot write output: {e}") from None
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
                    outputs.write(frame.image, record, frame.path)
                    frames += 1
                    faces += len(results)
                    if display:
                        cv2.imshow(f"fer_hybrid - {name} (q/Esc quits)", frame.image)
                        if cv2.waitKey(1) & 0xFF in (ord("q"), 27):
                            break
            with signals_ignored():  # the run is complete: publishing must not be cut half-way
                written = outputs.close()
        except BaseException as e:
            with signals_ignored():
                if outputs is not None:
                    outputs.abort()
            if isinstance(e, KeyboardInterrupt):
                raise Interrupted(getattr(e, "signum", signal.SIGINT), frames, started=True) from None
            if isinstance(e, OutputError):
                raise CliError(str(e)) from None
            if isinstance(e, OSError) and not isinstance(e, CliError):
                raise CliError(f"I/O error while reading the source or writing outputs: {e}") from None
            raise
        finally:
            if display:
                cv2.destroyAllWindows()
    seconds = time.perf_counter() - t_start
    summary = {"model": name, "source": source.description, "frames": frames, "skipped": source.skipped,
               "faces": faces, "seconds": seconds, "fps": frames / seconds if seconds > 0 else 0.0,
               "pipeline": bool(getattr(args, "pipeline", True)), "timings": runner.timings, "outputs": written}
    mode = "pipelined" if summary["pipeline"] else "sequential"
    big = len(getattr(source, "too_large", []))
    skipped = (f"{source.skipped} undecodable skipped" if not big else
               f"{source.skipped} skipped: {source.skipped - big} undecodable, {big} over the size limit")
    print(f"fer_hybrid.realtime: {frames} frames ({skipped}), {faces} faces, "
          f"{summary['fps']:.1f} FPS ({mode}), model {name}, source {source.description}; "
          + ("; ".join(written) if written else "no outputs written (use --output/--jsonl)"))
    return summary


def _interrupted_line(e: KeyboardInterrupt, args) -> tuple[str, int]:
    signum = getattr(e, "signum", signal.SIGINT)
    frames = getattr(e, "frames", 0)
    try:
        sig = signal.Signals(signum).name
    except ValueError:
        sig = f"signal {signum}"
    when = "" if getattr(e, "started", False) else " during start-up"
    outs = "; no output written, existing files unchanged" if (args.output or args.jsonl) else ""
    return f"interrupted after {frames} frames ({sig}{when}){outs}", 128 + signum


def main(argv: list[str] | None = None) -> int:
    quiet_tensorflow_logs()
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # FFmpeg quiet: a bad video gives our one-line error only
    args = build_parser().parse_args(argv)
    with signals_interrupt():
        try:
            run(args)
        except CliError as e:
            print(f"error: {e}", file=sys.stderr)
            return EXIT_BAD_INPUT
        except KeyboardInterrupt as e:
            line, code = _interrupted_line(e, args)
            print(line, file=sys.stderr)
            return code
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
