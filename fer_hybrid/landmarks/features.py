"""68 landmark points -> named, pose-normalised geometric features (a scikit-learn transformer).

Input: float (n, 68, 2) points as (x, y) in image pixels (iBUG 68-point order), or the same flattened
to (n, 136) as x0, y0, x1, y1, .... Normalisation: the origin is the midpoint of the two eye centres,
the unit is the inter-ocular distance (between eye centres), and the points are rotated so the eye
line is horizontal (subject's right eye at (-0.5, 0), left eye at (+0.5, 0); y grows downwards, as
in the image). Every feature is therefore invariant to translation, scale and in-plane rotation.

Feature groups (:meth:`LandmarkFeatures.get_feature_names_out` names every column):

- ``pt{i}_x``/``pt{i}_y``: the 136 normalised coordinates (``coords=True``);
- eyes: width, opening, eye aspect ratio (EAR) per eye;
- brows: brow-point-to-eye distances, brow height above the eye, inner-brow gap, slope, arch angle;
- mouth: width, outer height, opening, aspect ratios, lip thickness, corner lift vs lip centre,
  corner angles, smile angles, nose-to-lip and nose-to-corner distances;
- jaw/face: jaw widths, chin-mouth distance, face height, nose length;
- curvature: quadratic coefficient of lips and brows (y = a x^2 + b x + c, the ``a``);
- symmetry: left-right differences of eyes, brows, mouth corners, and mirrored-point offsets per region;
- ``d_{i}_{j}``: pairwise distances among :data:`KEY_POINTS` (``pairwise=True``).

A face with any non-finite point (no landmarks) or coincident eyes gives a row of NaN, never zeros.
"""
from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_array, check_is_fitted

N_POINTS = 68
RIGHT_EYE = list(range(36, 42))   # the subject's right eye (image left)
LEFT_EYE = list(range(42, 48))
KEY_POINTS = (17, 19, 21, 22, 24, 26,          # brows: outer, middle, inner
              36, 38, 39, 40, 42, 43, 45, 47,  # eye corners, top, bottom
              30, 33,                          # nose tip, nose base
              48, 50, 51, 52, 54, 56, 57, 58,  # outer lips
              62, 66,                          # inner lip centres
              0, 4, 8, 12, 16)                 # jaw
# index of each point's mirror image in the 68-point scheme (left <-> right)
MIRROR = np.array(
    list(range(16, -1, -1))                                   # jaw 0..16
    + list(range(26, 16, -1))                                 # brows 17..26
    + [27, 28, 29, 30]                                        # nose bridge
    + [35, 34, 33, 32, 31]                                    # nose base
    + [45, 44, 43, 42, 47, 46, 39, 38, 37, 36, 41, 40]        # eyes 36..47
    + [54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55]        # outer mouth 48..59
    + [64, 63, 62, 61, 60, 67, 66, 65])                       # inner mouth 60..67
_EPS = 1e-9
REGIONS = {"jaw": range(0, 17), "brow": range(17, 27), "eye": range(36, 48), "mouth": range(48, 68)}


def mirror_points(points: np.ndarray, width: float | None = None) -> np.ndarray:
    """Landmarks of the horizontally flipped face: x -> width - x (or -x) and left/right points swapped.

    (n, 68, 2) -> float64 (n, 68, 2), re-indexed by :data:`MIRROR` so that point i of the result is the
    mirror image of point ``MIRROR[i]`` of the input (e.g. the new right outer eye corner 36 is the old
    left one 45). ``width``: the image width in the points' coordinate frame, giving the points of
    ``image[:, ::-1]`` (with pixel-centre coordinates use ``width = W - 1``); None gives x -> -x, which is
    enough for the (translation-invariant) features. NaN rows stay NaN. Mirroring twice is the identity.
    """
    p = np.asarray(points, dtype=np.float64)[:, MIRROR].copy()
    p[..., 0] = (0.0 if width is None else float(width)) - p[..., 0]
    return p


def mirror_augment(points: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Training data doubled with mirrored faces: ((2n, 68, 2) points, (2n,) labels), originals first."""
    points = np.asarray(points, dtype=np.float64)
    return np.concatenate([points, mirror_points(points)]), np.concatenate([np.asarray(y), np.asarray(y)])


def normalise(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centre on the eye midpoint, scale by inter-ocular distance, de-rotate the eye line.

    (n, 68, 2) -> (normalised float64 (n, 68, 2), bool (n,) ok). Rows that are not ok are NaN.
    """
    p = np.asarray(points, dtype=np.float64)
    cr = p[:, RIGHT_EYE].mean(axis=1)
    cl = p[:, LEFT_EYE].mean(axis=1)
    v = cl - cr
    d = np.hypot(v[:, 0], v[:, 1])
    ok = np.isfinite(p).all(axis=(1, 2)) & (d > _EPS)
    d = np.where(ok, d, 1.0)
    cos, sin = v[:, 0] / d, v[:, 1] / d
    q = p - ((cr + cl) / 2)[:, None, :]
    x = (q[..., 0] * cos[:, None] + q[..., 1] * sin[:, None]) / d[:, None]
    y = (-q[..., 0] * sin[:, None] + q[..., 1] * cos[:, None]) / d[:, None]
    out = np.stack([x, y], axis=-1)
    out[~ok] = np.nan
    return out, ok


def _dist(p: np.ndarray, i: int, j: int) -> np.ndarray:
    return np.hypot(*(p[:, i] - p[:, j]).T)


def _angle(p: np.ndarray, at: int, a: int, b: int) -> np.ndarray:
    """Angle (radians) at point ``at`` between rays to ``a`` and ``b``."""
    u, v = p[:, a] - p[:, at], p[:, b] - p[:, at]
    cross = u[:, 0] * v[:, 1] - u[:, 1] * v[:, 0]
    dot = (u * v).sum(axis=1)
    return np.abs(np.arctan2(cross, dot))


def _slope(p: np.ndarray, a: int, b: int) -> np.ndarray:
    """Direction angle (radians) of the segment a -> b against the eye line (positive = downwards)."""
    v = p[:, b] - p[:, a]
    return np.arctan2(v[:, 1], np.abs(v[:, 0]) + _EPS)


def _curvature(p: np.ndarray, idx: list[int]) -> np.ndarray:
    """Least-squares ``a`` of y = a x^2 + b x + c through the points ``idx``; (n,)."""
    x, y = p[:, idx, 0], p[:, idx, 1]
    a = np.stack([x ** 2, x, np.ones_like(x)], axis=-1)            # (n, k, 3)
    ata = np.einsum("nki,nkj->nij", a, a) + 1e-12 * np.eye(3)
    aty = np.einsum("nki,nk->ni", a, y)
    return np.linalg.solve(ata, aty[..., None])[:, 0, 0]


def _ear(p: np.ndarray, eye: list[int]) -> np.ndarray:
    o, t1, t2, i, b2, b1 = eye
    return (_dist(p, t1, b1) + _dist(p, t2, b2)) / (2 * _dist(p, o, i) + _EPS)


def _geometry(p: np.ndarray) -> list[tuple[str, np.ndarray]]:
    """Named hand-crafted features of normalised points (n, 68, 2)."""
    f: list[tuple[str, np.ndarray]] = []
    add = lambda name, v: f.append((name, v))  # noqa: E731
    # eyes
    for side, eye in (("r", RIGHT_EYE), ("l", LEFT_EYE)):
        o, t1, t2, i, b2, b1 = eye
        add(f"eye_width_{side}", _dist(p, o, i))
        add(f"eye_open_{side}", (_dist(p, t1, b1) + _dist(p, t2, b2)) / 2)
        add(f"eye_ar_{side}", _ear(p, eye))
    # brows: distances of each brow point to the eye point below it, brow height, slope and arch
    brow_eye = {"r": ((17, 36), (18, 37), (19, 38), (20, 38), (21, 39)),
                "l": ((22, 42), (23, 43), (24, 43), (25, 44), (26, 45))}
    for side, pairs in brow_eye.items():
        for k, (b, e) in enumerate(pairs):
            add(f"brow_eye_{side}{k}", _dist(p, b, e))
        brow = [b for b, _ in pairs]
        eye = RIGHT_EYE if side == "r" else LEFT_EYE
        add(f"brow_height_{side}", p[:, eye[1:3], 1].mean(axis=1) - p[:, brow, 1].mean(axis=1))
        add(f"brow_slope_{side}", _slope(p, brow[0], brow[-1]) * (1 if side == "r" else -1))
        add(f"brow_arch_{side}", _angle(p, brow[2], brow[0], brow[-1]))
        add(f"brow_curv_{side}", _curvature(p, brow))
    add("brow_inner_gap", _dist(p, 21, 22))
    add("brow_inner_height", -(p[:, 21, 1] + p[:, 22, 1]) / 2)
    # mouth
    width = _dist(p, 48, 54)
    add("mouth_width", width)
    add("mouth_height", _dist(p, 51, 57))
    add("mouth_open", _dist(p, 62, 66))
    add("mouth_ar", _dist(p, 51, 57) / (width + _EPS))
    add("mouth_open_ar", _dist(p, 62, 66) / (width + _EPS))
    add("mouth_inner_width", _dist(p, 60, 64))
    add("lip_upper_thick", _dist(p, 51, 62))
    add("lip_lower_thick", _dist(p, 57, 66))
    centre_y = (p[:, 62, 1] + p[:, 66, 1]) / 2
    centre_x = (p[:, 62, 0] + p[:, 66, 0]) / 2
    for side, c in (("r", 48), ("l", 54)):
        add(f"corner_lift_{side}", centre_y - p[:, c, 1])
        add(f"smile_angle_{side}", np.arctan2(centre_y - p[:, c, 1], np.abs(p[:, c, 0] - centre_x) + _EPS))
        add(f"corner_eye_dy_{side}", p[:, c, 1])
        add(f"nose_corner_{side}", _dist(p, 33, c))
    add("corner_lift", centre_y - (p[:, 48, 1] + p[:, 54, 1]) / 2)
    add("corner_angle_r", _angle(p, 48, 49, 59))
    add("corner_angle_l", _angle(p, 54, 53, 55))
    add("inner_corner_angle_r", _angle(p, 60, 61, 67))
    add("inner_corner_angle_l", _angle(p, 64, 63, 65))
    add("upper_lip_angle", _angle(p, 51, 48, 54))
    add("lower_lip_angle", _angle(p, 57, 48, 54))
    add("nose_corners_angle", _angle(p, 33, 48, 54))
    add("nose_mouth", _dist(p, 33, 51))
    add("mouth_centre_y", centre_y)
    # jaw and face
    add("jaw_width", _dist(p, 0, 16))
    add("jaw_width_lower", _dist(p, 4, 12))
    add("chin_mouth", _dist(p, 57, 8))
    add("face_height", _dist(p, 27, 8))
    add("nose_length", _dist(p, 27, 33))
    add("jaw_angle", _angle(p, 8, 4, 12))
    # curvature
    add("curv_lip_upper", _curvature(p, [48, 49, 50, 51, 52, 53, 54]))
    add("curv_lip_lower", _curvature(p, [54, 55, 56, 57, 58, 59, 48]))
    add("curv_inner_upper", _curvature(p, [60, 61, 62, 63, 64]))
    add("curv_inner_lower", _curvature(p, [64, 65, 66, 67, 60]))
    add("curv_jaw", _curvature(p, list(range(17))))
    # symmetry (left minus right) and mirrored-point offsets per region
    for name in ("eye_ar", "eye_open", "brow_height", "corner_lift", "nose_corner"):
        vals = dict(f)
        add(f"asym_{name}", vals[f"{name}_l"] - vals[f"{name}_r"])
    m = mirror_points(p)
    for region, idx in REGIONS.items():
        idx = list(idx)
        add(f"asym_{region}_dx", np.abs(p[:, idx, 0] - m[:, idx, 0]).mean(axis=1))
        add(f"asym_{region}_dy", np.abs(p[:, idx, 1] - m[:, idx, 1]).mean(axis=1))
    add("nose_offset_x", p[:, 30, 0])  # head yaw cue
    return f


_COORD_NAMES = [f"pt{i:02d}_{a}" for i in range(N_POINTS) for a in "xy"]
_PAIR_I, _PAIR_J = (np.array(KEY_POINTS)[ix] for ix in np.triu_indices(len(KEY_POINTS), 1))
_PAIR_NAMES = [f"d_{i:02d}_{j:02d}" for i, j in zip(_PAIR_I, _PAIR_J)]


def _feature_table(p: np.ndarray, coords: bool, pairwise: bool) -> tuple[list[str], np.ndarray]:
    names: list[str] = []
    blocks: list[np.ndarray] = []
    n = len(p)
    if coords:
        names += _COORD_NAMES
        blocks.append(p.reshape(n, -1))
    geo = _geometry(p)
    names += [name for name, _ in geo]
    blocks.append(np.stack([v for _, v in geo], axis=1))
    if pairwise:
        names += _PAIR_NAMES
        diff = p[:, _PAIR_I] - p[:, _PAIR_J]
        blocks.append(np.hypot(diff[..., 0], diff[..., 1]))
    return names, np.concatenate(blocks, axis=1)


def as_points(X) -> np.ndarray:
    """float64 (n, 68, 2) from (n, 68, 2) or (n, 136), inf -> NaN; ValueError for any other shape."""
    X = check_array(X, allow_nd=True, ensure_all_finite=False, dtype=np.float64, ensure_min_samples=1)
    if not np.isfinite(X).all():
        X = np.where(np.isfinite(X), X, np.nan)  # inf points are as missing as NaN ones
    if X.ndim == 2 and X.shape[1] == 2 * N_POINTS:
        return X.reshape(len(X), N_POINTS, 2)
    if X.ndim == 3 and X.shape[1:] == (N_POINTS, 2):
        return X
    n_features = int(np.prod(X.shape[1:]))
    raise ValueError(f"X has {n_features} features, but LandmarkFeatures is expecting {2 * N_POINTS} features "
                     f"as input: landmarks must be (n, {N_POINTS}, 2) or (n, {2 * N_POINTS}), got {X.shape}")


class LandmarkFeatures(TransformerMixin, BaseEstimator):
    """(n, 68, 2) landmark points -> float64 (n, n_features) named geometric features.

    ``coords``: include the 136 normalised coordinates; ``pairwise``: include distances between
    :data:`KEY_POINTS`. Stateless apart from recording the feature names at ``fit``.
    """

    def __init__(self, coords: bool = True, pairwise: bool = True):
        self.coords = coords
        self.pairwise = pairwise

    def fit(self, X, y=None):
        as_points(X)
        self.n_features_in_ = 2 * N_POINTS
        template = np.zeros((1, N_POINTS, 2))
        self.feature_names_ = _feature_table(template, self.coords, self.pairwise)[0]
        return self

    def transform(self, X) -> np.ndarray:
        check_is_fitted(self, "feature_names_")
        p, ok = normalise(as_points(X))
        with np.errstate(invalid="ignore", divide="ignore"):
            _, table = _feature_table(p, self.coords, self.pairwise)
        table[~ok] = np.nan
        return table

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        check_is_fitted(self, "feature_names_")
        return np.asarray(self.feature_names_, dtype=object)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        tags.input_tags.three_d_array = True
        tags.requires_fit = True
        return tags
