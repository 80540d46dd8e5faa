"""Local appearance at the landmarks: HOG, LBP or Gabor descriptors on small patches of the aligned face.

Input: uint8 gray faces (n, h, w) (the 48x48 crops the landmark track uses) and their 68 landmarks
float (n, 68, 2) as (x, y) in the same pixels (iBUG order). Each face is first *aligned*: a similarity
warp (``cv2.warpAffine``, bilinear, replicated border) puts the eye centres on a horizontal line
``iod`` pixels apart, in a square window of 2.4 x ``iod`` pixels (1.2 inter-ocular distances either side
of the eye midpoint, 0.9 above it, 1.5 below it). Patches of ``patch`` x ``iod`` pixels are centred on
*sites*: single landmarks or the mean of a few (e.g. the glabella between the inner brow ends, the
nasolabial folds between nose wing and mouth corner), optionally shifted up/down in inter-ocular units
(:data:`SITES`; :data:`SITE_SETS` names the sets). Each patch is cut into ``cells`` x ``cells`` cells:

- ``hog``: per cell a histogram of gradient orientations (``bins`` unsigned bins, magnitude-weighted,
  linear interpolation between bins), L2-Hys normalised per patch (as Dalal & Triggs' blocks);
- ``lbp``: per cell the histogram of uniform 8-neighbour local binary patterns (59 labels, radius 1),
  as fractions of the cell's pixels (Shan et al., 2009);
- ``gabor``: per cell the mean Gabor energy (even/odd pair magnitude) of ``bins`` orientations x 2
  wavelengths (0.2 and 0.4 ``iod``).

Cell sums come from integral images, so a batch is a few numpy passes. Optionally a PCA (fitted on
training descriptors by :meth:`LandmarkAppearance.fit`) reduces the descriptor to ``pca`` columns; the
projection is kept as plain arrays (``mean_``, ``components_``) and saved with :meth:`save` as an
``.npz`` (no pickle). A face with any non-finite landmark, or coincident eyes, gives a row of NaN.

:class:`FaceFeatures` concatenates the geometric features (:class:`~.features.LandmarkFeatures`) and the
appearance columns: the feature matrix the landmark ensemble's members read.

>>> app = LandmarkAppearance("hog", sites="core", patch=0.5, pca=64).fit(x48_train, points_train)
>>> app.transform(x48, points)                       # float32 (n, 64)
>>> FaceFeatures(app).transform(x48, points)         # float64 (n, n_geometric + 64)
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Mapping

import numpy as np

from ..npz_cache import write_arrays
from ..safe_io import file_sha256
from .features import LandmarkFeatures, normalise

DESCRIPTORS = ("hog", "lbp", "gabor")
FORMAT = "fer_hybrid.landmark_appearance"
FORMAT_VERSION = 1
# the aligned window in inter-ocular units around the eye midpoint: x in [-1.2, 1.2], y in [-0.9, 1.5]
WINDOW = 2.4
EYE_Y = 0.9
ROW_CHUNK = 256  # faces per numpy pass (bounds the integral-image memory)

# site name -> (landmark indices averaged, vertical shift in inter-ocular units; negative = up)
SITES: dict[str, tuple[tuple[int, ...], float]] = {
    "brow_r_out": ((17,), 0.0), "brow_r_mid": ((19,), 0.0), "brow_r_in": ((21,), 0.0),
    "brow_l_in": ((22,), 0.0), "brow_l_mid": ((24,), 0.0), "brow_l_out": ((26,), 0.0),
    "glabella": ((21, 22), 0.0), "forehead": ((21, 22), -0.35),
    "eye_r_out": ((36,), 0.0), "eye_r_top": ((37, 38), 0.0), "eye_r_in": ((39,), 0.0), "eye_r_bot": ((40, 41), 0.0),
    "eye_l_in": ((42,), 0.0), "eye_l_top": ((43, 44), 0.0), "eye_l_out": ((45,), 0.0), "eye_l_bot": ((46, 47), 0.0),
    "nose_root": ((27,), 0.0), "nose_tip": ((30,), 0.0), "nose_wing_r": ((31,), 0.0), "nose_wing_l": ((35,), 0.0),
    "cheek_r": ((41, 48), 0.0), "cheek_l": ((46, 54), 0.0),
    "fold_r": ((31, 48), 0.0), "fold_l": ((35, 54), 0.0),
    "mouth_r": ((48,), 0.0), "mouth_l": ((54,), 0.0), "lip_top": ((51,), 0.0), "lip_bottom": ((57,), 0.0),
    "mouth_centre": ((62, 66), 0.0), "chin": ((57, 8), 0.0),
}
SITE_SETS: dict[str, tuple[str, ...]] = {
    # the minimum: eyes, brows, nose and mouth corners
    "corners": ("brow_r_out", "brow_r_in", "brow_l_in", "brow_l_out", "eye_r_out", "eye_r_in", "eye_l_in",
                "eye_l_out", "nose_wing_r", "nose_wing_l", "mouth_r", "mouth_l"),
    # plus the regions where expression wrinkles and openings show
    "core": ("brow_r_out", "brow_r_mid", "brow_r_in", "brow_l_in", "brow_l_mid", "brow_l_out", "glabella",
             "eye_r_out", "eye_r_in", "eye_l_in", "eye_l_out", "nose_root", "nose_wing_r", "nose_wing_l",
             "fold_r", "fold_l", "mouth_r", "mouth_l", "lip_top", "lip_bottom"),
    "full": tuple(SITES),
}
GABOR_WAVELENGTHS = (0.2, 0.4)  # in inter-ocular units


class AppearanceFileError(ValueError):
    """An appearance file is missing, damaged, or does not match its settings."""


def _check(descriptor: str, sites: str, patch: float, cells: int, bins: int, iod: float) -> None:
    if descriptor not in DESCRIPTORS:
        raise ValueError(f"unknown appearance descriptor {descriptor!r}; valid: {', '.join(DESCRIPTORS)}")
    if sites not in SITE_SETS:
        raise ValueError(f"unknown site set {sites!r}; valid: {', '.join(SITE_SETS)}")
    if not (0 < patch <= 2) or cells < 1 or bins < 2 or iod < 4:
        raise ValueError(f"need 0 < patch <= 2, cells >= 1, bins >= 2, iod >= 4; got patch={patch}, cells={cells}, "
                         f"bins={bins}, iod={iod}")


# ------------------------------------------------------------------------------------------------
# alignment and sites
# ------------------------------------------------------------------------------------------------
def window_size(iod: float) -> int:
    """Side (pixels) of the aligned square window for an inter-ocular distance of ``iod`` pixels."""
    return int(round(WINDOW * iod))


def align(images: np.ndarray, points: np.ndarray, iod: float = 20.0) -> tuple[np.ndarray, np.ndarray]:
    """Level the eyes: (float32 (n, S, S) aligned faces in 0..1, float64 (n, 68, 2) normalised points, bool (n,) ok).

    ``S = window_size(iod)``; the normalised points are those of :func:`~.features.normalise` (eye midpoint
    at 0, inter-ocular distance 1); a pixel of the aligned face sits at ``points * iod + origin(iod)``.
    Rows that are not ok (no landmarks) are black faces with NaN points.
    """
    images = np.asarray(images)
    p = np.asarray(points, np.float64)
    norm, ok = normalise(p)
    size = window_size(iod)
    out = np.zeros((len(images), size, size), np.float32)
    if not ok.any():
        return out, norm, ok
    import cv2

    # similarity src -> aligned: scale iod / d, rotation levelling the eye line (as normalise), then shift
    cr, cl = p[:, 36:42].mean(axis=1), p[:, 42:48].mean(axis=1)
    v = cl - cr
    d = np.hypot(v[:, 0], v[:, 1])
    d = np.where(ok, d, 1.0)
    cos, sin = v[:, 0] / d, v[:, 1] / d
    s = iod / d
    mid = (cr + cl) / 2
    o = origin(iod)
    for i in np.flatnonzero(ok):
        a = s[i] * np.array([[cos[i], sin[i]], [-sin[i], cos[i]]])
        t = o - a @ mid[i]
        m = np.hstack([a, t[:, None]])
        out[i] = cv2.warpAffine(images[i].astype(np.float32), m, (size, size), flags=cv2.INTER_LINEAR,
                                borderMode=cv2.BORDER_REPLICATE)
    out *= 1.0 / 255.0
    return out, norm, ok


def origin(iod: float) -> np.ndarray:
    """(x, y) pixel of the eye midpoint in the aligned window."""
    return np.array([WINDOW / 2 * iod - 0.5, EYE_Y * iod - 0.5])


def site_positions(norm: np.ndarray, sites: str) -> np.ndarray:
    """Site centres in normalised (inter-ocular) units: float64 (n, k, 2) from normalised points (n, 68, 2)."""
    out = []
    for name in SITE_SETS[sites]:
        idx, dy = SITES[name]
        c = norm[:, list(idx)].mean(axis=1)
        out.append(c + [0.0, dy])
    return np.stack(out, axis=1)


# ------------------------------------------------------------------------------------------------
# per-pixel channels (what the cells sum)
# ------------------------------------------------------------------------------------------------
def _hog_channels(faces: np.ndarray, bins: int) -> np.ndarray:
    """float32 (n, S, S, bins): gradient magnitude split between the two nearest unsigned-orientation bins."""
    f = np.pad(faces, ((0, 0), (1, 1), (1, 1)), mode="edge")
    gx = f[:, 1:-1, 2:] - f[:, 1:-1, :-2]
    gy = f[:, 2:, 1:-1] - f[:, :-2, 1:-1]
    mag = np.hypot(gx, gy)
    pos = (np.arctan2(gy, gx) % np.pi) / np.pi * bins - 0.5      # bin centres at 0..bins-1
    lo = np.floor(pos)
    w_hi = (pos - lo).astype(np.float32)
    lo = lo.astype(np.int64) % bins
    hi = (lo + 1) % bins
    out = np.zeros((*faces.shape, bins), np.float32)
    np.put_along_axis(out, lo[..., None], (mag * (1 - w_hi))[..., None], axis=-1)
    np.put_along_axis(out, hi[..., None], (mag * w_hi)[..., None], axis=-1)   # hi != lo: bins >= 2
    return out


def _uniform_table() -> np.ndarray:
    """int (256,) -> uniform-LBP label (58 uniform patterns 0..57, every other pattern 58)."""
    table = np.full(256, 58, np.int64)
    k = 0
    for code in range(256):
        bits = [(code >> i) & 1 for i in range(8)]
        if sum(bits[i] != bits[(i + 1) % 8] for i in range(8)) <= 2:
            table[code] = k
            k += 1
    return table


_UNIFORM = _uniform_table()
N_LBP = 59


def _lbp_channels(faces: np.ndarray) -> np.ndarray:
    """float32 (n, S, S, 59): one-hot uniform LBP label of each pixel (8 neighbours, radius 1, >= centre)."""
    f = np.pad(faces, ((0, 0), (1, 1), (1, 1)), mode="edge")
    h, w = faces.shape[1:]
    c = f[:, 1:-1, 1:-1]
    code = np.zeros(faces.shape, np.int64)
    for bit, (dy, dx) in enumerate(((-1, -1), (-1, 0), (-1, 1), (0, 1), (1, 1), (1, 0), (1, -1), (0, -1))):
        code |= (f[:, 1 + dy:1 + dy + h, 1 + dx:1 + dx + w] >= c).astype(np.int64) << bit
    return np.eye(N_LBP, dtype=np.float32)[_UNIFORM[code]]


def _gabor_bank(bins: int, iod: float) -> list[tuple[np.ndarray, np.ndarray]]:
    import cv2

    bank = []
    for lam in GABOR_WAVELENGTHS:
        lam_px = lam * iod
        sigma = 0.56 * lam_px
        k = int(2 * np.ceil(2.5 * sigma) + 1)
        for j in range(bins):
            theta = np.pi * j / bins
            even = cv2.getGaborKernel((k, k), sigma, theta, lam_px, 1.0, 0.0, ktype=cv2.CV_32F)
            odd = cv2.getGaborKernel((k, k), sigma, theta, lam_px, 1.0, np.pi / 2, ktype=cv2.CV_32F)
            bank.append((even - even.mean(), odd))
    return bank


def _gabor_channels(faces: np.ndarray, bank) -> np.ndarray:
    """float32 (n, S, S, len(bank)): Gabor energy sqrt(even^2 + odd^2) per kernel pair."""
    import cv2

    out = np.empty((*faces.shape, len(bank)), np.float32)
    for i, face in enumerate(faces):
        for j, (even, odd) in enumerate(bank):
            e = cv2.filter2D(face, cv2.CV_32F, even, borderType=cv2.BORDER_REPLICATE)
            o = cv2.filter2D(face, cv2.CV_32F, odd, borderType=cv2.BORDER_REPLICATE)
            out[i, :, :, j] = np.sqrt(e * e + o * o)
    return out


def _cell_sums(channels: np.ndarray, centres: np.ndarray, side: float, cells: int) -> np.ndarray:
    """float32 (n, k, cells*cells, c) channel sums over each site's cells and (n, k, cells*cells) pixel counts.

    ``centres`` (n, k, 2) pixel positions; the patch is ``side`` pixels square, cut into cells x cells
    cells (integer edges, clipped to the window).
    """
    n, h, w, c = channels.shape
    # pixel counts (LBP one-hot channels) sum exactly in float32; magnitudes accumulate in float64
    dtype = np.float32 if c == N_LBP else np.float64
    ii = np.zeros((n, h + 1, w + 1, c), dtype)
    ii[:, 1:, 1:] = channels.cumsum(axis=1, dtype=dtype).cumsum(axis=2)
    edges = np.arange(cells + 1) / cells * side - side / 2                       # (cells+1,)
    xs = np.rint(centres[..., 0:1] + 0.5 + edges).astype(np.int64)                # (n, k, cells+1)
    ys = np.rint(centres[..., 1:2] + 0.5 + edges).astype(np.int64)
    xs, ys = np.clip(xs, 0, w), np.clip(ys, 0, h)
    x0, x1 = xs[..., None, :-1], xs[..., None, 1:]                               # (n, k, 1, cells)
    y0, y1 = ys[..., :-1, None], ys[..., 1:, None]                               # (n, k, cells, 1)
    x0, x1, y0, y1 = (np.broadcast_to(a, (*centres.shape[:2], cells, cells)).reshape(n, -1, cells * cells)
                      for a in (x0, x1, y0, y1))
    r = np.arange(n)[:, None, None]
    sums = ii[r, y1, x1] - ii[r, y0, x1] - ii[r, y1, x0] + ii[r, y0, x0]
    counts = (x1 - x0) * (y1 - y0)
    return sums.astype(np.float32), counts


# ------------------------------------------------------------------------------------------------
# the transformer
# ------------------------------------------------------------------------------------------------
class LandmarkAppearance:
    """(faces uint8 (n, h, w), landmarks (n, 68, 2)) -> float32 (n, n_features) local descriptors.

    Settings (constructor, stored as given): ``descriptor`` (:data:`DESCRIPTORS`), ``sites``
    (:data:`SITE_SETS` name), ``patch`` (patch side in inter-ocular units), ``cells`` (per side),
    ``bins`` (HOG orientations / Gabor orientations; ignored by LBP), ``iod`` (pixels between the eye
    centres after alignment), ``pca`` (columns kept by a PCA fitted on training faces; None = raw).
    """

    def __init__(self, descriptor: str = "hog", sites: str = "core", patch: float = 0.5, cells: int = 2,
                 bins: int = 8, iod: float = 20.0, pca: int | None = None):
        _check(descriptor, sites, patch, cells, bins, iod)
        self.descriptor = descriptor
        self.sites = sites
        self.patch = float(patch)
        self.cells = int(cells)
        self.bins = int(bins)
        self.iod = float(iod)
        self.pca = None if pca is None else int(pca)
        self.mean_: np.ndarray | None = None
        self.components_: np.ndarray | None = None
        self._bank = _gabor_bank(self.bins, self.iod) if descriptor == "gabor" else None

    def get_params(self) -> dict:
        return {"descriptor": self.descriptor, "sites": self.sites, "patch": self.patch, "cells": self.cells,
                "bins": self.bins, "iod": self.iod, "pca": self.pca}

    def descriptor_params(self) -> dict:
        """The settings that determine :meth:`describe` (everything but the PCA): a cache key."""
        return {k: v for k, v in self.get_params().items() if k != "pca"}

    @property
    def n_channels(self) -> int:
        return {"hog": self.bins, "lbp": N_LBP, "gabor": self.bins * len(GABOR_WAVELENGTHS)}[self.descriptor]

    @property
    def n_raw(self) -> int:
        """Columns of :meth:`describe`: sites x cells^2 x channels."""
        return len(SITE_SETS[self.sites]) * self.cells ** 2 * self.n_channels

    @property
    def n_features(self) -> int:
        return self.n_raw if self.pca is None else self.pca

    # -- descriptors ------------------------------------------------------------------------
    def describe(self, images, points, progress: bool = False) -> np.ndarray:
        """float32 (n, n_raw) descriptors before the PCA; NaN rows for faces without landmarks."""
        images = np.asarray(images)
        points = np.asarray(points, np.float64)
        if images.ndim != 3 or points.shape != (len(images), 68, 2):
            raise ValueError(f"need faces (n, h, w) and landmarks (n, 68, 2); got {images.shape} and {points.shape}")
        out = np.full((len(images), self.n_raw), np.nan, np.float32)
        from tqdm.auto import tqdm

        for s in tqdm(range(0, len(images), ROW_CHUNK), desc=f"appearance ({self.descriptor})", unit="chunk",
                      disable=not progress):
            out[s:s + ROW_CHUNK] = self._describe_chunk(images[s:s + ROW_CHUNK], points[s:s + ROW_CHUNK])
        return out

    def _describe_chunk(self, images: np.ndarray, points: np.ndarray) -> np.ndarray:
        faces, norm, ok = align(images, points, self.iod)
        out = np.full((len(images), self.n_raw), np.nan, np.float32)
        if not ok.any():
            return out
        faces, norm = faces[ok], norm[ok]
        centres = site_positions(norm, self.sites) * self.iod + origin(self.iod)
        if self.descriptor == "hog":
            channels = _hog_channels(faces, self.bins)
        elif self.descriptor == "lbp":
            channels = _lbp_channels(faces)
        else:
            channels = _gabor_channels(faces, self._bank)
        sums, counts = _cell_sums(channels, centres, self.patch * self.iod, self.cells)  # (m, k, cc, c)
        if self.descriptor == "hog":   # L2-Hys over each patch's cells
            block = sums.reshape(len(faces), sums.shape[1], -1)
            block = block / np.sqrt((block ** 2).sum(-1, keepdims=True) + 1e-6)
            block = np.minimum(block, 0.2)
            block = block / np.sqrt((block ** 2).sum(-1, keepdims=True) + 1e-6)
            feats = block
        else:                          # per-cell means (LBP: label fractions; Gabor: mean energy)
            feats = sums / np.maximum(counts, 1)[..., None]
        out[ok] = feats.reshape(len(faces), -1)
        return out

    def feature_names(self) -> list[str]:
        if self.pca is not None:
            return [f"app_{self.descriptor}_pc{i:03d}" for i in range(self.pca)]
        return [f"app_{self.descriptor}_{site}_c{c}_b{b}" for site in SITE_SETS[self.sites]
                for c in range(self.cells ** 2) for b in range(self.n_channels)]

    # -- PCA --------------------------------------------------------------------------------
    def fit(self, images=None, points=None, raw: np.ndarray | None = None, random_state: int = 0):
        """Fit the PCA (if ``pca``) on training descriptors (``raw``, or computed from images + points); returns self."""
        if self.pca is None:
            return self
        from sklearn.decomposition import PCA

        raw = self.describe(images, points) if raw is None else np.asarray(raw, np.float32)
        raw = raw[np.isfinite(raw).all(axis=1)]
        if len(raw) <= self.pca or raw.shape[1] < self.pca:
            raise ValueError(f"PCA to {self.pca} columns needs more than {self.pca} faces with landmarks and at least "
                             f"{self.pca} descriptor columns; got {raw.shape}")
        pca = PCA(self.pca, svd_solver="randomized", random_state=random_state).fit(raw)
        self.mean_ = pca.mean_.astype(np.float32)
        self.components_ = pca.components_.astype(np.float32)
        return self

    def project(self, raw: np.ndarray) -> np.ndarray:
        """float32 (n, n_features): the PCA projection of :meth:`describe` output (identity without a PCA)."""
        raw = np.asarray(raw, np.float32)
        if self.pca is None:
            return raw
        if self.components_ is None:
            raise ValueError("LandmarkAppearance with pca is not fitted: call fit() first")
        return (raw - self.mean_) @ self.components_.T

    def transform(self, images, points) -> np.ndarray:
        """float32 (n, n_features); NaN rows for faces without landmarks."""
        return self.project(self.describe(images, points))

    # -- persistence ------------------------------------------------------------------------
    def save(self, path: str | Path) -> dict:
        """Write settings + PCA arrays to ``path`` (.npz, atomically); returns the descriptor entry
        {"params", "file", "sha256", "n_features"} to store beside the ensemble."""
        path = Path(path)
        arrays = {"params": np.array(json.dumps({"format": FORMAT, "format_version": FORMAT_VERSION,
                                                   **self.get_params()}))}
        if self.pca is not None:
            if self.components_ is None:
                raise ValueError("cannot save an unfitted LandmarkAppearance with pca")
            arrays.update(mean=self.mean_, components=self.components_)
        write_arrays(path, arrays)
        return {"params": self.get_params(), "file": path.name, "sha256": file_sha256(path),
                "n_features": self.n_features}

    @classmethod
    def load(cls, entry: Mapping, folder: str | Path, verify: bool = True) -> "LandmarkAppearance":
        """Rebuild from a descriptor entry written by :meth:`save` and its file in ``folder``;
        AppearanceFileError on a missing/damaged file or settings that do not match."""
        try:
            params, name, n_features = dict(entry["params"]), entry["file"], int(entry["n_features"])
        except (KeyError, TypeError, ValueError) as e:
            raise AppearanceFileError(f"appearance entry lacks params/file/n_features ({e})") from None
        path = Path(folder) / str(name)
        if not path.exists():
            raise AppearanceFileError(f"appearance file {path} is missing")
        if verify and entry.get("sha256") and file_sha256(path) != entry["sha256"]:
            raise AppearanceFileError(f"appearance file {path.name} does not match its sha256 (damaged or replaced)")
        try:
            app = cls(**params)
            with np.load(path, allow_pickle=False) as z:
                stored = json.loads(str(z["params"]))
                if stored.get("format") != FORMAT or {k: stored.get(k) for k in params} != app.get_params():
                    raise AppearanceFileError(f"{path.name}: settings differ from the descriptor's")
                if app.pca is not None:
                    app.mean_, app.components_ = z["mean"], z["components"]
        except AppearanceFileError:
            raise
        except Exception as e:  # numpy/zipfile/json raise many types for damaged files
            raise AppearanceFileError(f"cannot load appearance file {path.name}: {type(e).__name__}: {e}") from None
        if app.n_features != n_features or (app.pca is not None and app.components_.shape != (app.pca, app.n_raw)):
            raise AppearanceFileError(f"{path.name}: expects {n_features} features, these settings make {app.n_features}")
        return app


class FaceFeatures:
    """Geometry + appearance: (faces (n, h, w), landmarks (n, 68, 2)) -> float64 (n, n_geometric + n_appearance).

    ``geometry``: a fitted :class:`~.features.LandmarkFeatures` (or None for appearance only);
    ``appearance``: a (fitted) :class:`LandmarkAppearance` or None (geometry only). Column order:
    geometry first, then appearance.
    """

    def __init__(self, geometry: LandmarkFeatures | None = None, appearance: LandmarkAppearance | None = None):
        if geometry is None and appearance is None:
            raise ValueError("FaceFeatures needs geometry, appearance or both")
        if geometry is not None and not hasattr(geometry, "feature_names_"):
            geometry = geometry.fit(np.zeros((1, 68, 2)))
        self.geometry = geometry
        self.appearance = appearance

    def feature_names(self) -> list[str]:
        names = list(self.geometry.get_feature_names_out()) if self.geometry is not None else []
        return names + (self.appearance.feature_names() if self.appearance is not None else [])

    def combine(self, geometric: np.ndarray | None, appearance: np.ndarray | None) -> np.ndarray:
        """float64 (n, f) from precomputed blocks (each (n, ·) or None when that part is off)."""
        blocks = [np.asarray(b, np.float64) for b, on in ((geometric, self.geometry), (appearance, self.appearance))
                  if on is not None]
        return np.concatenate(blocks, axis=1)

    def transform(self, images, points) -> np.ndarray:
        points = np.asarray(points, np.float64)
        geo = self.geometry.transform(points) if self.geometry is not None else None
        app = self.appearance.transform(images, points) if self.appearance is not None else None
        return self.combine(geo, app)


def mirror_faces(images: np.ndarray, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The horizontally flipped faces and their landmarks: (uint8 (n, h, w), float64 (n, 68, 2)), left/right
    points swapped (:func:`~.features.mirror_points` with pixel-centre width ``w - 1``)."""
    from .features import mirror_points

    images = np.asarray(images)
    return np.ascontiguousarray(images[:, :, ::-1]), mirror_points(points, width=images.shape[2] - 1)
