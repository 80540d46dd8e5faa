"""The one inference path: image or video -> faces -> emotions.

>>> from fer_hybrid import Analyzer
>>> faces = Analyzer().analyze("photo.jpg")            # list[Face]: box, score, probabilities, label
>>> for frame in Analyzer().analyze_video("clip.mp4"):  # FrameFaces: index, timestamp, faces (tracked)
...     print(frame.timestamp, [f.label for f in frame.faces])

:class:`Analyzer` owns detection -> crop -> predict. Photos (``analyze``) are independent: the face
detector runs on the full-resolution image (recall first) and nothing carries over between calls. Videos
(``analyze_video`` / :meth:`Analyzer.session`) detect on a copy at most ``detect_width`` px wide every
``detect_every`` frames, follow faces with dlib correlation trackers in between, and smooth each track's
probabilities (EMA); tracking and smoothing exist only there.

The predictor interface is explicit. Every predictor has ``name``, ``classes`` and
``predict_proba(crops) -> (n, k)`` (the registry contract). A predictor that needs the full frame (e.g.
to place dlib landmarks itself) declares ``input_kind = "frame"`` and implements
``predict_frame(frame, boxes) -> (proba (k, n_classes), points (k, 68, 2) frame pixels)``; it may set
``last_fallback`` (bool (k,): rows answered by its CNN alone) and ``last_timings`` ({"landmarks": s}).
Crop predictors get gray crops of each box grown by ``crop_margin``; when ``landmarks=True`` the
Analyzer computes dlib's 68 points once per face for them.

A NaN probability row means "no answer" (e.g. no landmarks): such a face has ``label None``.
"""
from __future__ import annotations

import contextlib
import dataclasses
import os
import time
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np

from ..labels import STUDY_EMOTIONS
from .align import aligned_crops, check_align, needs_landmarks
from .framing import DEFAULT_MARGIN, check_margin, crop_faces
from .temperature import check_temperature, scale_proba

PIPELINE_DEPTH = 2           # frames stage A may run ahead of stage B (bounded queue; see stream())
VIDEO_DETECT_WIDTH = 480     # video mode: detect/track on a copy at most this wide (speed)
PHOTO_UPSAMPLE_BELOW = 400   # photo mode: dlib upsamples once when the image's shorter side is below this (px)
# Photo mode: when no face clears dlib's threshold, keep the best candidate scoring above this. Chosen on val in
# the frame (experiments/photo_rescue.py -> experiments/reports/photo-rescue: faces found - false positives -
# made-up faces per image).
PHOTO_RESCUE_THRESHOLD = -0.9


# ---------------------------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------------------------
@dataclasses.dataclass
class Face:
    """One face in one image or frame.

    ``box`` int (4,) [x0, y0, x1, y1] frame pixels; ``proba`` float (k,) (NaN = no answer);
    ``smoothed`` float (k,) the track's EMA (= ``proba`` for photos); ``id`` track id in a video (None for a
    photo); ``detected`` box from the detector (False: from the tracker); ``score`` dlib HOG detection score
    (None when tracked); ``landmarks`` float (68, 2) frame pixels when computed; ``fallback`` e.g. "cnn"
    when a hybrid answered with its CNN alone; ``model`` the predictor's name.
    """

    id: int | None
    box: np.ndarray
    proba: np.ndarray
    smoothed: np.ndarray
    detected: bool = True
    landmarks: np.ndarray | None = None
    fallback: str | None = None
    score: float | None = None
    model: str = ""
    classes: tuple[str, ...] = STUDY_EMOTIONS

    @property
    def answered(self) -> bool:
        return bool(np.all(np.isfinite(self.proba)))

    @property
    def probabilities(self) -> dict[str, float] | None:
        """{class: probability} or None when the model has no answer for this face."""
        return {c: float(p) for c, p in zip(self.classes, self.proba)} if self.answered else None

    @property
    def label(self) -> str | None:
        return self.classes[int(np.argmax(self.proba))] if self.answered else None

    @property
    def smoothed_label(self) -> str | None:
        ok = bool(np.all(np.isfinite(self.smoothed)))
        return self.classes[int(np.argmax(self.smoothed))] if ok else None

    def to_json(self, classes: Sequence[str] | None = None, digits: int = 4) -> dict:
        """The realtime JSONL record of this face (strict JSON: no NaN)."""
        classes = tuple(classes or self.classes)
        ok = self.answered
        probs = {c: round(float(p), digits) for c, p in zip(classes, self.proba)} if ok else None
        smoothed = {c: round(float(p), digits) for c, p in zip(classes, self.smoothed)} if ok else None
        out = {"id": self.id, "box": [int(v) for v in self.box], "detected": self.detected,
               "probabilities": probs, "label": self.label,
               "smoothed_probabilities": smoothed, "smoothed_label": self.smoothed_label,
               "no_landmarks": not ok}
        if self.fallback:
            out["fallback"] = self.fallback
        if self.landmarks is not None:
            ok_pts = bool(np.all(np.isfinite(self.landmarks)))
            out["landmarks"] = np.round(self.landmarks, 1).tolist() if ok_pts else None
        return out


@dataclasses.dataclass
class FrameFaces:
    """The faces of one video frame (or of one image of a folder): ``index`` 0, 1, ... over decoded frames,
    ``timestamp`` seconds, ``faces`` list[Face], ``path`` the image file for image sources (else None)."""

    index: int
    timestamp: float
    faces: list[Face]
    path: str | None = None


@dataclasses.dataclass
class Located:
    """Stage A's result for one frame: a snapshot of the face tracks (so stage A can move on while stage B
    classifies this frame)."""
    ids: list[int]                  # track ids, (k,)
    boxes: np.ndarray               # int64 (k, 4) [x0, y0, x1, y1] frame pixels
    detected: list[bool]            # (k,) box from the detector on this frame
    smoothers: list                 # (k,) the tracks' ProbabilityEMA objects (updated by stage B only)
    seconds: float                  # detection/tracking time of this frame, s
    started: float                  # time.perf_counter() when stage A began on this frame
    scores: list = dataclasses.field(default_factory=list)  # (k,) detection score or None
    prepared: "Prepared | None" = None  # the faces made ready for the model (landmarks, crops) in stage A


def check_frame(image) -> np.ndarray:
    """``image`` as an array; ValueError unless it is a non-empty uint8 gray (h, w) / (h, w, 1), BGR or BGRA."""
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.size == 0 or not (
            image.ndim == 2 or (image.ndim == 3 and image.shape[2] in (1, 3, 4))):
        raise ValueError(f"expected a non-empty uint8 gray or BGR frame, got {image.dtype} {image.shape}")
    return image


# ---------------------------------------------------------------------------------------------
# Predictor side: boxes -> probabilities (+ landmarks), through the explicit interface
# ---------------------------------------------------------------------------------------------
def resolve_calibration(predictor, temperature) -> tuple[float | None, np.ndarray | None]:
    """(T, bias) the Analyzer applies: ``"auto"`` = the predictor's ``calibration`` from its manifest entry
    (None when it has none); None = the model's own probabilities; a number = that temperature, no bias."""
    if isinstance(temperature, str):
        if temperature != "auto":
            raise ValueError(f"temperature must be 'auto', None or a number > 0, got {temperature!r}")
        cal = getattr(predictor, "calibration", None)
        if not cal:
            return None, None
        bias = cal.get("bias")
        return check_temperature(cal["temperature"]), None if bias is None else np.asarray(bias, np.float64)
    return (None, None) if temperature is None else (check_temperature(temperature), None)


class FacePredictor:
    """Runs a registry predictor on the boxes of one frame: ``run(image, boxes) -> (proba (k, n), points
    (k, 68, 2) | None, fallback bool (k,), timings)``."""

    def __init__(self, predictor, crop_margin: float = DEFAULT_MARGIN, landmarks: bool = False,
                 align: bool | str = "auto", temperature: float | str | None = "auto"):
        self.predictor = predictor
        self.name = str(getattr(predictor, "name", type(predictor).__name__))
        self.classes = tuple(getattr(predictor, "classes", STUDY_EMOTIONS))
        self.input_kind = getattr(predictor, "input_kind", "crops")
        if self.input_kind not in ("crops", "frame"):
            raise ValueError(f"predictor {self.name!r} declares input_kind {self.input_kind!r}; expected "
                             "'crops' or 'frame'")
        self.crop_margin = check_margin(crop_margin)
        self.landmarks = bool(landmarks)
        self.align = check_align(align, self.input_kind)  # None: margin crop; else an align.py mode (crop models)
        if self.align and self.input_kind != "crops":
            raise ValueError(f"align applies to crop models; {self.name!r} places its own landmarks "
                             "(input_kind 'frame')")
        self.temperature, self.bias = resolve_calibration(predictor, temperature)
        if self.input_kind == "crops" and (needs_landmarks(self.align) or self.landmarks):
            from ..landmarks.detect import load_shape_predictor

            load_shape_predictor()  # at start-up, not inside the first frame's time

    def run(self, image: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray | None, np.ndarray, dict]:
        """:meth:`predict` of :meth:`prepare`: the faces in ``boxes`` (int (k, 4)) of ``image``."""
        return self.predict(self.prepare(image, boxes))

    def prepare(self, image: np.ndarray, boxes: np.ndarray) -> "Prepared":
        """Everything before the model: for a crop model the 68 points (when the crop or the caller needs
        them) and the gray crops; a frame model gets the frame and boxes as they are. Independent of the
        model's state, so a video's stage A can run it ahead of :meth:`predict` in another thread."""
        from ..images import to_gray
        from ..landmarks.detect import landmarks as dlib_landmarks

        boxes = np.asarray(boxes)
        t = {"landmarks": 0.0, "classification": 0.0}
        if self.input_kind == "frame" or not len(boxes):
            return Prepared(image, boxes, None, None, t)
        t0 = time.perf_counter()
        gray = to_gray(image)
        pts = None
        if needs_landmarks(self.align) or self.landmarks:  # the aligned crop needs the 68 points first
            pts = dlib_landmarks(gray, boxes)
            t["landmarks"] = time.perf_counter() - t0
        t1 = time.perf_counter()
        crops = aligned_crops(gray, boxes, self.align, pts)[0] if self.align else \
            crop_faces(gray, boxes, self.crop_margin)[0]
        t["classification"] = time.perf_counter() - t1  # cropping is counted with the model's time
        return Prepared(image, boxes, crops, pts, t)

    def predict(self, prepared: "Prepared") -> tuple[np.ndarray, np.ndarray | None, np.ndarray, dict]:
        """The model on prepared faces -> (proba float64 (k, n_classes), points float32 (k, 68, 2) | None,
        fallback bool (k,), timings {"landmarks": s, "classification": s})."""
        p, k = self.predictor, len(prepared.boxes)
        t = dict(prepared.timings)
        t0 = time.perf_counter()
        pts = prepared.points
        if not k:
            proba = np.zeros((0, len(self.classes)))
        elif self.input_kind == "frame":
            proba, pts = p.predict_frame(prepared.image, prepared.boxes)
            pts = None if pts is None or not self.landmarks else np.asarray(pts, dtype=np.float32)
            reported = getattr(p, "last_timings", None) or {}
            t["landmarks"] = float(reported.get("landmarks", 0.0))
            t["classification"] = max(0.0, time.perf_counter() - t0 - t["landmarks"])
        else:
            proba = p.predict_proba(prepared.crops)
            t["classification"] += time.perf_counter() - t0
        fallback = np.asarray(getattr(p, "last_fallback", None) if self.input_kind == "frame" else [], bool)
        if fallback.shape != (k,):
            fallback = np.zeros(k, bool)
        proba = np.asarray(proba, dtype=np.float64).reshape(k, len(self.classes))
        if self.temperature is not None:
            proba = scale_proba(proba, self.temperature, self.bias)
        if pts is not None and not self.landmarks:
            pts = None
        return proba, pts, fallback, t


@dataclasses.dataclass
class Prepared:
    """:meth:`FacePredictor.prepare`'s result for the faces of one frame."""
    image: np.ndarray               # the frame as given
    boxes: np.ndarray               # int (k, 4) [x0, y0, x1, y1] frame pixels
    crops: object                   # crop models: the gray crops the model takes (k of them); else None
    points: np.ndarray | None       # float32 (k, 68, 2) dlib points when computed, else None
    timings: dict                   # seconds spent so far: {"landmarks": s, "classification": s (cropping)}


# ---------------------------------------------------------------------------------------------
# Video: detect/track -> classify -> smooth, optionally pipelined
# ---------------------------------------------------------------------------------------------
class VideoSession:
    """Detection/tracking + a predictor over the frames of one video: ``process(frame) -> list[Face]``.

    ``locate`` (stage A: detect or track, then landmarks and crops) and ``classify`` (stage B: predict,
    smooth) can run in two threads (:func:`stream`); the result is identical to calling ``process`` frame
    by frame. Stage B, the model, is the slower stage, so everything before it runs in stage A.
    ``timings`` accumulates seconds per stage (detection, landmarks, classification) over all frames.
    """

    def __init__(self, predictor, detect_every: int = 3, smoothing: float = 0.5,
                 detect_width: int | None = VIDEO_DETECT_WIDTH, upsample: int = 0,
                 crop_margin: float = DEFAULT_MARGIN, want_landmarks: bool = False, align: bool | str = "auto",
                 temperature: float | str | None = "auto", rescue_threshold: float | None = None):
        from .tracking import FaceTracker

        self.face_predictor = predictor if isinstance(predictor, FacePredictor) else FacePredictor(
            predictor, crop_margin, want_landmarks, align, temperature)
        self.predictor = self.face_predictor.predictor
        self.classes = self.face_predictor.classes
        self.tracker = FaceTracker(detect_every, detect_width, smoothing, upsample, rescue_threshold=rescue_threshold)
        self.crop_margin = self.face_predictor.crop_margin
        self.want_landmarks = self.face_predictor.landmarks
        self.timings = {"detection": 0.0, "landmarks": 0.0, "classification": 0.0}
        self.last_timings = dict(self.timings)

    def reset(self) -> None:
        """Forget all face tracks and their smoothing state (call between two unrelated sources)."""
        from .tracking import FaceTracker

        t = self.tracker
        self.tracker = FaceTracker(t.detect_every, t.detect_width, t.smoothing, t.upsample, t.match_iou,
                                   t.rescue_threshold)

    def process(self, image: np.ndarray) -> list[Face]:
        """Faces of one frame (uint8 gray/BGR/BGRA), tracked and smoothed. ValueError for a bad frame."""
        return self.classify(image, self.locate(image))

    def locate(self, image: np.ndarray) -> Located:
        """Stage A: advance the face tracker by one frame (detect or track). Call in frame order."""
        started = time.perf_counter()
        image = check_frame(image)
        tracks = list(self.tracker.step(image))
        boxes = np.array([np.round(t.box) for t in tracks], dtype=np.int64).reshape(-1, 4)
        seconds = time.perf_counter() - started
        prepared = self.face_predictor.prepare(image, boxes) if len(boxes) else None
        return Located([t.id for t in tracks], boxes, [bool(t.detected) for t in tracks],
                       [t.smoother for t in tracks], seconds, started, [t.score for t in tracks], prepared)

    def classify(self, image: np.ndarray, located: Located) -> list[Face]:
        """Stage B: probabilities of the located faces, smoothed per track. Call in the order located."""
        image = np.asarray(image)
        timings = {"detection": located.seconds, "landmarks": 0.0, "classification": 0.0}
        k = len(located.ids)
        if not k:
            self._add(timings)
            return []
        prepared = located.prepared if located.prepared is not None else \
            self.face_predictor.prepare(image, located.boxes)
        proba, pts, fallback, t = self.face_predictor.predict(prepared)
        timings.update(t)
        self._add(timings)
        scores = located.scores if len(located.scores) == k else [None] * k
        return [Face(located.ids[i], located.boxes[i], proba[i], located.smoothers[i].update(proba[i]),
                     located.detected[i], None if pts is None else pts[i], "cnn" if fallback[i] else None,
                     scores[i], self.face_predictor.name, self.classes)
                for i in range(k)]

    def _add(self, timings: dict) -> None:
        self.last_timings = timings
        for key, v in timings.items():
            self.timings[key] += v


def stream(session: VideoSession, frames: Iterable, pipeline: bool = True, depth: int = PIPELINE_DEPTH):
    """``(frame, located)`` pairs for ``frames`` (items with an ``.image``, e.g. :class:`fer_hybrid.video.Frame`).

    pipeline=True: decoding and ``session.locate`` (detection/tracking, landmarks, crops) run in one
    background thread, up to ``depth`` frames ahead (dlib, OpenCV, onnxruntime and TensorFlow release the
    GIL, so the stages overlap on two cores); exceptions
    from there are re-raised here. pipeline=False: both run lazily in the caller's thread. Close the result
    (``contextlib.closing``) before releasing the source.
    """
    located = ((f, session.locate(f.image)) for f in frames)
    if not pipeline:
        return located
    from ..video import Prefetch

    return Prefetch(located, depth, name="fer_hybrid-stage-a")


def run_frames(session: VideoSession, frames: Iterable, pipeline: bool = True,
               depth: int = PIPELINE_DEPTH) -> Iterator[tuple[object, list[Face]]]:
    """``(frame, faces)`` for each frame in order: the one loop behind the CLI, benchmarks and analyses
    (``depth``: frames located ahead when pipelined)."""
    with contextlib.closing(stream(session, frames, pipeline, depth)) as located:
        for frame, loc in located:
            yield frame, session.classify(frame.image, loc)


def check_rescue(rescue_threshold: float | str | None) -> float | None:
    """The photo-mode rescue threshold: "auto" = :data:`PHOTO_RESCUE_THRESHOLD`, None = no rescue, or a
    number in [-2, 0). ValueError otherwise."""
    if isinstance(rescue_threshold, str) and rescue_threshold == "auto":
        return PHOTO_RESCUE_THRESHOLD
    if rescue_threshold is None:
        return None
    if isinstance(rescue_threshold, bool) or not isinstance(rescue_threshold, (int, float)) \
            or not -2.0 <= float(rescue_threshold) < 0.0:
        raise ValueError(f"rescue_threshold must be 'auto', None or a number in [-2, 0), got {rescue_threshold!r}")
    return float(rescue_threshold)


def photo_upsample(image: np.ndarray, upsample: int | None = None) -> int:
    """dlib HOG upsampling for a photo: ``upsample`` when given, else once when the image's shorter side is
    below :data:`PHOTO_UPSAMPLE_BELOW` px (smaller faces), else none."""
    if upsample is not None:
        return int(upsample)
    return 1 if min(image.shape[:2]) < PHOTO_UPSAMPLE_BELOW else 0


def detect_photo(image: np.ndarray, upsample: int | None = None,
                 rescue_threshold: float | None = PHOTO_RESCUE_THRESHOLD) -> tuple[np.ndarray, np.ndarray]:
    """The Analyzer's photo-mode detection of a checked frame -> (int (k, 4) boxes, float (k,) HOG scores):
    dlib HOG at :func:`photo_upsample`, with the rescue of the best candidate above ``rescue_threshold``."""
    from ..landmarks.detect import detect_faces_scored

    return detect_faces_scored(image, photo_upsample(image, upsample), rescue_threshold=rescue_threshold)


# ---------------------------------------------------------------------------------------------
# The facade
# ---------------------------------------------------------------------------------------------
class Analyzer:
    """Detection -> crop -> predict for photos and videos with one model.

    ``model``: a registered name (``"default"``: the manifest's default), or a predictor object.
    ``crop_margin``: box growth per side before cropping. ``landmarks``: also return dlib's 68 points.
    ``upsample``: dlib HOG upsampling for photos (None: once when the shorter side is below
    :data:`PHOTO_UPSAMPLE_BELOW` px, else none). ``rescue_threshold``: photos only; when no face clears dlib's threshold, keep
    the best candidate scoring above this ("auto" = :data:`PHOTO_RESCUE_THRESHOLD`, chosen on val in the frame;
    None = never). ``tta``: for a crop model, a test-time augmentation
    policy of :mod:`fer_hybrid.cnn.tta` on top of what the model runs (None: exactly the shipped model).
    ``models_dir``: where the artifacts live (default: ``$FER_HYBRID_MODELS`` or the packaged models).
    ``align``: for a crop model, the crop (:mod:`fer_hybrid.inference.align`): "auto" (default) = "level"
    for crop models (chosen on val in the frame), nothing for models that place their own landmarks;
    False / "off" = box + ``crop_margin``; "box" = FER2013's calibrated framing of the box; "level" = that,
    turned to level the eyes; True / "eyes" = eyes placed on FER2013's mean eye positions. ``temperature``: "auto" (default) =
    the calibration recorded in the model's manifest entry (if any); a number T = divide the log-probabilities by it
    (temperature scaling, :mod:`fer_hybrid.inference.temperature`); None = the probabilities as the model gives them.
    """

    def __init__(self, model="default", *, crop_margin: float = DEFAULT_MARGIN, landmarks: bool = False,
                 upsample: int | None = None, tta: str | None = None, models_dir: str | os.PathLike | None = None,
                 align: bool | str = "auto", temperature: float | str | None = "auto",
                 rescue_threshold: float | str | None = "auto"):
        from ..predictors import default_model, load_predictor

        if isinstance(model, str):
            name = default_model(models_dir) if model == "default" else model
            predictor = load_predictor(name, models_dir)
        else:
            predictor = model
        if tta is not None:
            from ..cnn.tta import TTAPredictor

            if getattr(predictor, "input_kind", "crops") != "crops" or not hasattr(predictor, "model"):
                raise ValueError(f"tta applies to a single Keras CNN; {getattr(predictor, 'name', model)!r} is not one")
            predictor = TTAPredictor(predictor.model, f"{predictor.name}+{tta}", tta)
        self.predictor = predictor
        self.crop_margin = check_margin(crop_margin)
        self.landmarks = bool(landmarks)
        if upsample is not None and (int(upsample) != upsample or not 0 <= upsample <= 3):
            raise ValueError(f"upsample must be an integer in 0..3 or None, got {upsample}")
        self.upsample = upsample
        self.rescue_threshold = check_rescue(rescue_threshold)
        self._faces = FacePredictor(predictor, self.crop_margin, self.landmarks, align, temperature)
        self.align, self.temperature = self._faces.align, self._faces.temperature
        self.name, self.classes = self._faces.name, self._faces.classes

    def __repr__(self) -> str:
        return f"Analyzer(model={self.name!r}, crop_margin={self.crop_margin}, landmarks={self.landmarks})"

    # -- photos ---------------------------------------------------------------------------------
    def detect(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Photo-mode detection at full resolution -> (int (k, 4) boxes, float (k,) scores)."""
        return detect_photo(check_frame(image), self.upsample, self.rescue_threshold)

    def analyze(self, image) -> list[Face]:
        """Faces of one photo: a path (str / Path) or a uint8 gray/BGR/BGRA array -> list[Face] (ids None).

        SourceError for a file that cannot be read as an image; ValueError for a bad array.
        """
        image = read_image(image) if isinstance(image, (str, os.PathLike)) else check_frame(image)
        t0 = time.perf_counter()
        boxes, scores = self.detect(image)
        self.last_timings = {"detection": time.perf_counter() - t0}
        if not len(boxes):
            return []
        proba, pts, fallback, t = self._faces.run(image, boxes)
        self.last_timings.update(t)
        return [Face(None, boxes[i], proba[i], proba[i].copy(), True, None if pts is None else pts[i],
                     "cnn" if fallback[i] else None, float(scores[i]), self.name, self.classes)
                for i in range(len(boxes))]

    # -- videos ---------------------------------------------------------------------------------
    def session(self, detect_every: int = 3, smoothing: float = 0.5,
                detect_width: int | None = VIDEO_DETECT_WIDTH, upsample: int = 0,
                photos: bool = False) -> VideoSession:
        """A fresh :class:`VideoSession` (tracks, smoothing) for one video with this Analyzer's model;
        ``photos=True`` for a sequence of unrelated images (the photo-mode rescue applies)."""
        return VideoSession(self._faces, detect_every, smoothing, detect_width, upsample,
                            rescue_threshold=self.rescue_threshold if photos else None)

    def analyze_video(self, source, *, detect_every: int = 3, smoothing: float = 0.5,
                      detect_width: int | None = VIDEO_DETECT_WIDTH, upsample: int = 0,
                      max_frames: int | None = None, pipeline: bool = True) -> "VideoAnalysis":
        """Per-frame results of a video (path, camera index, ``"sample"`` or a :class:`fer_hybrid.video.FrameSource`)
        with track ids and smoothed probabilities: iterate it for :class:`FrameFaces`, or call
        ``.to_dataframe()`` for the long table. SourceError (when iteration starts) if the source cannot be opened."""
        return VideoAnalysis(self, source, dict(detect_every=detect_every, smoothing=smoothing,
                                                detect_width=detect_width, upsample=upsample),
                             max_frames, pipeline)


class VideoAnalysis:
    """The frames of one analysed video, computed lazily: ``for frame in va`` yields :class:`FrameFaces`
    (once per iteration, re-running the video); ``va.frames()`` runs it once and keeps the list;
    ``va.to_dataframe()`` is the long table (:func:`fer_hybrid.inference.table.to_dataframe`)."""

    def __init__(self, analyzer: Analyzer, source, session_kw: dict, max_frames: int | None, pipeline: bool):
        self.analyzer, self.source, self.session_kw = analyzer, source, session_kw
        self.max_frames, self.pipeline = max_frames, pipeline
        self.description = str(source)
        self.fps: float | None = None
        self.skipped_files: list[str] = []
        self._frames: list[FrameFaces] | None = None

    def __iter__(self) -> Iterator[FrameFaces]:
        import itertools

        from ..video import FrameSource, open_source

        src = self.source if isinstance(self.source, FrameSource) else open_source(self.source)
        self.description, self.fps = src.description, src.fps
        session = self.analyzer.session(**self.session_kw)
        with src:
            frames = itertools.islice(src, self.max_frames) if self.max_frames else src
            for frame, faces in run_frames(session, frames, self.pipeline):
                yield FrameFaces(frame.index, frame.timestamp, faces, getattr(frame, "path", None))
            self.skipped_files = list(getattr(src, "skipped_files", []))

    def frames(self) -> list[FrameFaces]:
        if self._frames is None:
            self._frames = list(self)
        return self._frames

    def to_dataframe(self):
        """pandas DataFrame, one row per face per frame (and one per frame without a face)."""
        from .table import to_dataframe

        return to_dataframe(self.frames(), source=self.description, model=self.analyzer.name,
                            classes=self.analyzer.classes)


def read_image(path: str | os.PathLike) -> np.ndarray:
    """uint8 BGR (h, w, 3) of an image file; SourceError naming the file when it cannot be decoded."""
    from ..video import SourceError, decode_image, too_large_reason

    path = Path(path)
    if not path.is_file():
        raise SourceError(f"image not found: {path}" if not path.exists() else f"not a file: {path}")
    reason = too_large_reason(path)  # read from the header: a decompression bomb is refused before decoding
    if reason:
        raise SourceError(reason)
    image = decode_image(path)
    if image is None:
        raise SourceError(f"cannot read image {path} (not an image, truncated, or an unsupported format)")
    return image
