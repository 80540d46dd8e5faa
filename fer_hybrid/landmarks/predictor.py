"""The landmark ensemble as a registry predictor (name ``landmarks``).

API (used by :mod:`fer_hybrid.realtime`)::

    p = load_predictor("landmarks")                 # or load_landmark_predictor(Path(".../ensemble.json"))
    p.predict_proba(faces)        # float32 (n, 5) in STUDY_EMOTIONS order; NaN row = no landmarks
    p.landmarks(faces)            # float32 (n, 68, 2) (x, y) in each crop's own pixel coordinates
    p.predict(faces)              # (proba (n, 5), points (n, 68, 2)) in one pass
    p.predict_proba_frame(frame, boxes)   # float32 (k, 5) for boxes int (k, 4) [x0, y0, x1, y1]
    p.landmarks_frame(frame, boxes)       # float32 (k, 68, 2) in frame pixel coordinates
    p.predict_frame(frame, boxes)         # (proba (k, 5), points (k, 68, 2)) in one pass

``faces`` is a uint8 array (n, h, w) of gray crops, or a list of gray (h, w) / BGR (h, w, 3) crops of
any size. Every crop is processed exactly like the training data: converted to gray, resized to
48x48 (INTER_AREA), upscaled 4x and landmarked with the full-image box by the landmark method the
ensemble was trained with (:mod:`.extract`: ``fixed``, or ``fixed-mirror`` which averages in the
flipped crop; the ensemble's ``landmark_method``, saved in ``ensemble.json``); then geometric features,
and, when the ensemble was trained with them, appearance descriptors at the landmarks of the same 48x48
crop (:class:`.appearance.LandmarkAppearance`, saved beside the ensemble as ``appearance.npz`` and named
in the descriptor's ``"appearance"`` section) -> ensemble. A box that is empty after clipping to the
frame gives a NaN row and NaN points.

An ensemble with appearance needs the faces as well as the points: use
:meth:`LandmarkPredictor.predict_proba_points` (48x48 faces + their points), not
``ensemble.predict_proba_points`` (points only, geometry-only ensembles).

Frame boxes from a face detector are usually tighter than FER2013's crops; ``box_scale`` (default
:data:`DEFAULT_BOX_SCALE`) enlarges each box about its centre before cropping, to match the framing
seen in training.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..labels import STUDY_EMOTIONS
from ..crops import to_gray_faces
from ..errors import ArtifactError
from .appearance import AppearanceFileError, FaceFeatures, LandmarkAppearance, mirror_faces
from .extract import METHODS, UPSCALE, landmarks_batch
from .models import EnsembleFileError, LandmarkEnsemble

SIZE = 48
DEFAULT_BOX_SCALE = 1.0
APPEARANCE_FILE = "appearance.npz"


class LandmarkPredictor:
    """Face crops -> dlib landmarks (fixed box on the 4x upscaled 48 px crop) -> landmark ensemble."""

    input_kind = "frame"  # the Analyzer calls predict_frame(frame, boxes): it places its own landmarks

    def __init__(self, ensemble: LandmarkEnsemble, name: str = "landmarks", box_scale: float = DEFAULT_BOX_SCALE,
                 method: str | None = None, appearance: LandmarkAppearance | None = None):
        method = method or ensemble.landmark_method
        if method not in METHODS or method == "hog":
            raise ArtifactError(f"landmark method {method!r} cannot run on face crops; use fixed or fixed-mirror")
        self.ensemble = ensemble
        self.method = method
        self.name = name
        self.classes: tuple[str, ...] = tuple(ensemble.classes)
        if self.classes != STUDY_EMOTIONS:
            raise ArtifactError(f"landmark ensemble classes {self.classes} differ from {STUDY_EMOTIONS}")
        self.box_scale = float(box_scale)
        self.appearance = appearance
        self.features = FaceFeatures(ensemble.features, appearance)
        # the members that carry weight: a zero-weight member adds exactly 0 to the vote, so skipping it
        # changes no probability and saves its prediction time
        active = {k: m for k, m in ensemble.members.items() if ensemble.weights.get(k, 0.0) > 0}
        self._voters = LandmarkEnsemble(active, {k: ensemble.weights[k] for k in active}, ensemble.features,
                                        ensemble.classes, ensemble.tta_mirror, ensemble.n_jobs,
                                        ensemble.landmark_method) if active else ensemble

    # -- face crops -------------------------------------------------------------------------
    def _points48(self, faces) -> tuple[np.ndarray, np.ndarray]:
        """(uint8 (n, 48, 48) faces, float32 (n, 68, 2) their landmarks)."""
        x = to_gray_faces(faces, SIZE)
        return x, landmarks_batch(x, self.method, UPSCALE)

    def _proba(self, x48: np.ndarray, points48: np.ndarray) -> np.ndarray:
        if len(points48) == 0:
            return np.zeros((0, len(self.classes)), np.float32)
        return self.predict_proba_points(x48, points48).astype(np.float32)

    def predict_proba_points(self, x48: np.ndarray, points48: np.ndarray) -> np.ndarray:
        """float64 (n, 5) from uint8 48x48 faces (n, 48, 48) and their landmarks (n, 68, 2) in those pixels:
        the features the ensemble was trained on (geometry [+ appearance]), averaged with the mirrored face
        when the ensemble uses mirror TTA. NaN rows for faces without landmarks."""
        if self.appearance is None:
            return self.ensemble.predict_proba_points(points48)
        x48 = np.asarray(x48)
        points48 = np.asarray(points48, np.float64)
        n = len(x48)
        if self.ensemble.tta_mirror:   # the faces and their mirror images in one pass (features are per row)
            mx, mp = mirror_faces(x48, points48)
            x48, points48 = np.concatenate([x48, mx]), np.concatenate([points48, mp])
        p = self._voters.predict_proba(self.features.transform(x48, points48))
        return (p[:n] + p[n:]) / 2 if self.ensemble.tta_mirror else p

    @staticmethod
    def _sizes(faces) -> np.ndarray:
        """float (n, 2) crop (w, h) sizes."""
        return np.array([[np.shape(f)[1], np.shape(f)[0]] for f in faces], dtype=np.float64).reshape(-1, 2)

    @staticmethod
    def _to_crop(points48: np.ndarray, sizes: np.ndarray) -> np.ndarray:
        """Points in 48 px coordinates -> each crop's coordinates (pixel centres aligned)."""
        s = (sizes / SIZE)[:, None, :]
        return ((points48 + 0.5) * s - 0.5).astype(np.float32)

    def predict(self, faces) -> tuple[np.ndarray, np.ndarray]:
        """(float32 (n, 5) probabilities, float32 (n, 68, 2) points in crop coordinates)."""
        x, pts = self._points48(faces)
        return self._proba(x, pts), self._to_crop(pts, self._sizes(faces))

    def predict_proba(self, faces) -> np.ndarray:
        return self._proba(*self._points48(faces))

    def landmarks(self, faces) -> np.ndarray:
        return self._to_crop(self._points48(faces)[1], self._sizes(faces))

    # -- frame + boxes ----------------------------------------------------------------------
    def _crops(self, frame: np.ndarray, boxes) -> tuple[list, np.ndarray, np.ndarray]:
        """Crops of the (scaled, clipped) boxes; their origins (k, 2); bool (k,) non-empty."""
        frame = np.asarray(frame)
        h, w = frame.shape[:2]
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        c = (boxes[:, :2] + boxes[:, 2:]) / 2
        half = (boxes[:, 2:] - boxes[:, :2]) / 2 * self.box_scale
        lo = np.floor(c - half).astype(np.int64)
        hi = np.ceil(c + half).astype(np.int64) + 1   # boxes are inclusive [x0, y0, x1, y1]
        lo = np.clip(lo, 0, [w, h])
        hi = np.clip(hi, 0, [w, h])
        ok = (hi > lo + 1).all(axis=1)
        crops = [frame[lo[i, 1]:hi[i, 1], lo[i, 0]:hi[i, 0]] for i in range(len(boxes)) if ok[i]]
        return crops, lo, ok

    def predict_frame(self, frame: np.ndarray, boxes) -> tuple[np.ndarray, np.ndarray]:
        """(float32 (k, 5) probabilities, float32 (k, 68, 2) points in frame coordinates)."""
        crops, origin, ok = self._crops(frame, boxes)
        proba = np.full((len(ok), len(self.classes)), np.nan, np.float32)
        points = np.full((len(ok), 68, 2), np.nan, np.float32)
        if crops:
            p, pts = self.predict(crops)
            proba[ok] = p
            points[ok] = pts + origin[ok][:, None, :]
        return proba, points

    def predict_proba_frame(self, frame: np.ndarray, boxes) -> np.ndarray:
        return self.predict_frame(frame, boxes)[0]

    def landmarks_frame(self, frame: np.ndarray, boxes) -> np.ndarray:
        return self.predict_frame(frame, boxes)[1]


def load_landmark_predictor(path: Path, name: str = "landmarks") -> LandmarkPredictor:
    """Registry loader: ``path`` is the ensemble's ``ensemble.json``; ArtifactError if it (or its appearance
    file) cannot be loaded, or if the members expect another number of features than the descriptor makes."""
    import json

    path = Path(path)
    try:
        ensemble = LandmarkEnsemble.load(path)
    except EnsembleFileError as e:
        raise ArtifactError(str(e)) from None
    desc = json.loads(path.read_text())
    appearance = None
    if desc.get("appearance"):
        try:
            appearance = LandmarkAppearance.load(desc["appearance"], path.parent)
        except (AppearanceFileError, ValueError) as e:
            raise ArtifactError(f"{path}: {e}") from None
    n_features = len(FaceFeatures(ensemble.features, appearance).feature_names())
    for member, model in ensemble.members.items():
        expected = getattr(model, "n_features_in_", n_features)
        if expected != n_features:
            raise ArtifactError(f"{path}: member {member!r} expects {expected} features but the descriptor makes "
                                f"{n_features} (geometry{' + appearance' if appearance else ''})")
    return LandmarkPredictor(ensemble, name, box_scale=desc.get("box_scale", DEFAULT_BOX_SCALE), appearance=appearance)


def save_landmark_model(ensemble: LandmarkEnsemble, folder: str | Path, appearance: LandmarkAppearance | None = None,
                        extra: dict | None = None) -> Path:
    """Save the ensemble (``ensemble.json`` + members) and, if given, its appearance transform
    (``appearance.npz``, named with its sha256 in the descriptor's ``"appearance"`` section) into ``folder``;
    returns the ``ensemble.json`` path. An ``appearance.npz`` left by an earlier save is removed when this
    model has none (after the new descriptor is in place)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    extra = dict(extra or {})
    if appearance is not None:
        extra["appearance"] = appearance.save(folder / APPEARANCE_FILE)
    path = ensemble.save(folder, extra=extra)
    if appearance is None:
        (folder / APPEARANCE_FILE).unlink(missing_ok=True)
    return path


def model_files(path: str | Path) -> list[Path]:
    """Every file a saved landmark model consists of besides ``ensemble.json``: members, then appearance."""
    import json

    path = Path(path)
    desc = json.loads(path.read_text())
    files = [path.parent / m["file"] for m in desc.get("members", [])]
    if desc.get("appearance"):
        files.append(path.parent / desc["appearance"]["file"])
    return files
