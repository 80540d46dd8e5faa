"""Frame sources (camera, video file, image file or folder, the bundled sample), atomic writers, and
:class:`Prefetch` (run an iterator one stage ahead in a background thread).

A source yields :class:`Frame` items: ``index`` (0, 1, ... over decoded frames), ``timestamp`` in seconds
(video position, time since start for a camera, ``index / fps`` for images) and ``image`` uint8 BGR
(h, w, 3). Frames that cannot be decoded are skipped and counted in ``source.skipped``.
Opening a source that cannot work raises :class:`SourceError` with a one-line message.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import queue
import threading
import time
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

SAMPLE = Path(__file__).resolve().parent / "assets" / "sample.mp4"
IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".pgm", ".ppm", ".gif", ".jp2", ".pbm")
MAX_CONSECUTIVE_FAILURES = 50
MAX_IMAGE_PIXELS = 100_000_000  # images whose header claims more (width * height) are skipped, never decoded
MAX_CAMERA_INDEX = 9999


class SourceError(OSError):
    """A frame source cannot be opened (missing file, unreadable video, camera that does not open)."""


@dataclasses.dataclass
class Frame:
    index: int
    timestamp: float
    image: np.ndarray  # uint8 BGR (h, w, 3)
    path: str | None = None  # the image file, for image sources


class FrameSource:
    """Base class: iterate to get :class:`Frame` items; ``fps`` is the nominal rate, ``skipped`` counts bad frames."""

    kind = "source"
    fps: float = 25.0
    skipped: int = 0
    description: str = ""

    def __iter__(self) -> Iterator[Frame]:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


@contextlib.contextmanager
def quiet_opencv():
    """Silence OpenCV's own log lines (e.g. V4L/FFmpeg warnings when a camera or file does not open)."""
    import cv2

    logging = getattr(getattr(cv2, "utils", None), "logging", None)
    if logging is None:
        yield
        return
    old = logging.getLogLevel()
    logging.setLogLevel(logging.LOG_LEVEL_SILENT)
    try:
        yield
    finally:
        logging.setLogLevel(old)


def decode_image(path: str | Path) -> np.ndarray | None:
    """uint8 BGR (h, w, 3) of an image file (first frame of an animated GIF), or None if neither OpenCV
    nor Pillow can decode it. 16-bit images are scaled to 0..255."""
    import cv2

    with quiet_opencv():
        img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None or img.size == 0:
        try:
            from PIL import Image

            with Image.open(path) as im:
                img = np.asarray(im.convert("RGB"))[..., ::-1].copy()
        except Exception:  # noqa: BLE001 - Pillow raises many types for non-images
            return None
    if img.size == 0:
        return None
    if img.dtype != np.uint8:
        img = cv2.convertScaleAbs(img, alpha=255.0 / max(float(img.max()), 1.0))
    return _to_bgr(img)


def image_size(path: str | Path) -> tuple[int, int] | int | None:
    """(width, height) from an image file's header (Pillow reads no pixels); only the pixel count (int) when
    it exceeds Pillow's decompression-bomb bound; None when Pillow cannot parse the file."""
    import re
    import warnings

    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - Pillow is a dependency
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # DecompressionBombWarning: the caller decides, without decoding
        try:
            with Image.open(path) as im:
                return int(im.size[0]), int(im.size[1])
        except Image.DecompressionBombError as e:
            m = re.search(r"\((\d+) pixels\)", str(e))
            return int(m.group(1)) if m else 2 * int(Image.MAX_IMAGE_PIXELS or 0) + 1
        except Exception:  # noqa: BLE001 - not an image Pillow knows
            return None


def too_large_reason(path: str | Path, limit: int = MAX_IMAGE_PIXELS) -> str | None:
    """A one-line reason when the image's header claims more than ``limit`` pixels, else None."""
    size = image_size(path)
    if size is None:
        return None
    pixels = size if isinstance(size, int) else size[0] * size[1]
    if pixels <= limit:
        return None
    dims = "" if isinstance(size, int) else f"{size[0]} x {size[1]} = "
    return f"image {path} is too large to decode ({dims}{pixels / 1e6:.1f} megapixels; limit {limit / 1e6:g})"


def _to_bgr(img: np.ndarray) -> np.ndarray:
    import cv2

    if img.ndim == 2:
        return cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    if img.shape[2] == 4:
        return cv2.cvtColor(img, cv2.COLOR_BGRA2BGR)
    return img


class CaptureSource(FrameSource):
    """cv2.VideoCapture over a camera index or a video file."""

    def __init__(self, target: int | str | Path):
        import cv2

        self.is_camera = isinstance(target, int)
        self.kind = "camera" if self.is_camera else "video"
        self.description = f"camera {target}" if self.is_camera else str(target)
        self.path = None if self.is_camera else Path(target)  # the video file (outputs must not replace it)
        self.skipped = 0
        if not self.is_camera:
            path = Path(target)
            if not path.exists():
                raise SourceError(f"video file not found: {path}")
            if not path.is_file():
                raise SourceError(f"not a file: {path}")
        with quiet_opencv():
            self.cap = cv2.VideoCapture(target if self.is_camera else str(target))
        if not self.cap.isOpened():
            self.cap.release()
            what = f"camera index {target} does not open (no such device or it is busy)" if self.is_camera \
                else f"cannot read video {target} (not a video or unsupported codec)"
            raise SourceError(what)
        fps = self.cap.get(cv2.CAP_PROP_FPS)
        self.fps = float(fps) if fps and 1 <= fps <= 240 else 25.0
        self.frame_count = 0 if self.is_camera else int(self.cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        if not self.is_camera:
            ok, first = self.cap.read()  # a "video" whose first frame never decodes is not a video
            if not ok or first is None:
                self.cap.release()
                raise SourceError(f"cannot read video {target} (no decodable frame)")
            self._first = first
        else:
            self._first = None

    def __iter__(self) -> Iterator[Frame]:
        t0 = time.perf_counter()
        index = failures = 0
        pos = 0  # frames consumed from the container (decoded or not)
        pending = self._first
        self._first = None
        while True:
            if pending is not None:
                ok, img = True, pending
                pending = None
            else:
                ok, img = self.cap.read()
            pos += 1
            if not ok or img is None or img.size == 0:
                if self.is_camera:
                    failures += 1
                    if failures > MAX_CONSECUTIVE_FAILURES:
                        return
                    self.skipped += 1
                    continue
                if pos >= self.frame_count or failures >= MAX_CONSECUTIVE_FAILURES:
                    return  # end of file (or a run of undecodable frames at the end)
                failures += 1
                self.skipped += 1
                continue
            failures = 0
            ts = time.perf_counter() - t0 if self.is_camera else (pos - 1) / self.fps
            yield Frame(index, round(float(ts), 4), _to_bgr(img))
            index += 1

    def close(self) -> None:
        self.cap.release()


class ImageSource(FrameSource):
    """One image file or every image in a folder (sorted by name); unreadable images, and images whose
    header claims more than :data:`MAX_IMAGE_PIXELS` (listed in ``too_large`` too), are skipped."""

    kind = "images"

    def __init__(self, paths: list[Path], description: str, fps: float = 10.0):
        self.paths = paths
        self.description = description
        self.fps = fps
        self.skipped = 0
        self.skipped_files: list[str] = []
        self.too_large: list[str] = []

    def __iter__(self) -> Iterator[Frame]:
        index = 0
        for p in self.paths:
            big = too_large_reason(p)
            img = None if big else decode_image(p)
            if img is None:
                self.skipped += 1
                self.skipped_files.append(str(p))
                if big:
                    self.too_large.append(str(p))
                continue
            yield Frame(index, round(index / self.fps, 4), img, str(p))
            index += 1


def open_source(spec: str | int | Path, image_fps: float = 10.0) -> FrameSource:
    """Source from a CLI string: camera index (``"0"``), ``"sample"``, an image file, a folder, or a video.

    SourceError for an empty string, a camera index above :data:`MAX_CAMERA_INDEX`, or an image whose header
    claims more than :data:`MAX_IMAGE_PIXELS`.
    """
    if isinstance(spec, str) and not spec.strip():
        raise SourceError("empty source: give a camera index, a video, an image, a folder of images or 'sample'")
    if isinstance(spec, int) or (isinstance(spec, str) and spec.strip().isdigit() and not Path(spec).exists()):
        index = int(spec)
        if not 0 <= index <= MAX_CAMERA_INDEX:
            shown = str(index) if len(str(index)) <= 20 else f"{str(index)[:20]}..."
            raise SourceError(f"camera index {shown} is out of range (0..{MAX_CAMERA_INDEX})")
        return CaptureSource(index)
    if isinstance(spec, str) and spec == "sample":
        if not SAMPLE.exists():
            raise SourceError(f"the bundled sample clip is missing ({SAMPLE}); reinstall fer-hybrid")
        return CaptureSource(SAMPLE)
    path = Path(spec).expanduser()
    if not path.exists():
        raise SourceError(f"source not found: {path}")
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTS)
        if not files:
            raise SourceError(f"no images ({', '.join(IMAGE_EXTS)}) in folder {path}")
        return ImageSource(files, str(path), image_fps)
    if path.suffix.lower() in IMAGE_EXTS:
        big = too_large_reason(path)
        if big:
            raise SourceError(big)
        if decode_image(path) is None:
            raise SourceError(f"cannot read image {path}")
        return ImageSource([path], str(path), image_fps)
    return CaptureSource(path)


# ---------------------------------------------------------------------------------------------
# Atomic writers: write to a hidden temp file beside the target, publish only a complete, verified file
# ---------------------------------------------------------------------------------------------
VIDEO_FOURCC = {".mp4": "mp4v", ".mov": "mp4v", ".mkv": "mp4v", ".avi": "XVID"}
VIDEO_EXTS = tuple(VIDEO_FOURCC)


class OutputError(OSError):
    """An output could not be written completely; nothing was published and its temp file is gone."""


def image_writer_exts() -> tuple[str, ...]:
    """Image extensions OpenCV can encode here (a subset of :data:`IMAGE_EXTS`)."""
    import cv2

    return tuple(e for e in IMAGE_EXTS if cv2.haveImageWriter(f"x{e}"))


def check_video_file(path: str | Path, frames: int) -> str | None:
    """Why the video at ``path`` is not a complete ``frames``-frame video, or None when it is: it must
    open, report ``frames`` frames (when its container says) and decode its first and last frame."""
    import cv2

    with quiet_opencv():
        cap = cv2.VideoCapture(str(path))
        try:
            if not cap.isOpened():
                return "the written file does not open as a video"
            count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
            if count > 0 and count != frames:
                return f"the written file holds {count} frames instead of {frames}"
            ok, img = cap.read()
            if not ok or img is None:
                return "the written file's first frame does not decode"
            if frames > 1:
                cap.set(cv2.CAP_PROP_POS_FRAMES, frames - 1)
                ok, img = cap.read()
                if not ok or img is None:
                    return f"the written file's last frame ({frames}) does not decode"
        finally:
            cap.release()
    return None


def _describe(e: OSError) -> str:
    return e.strerror or str(e) or type(e).__name__


class AtomicVideoWriter:
    """cv2.VideoWriter into a hidden temp file beside ``path``; :meth:`close` publishes it only when the
    writer released cleanly and the file reopens with :func:`check_video_file`, else removes it and raises
    :class:`OutputError`. :meth:`abort` drops it. ``fourcc`` defaults by extension (:data:`VIDEO_FOURCC`).

    Frames of another size than ``size`` (w, h) are resized, so image folders of mixed sizes still work.
    A symlink ``path`` is written through; an existing file keeps its mode (:mod:`fer_hybrid._atomic`).
    """

    def __init__(self, path: str | Path, fps: float, size: tuple[int, int], fourcc: str | None = None):
        import cv2

        from ._atomic import clean_stale, resolve_target, temp_beside

        self.path = resolve_target(path)
        fourcc = fourcc or VIDEO_FOURCC.get(self.path.suffix.lower(), "mp4v")
        self.size = (int(size[0]), int(size[1]))
        clean_stale(self.path)
        self.tmp = temp_beside(self.path)
        self.frames = 0
        with quiet_opencv():
            self._writer = cv2.VideoWriter(str(self.tmp), cv2.VideoWriter_fourcc(*fourcc), float(fps), self.size)
        if not self._writer.isOpened():
            self.tmp.unlink(missing_ok=True)
            raise OutputError(f"cannot open a {fourcc} video writer for {self.path}")

    def write(self, frame: np.ndarray) -> None:
        import cv2

        if (frame.shape[1], frame.shape[0]) != self.size:
            frame = cv2.resize(frame, self.size, interpolation=cv2.INTER_AREA)
        with quiet_opencv():  # a failing write (disk full) logs once per frame; close() reports it once
            self._writer.write(frame)
        self.frames += 1

    def finish(self) -> None:
        """Release the writer and verify the temp file; on failure remove it and raise OutputError."""
        try:
            with quiet_opencv():
                self._writer.release()
            problem = check_video_file(self.tmp, self.frames) if self.frames else "no frames were written"
        except OSError as e:
            problem = _describe(e)
        if problem:
            self.tmp.unlink(missing_ok=True)
            raise OutputError(f"video {self.path} not written: {problem} (disk full or file size limit?)")

    def publish(self) -> Path:
        """Rename the finished temp file onto ``path`` (keeping an existing file's mode)."""
        from ._atomic import publish

        try:
            return publish(self.tmp, self.path)
        except OSError as e:
            raise OutputError(f"video {self.path} not written: {_describe(e)}") from None
        finally:
            self.tmp.unlink(missing_ok=True)

    def close(self) -> Path:
        """:meth:`finish` then :meth:`publish`; returns ``path``."""
        self.finish()
        return self.publish()

    def abort(self) -> None:
        try:
            with quiet_opencv():
                self._writer.release()
        finally:
            self.tmp.unlink(missing_ok=True)


class AtomicJsonlWriter:
    """One JSON object per line into a hidden temp file, renamed to ``path`` on :meth:`close` (fsync first).

    Write errors (disk full, file size limit) raise :class:`OutputError` with one line; the temp file is
    removed by :meth:`abort` (or by :meth:`close` when it fails).
    """

    def __init__(self, path: str | Path):
        from ._atomic import clean_stale, resolve_target, temp_beside

        self.path = resolve_target(path)
        clean_stale(self.path)
        self.tmp = temp_beside(self.path)
        try:
            self._f = open(self.tmp, "w", encoding="utf-8")
        except OSError:
            self.tmp.unlink(missing_ok=True)
            raise
        self.lines = 0

    def _error(self, e: OSError) -> OutputError:
        return OutputError(f"cannot write {self.path}: {_describe(e)}")

    def write(self, record: dict) -> None:
        line = json.dumps(record, separators=(",", ":"), allow_nan=False) + "\n"
        try:
            self._f.write(line)
        except OSError as e:
            raise self._error(e) from None
        self.lines += 1

    def finish(self) -> None:
        """Flush and close the temp file; on failure remove it and raise OutputError."""
        try:
            self._f.flush()
            os.fsync(self._f.fileno())
            self._f.close()
        except OSError as e:
            self.abort()
            raise self._error(e) from None

    def publish(self) -> Path:
        from ._atomic import publish

        try:
            return publish(self.tmp, self.path, fsync=False)
        except OSError as e:
            raise self._error(e) from None
        finally:
            self.tmp.unlink(missing_ok=True)

    def close(self) -> Path:
        """:meth:`finish` then :meth:`publish`; returns ``path``."""
        self.finish()
        return self.publish()

    def _close_quietly(self) -> None:
        try:
            self._f.close()  # flushes what is buffered: may fail again on a full disk
        except OSError:
            pass

    def abort(self) -> None:
        self._close_quietly()
        self.tmp.unlink(missing_ok=True)


class AtomicImageWriter:
    """Annotated images, one per target path, staged to hidden temp files beside their targets and all
    published together by :meth:`close` (none on :meth:`abort` or on an error). The format follows each
    target's extension (cv2.imencode). Stale temp files of killed runs are not looked for here (one folder
    listing per image would be quadratic): call :func:`fer_hybrid._atomic.clean_stale` with all targets."""

    def __init__(self):
        self._staged: list[tuple[Path, Path]] = []  # (tmp, target)

    @property
    def paths(self) -> list[Path]:
        return [t for _, t in self._staged]

    def write(self, path: str | Path, image: np.ndarray) -> None:
        import cv2

        from ._atomic import resolve_target, temp_beside

        target = resolve_target(path)
        ok, buf = cv2.imencode(target.suffix.lower(), image)
        if not ok:
            raise OutputError(f"cannot encode an image as {target.suffix} for {target}")
        tmp = temp_beside(target)
        self._staged.append((tmp, target))
        try:
            with open(tmp, "wb") as f:
                f.write(buf.tobytes())
        except OSError as e:
            raise OutputError(f"cannot write {target}: {_describe(e)}") from None

    def close(self) -> list[Path]:
        from ._atomic import publish

        try:
            for tmp, target in self._staged:
                publish(tmp, target)
        except OSError as e:
            raise OutputError(f"cannot publish annotated images: {_describe(e)}") from None
        finally:
            self.abort()  # removes whatever was not renamed
        return self.paths

    def abort(self) -> None:
        for tmp, _ in self._staged:
            tmp.unlink(missing_ok=True)


# ---------------------------------------------------------------------------------------------
# Prefetch: produce items in a background thread while the caller consumes the previous ones
# ---------------------------------------------------------------------------------------------
class Prefetch:
    """Iterate ``iterable`` in one background thread, at most ``depth`` items ahead of the consumer.

    Items arrive in the iterable's order. An exception raised by the iterable (in the thread) is
    re-raised, as the same object with its traceback, by the consumer's next ``next()``; items produced
    before it are delivered first. :meth:`close` (also on ``with`` exit; always call it, e.g. via
    ``contextlib.closing``) stops the producer after the item it is working on, joins the thread and
    closes the iterable, so the resources it reads (e.g. a ``cv2.VideoCapture``) can be released
    safely afterwards. All of the iterable's work happens in the thread, ``iter(iterable)`` included.
    """

    _ITEM, _ERROR, _DONE = range(3)

    def __init__(self, iterable: Iterable, depth: int = 2, name: str = "fer_hybrid-prefetch"):
        if depth < 1:
            raise ValueError(f"depth must be >= 1, got {depth}")
        self._iterable = iterable
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._finished = False
        self._thread = threading.Thread(target=self._produce, name=name, daemon=True)
        self._thread.start()

    def _put(self, message: tuple) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(message, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def _produce(self) -> None:
        try:
            for item in self._iterable:
                if not self._put((self._ITEM, item)):
                    return
        except BaseException as e:  # noqa: BLE001 - handed to the consumer, re-raised there
            self._put((self._ERROR, e))
            return
        self._put((self._DONE, None))

    def __iter__(self) -> "Prefetch":
        return self

    def __next__(self):
        if self._finished:
            raise StopIteration
        kind, value = self._queue.get()
        if kind == self._ITEM:
            return value
        self._finished = True
        self._thread.join()
        if kind == self._ERROR:
            raise value
        raise StopIteration

    def close(self) -> None:
        """Stop the producer (after its current item) and wait for its thread; idempotent."""
        self._finished = True
        self._stop.set()
        self._thread.join()
        close = getattr(self._iterable, "close", None)
        if callable(close):
            close()  # e.g. a generator: runs its finally blocks, here in the caller's thread

    def __enter__(self) -> "Prefetch":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
