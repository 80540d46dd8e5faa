"""FER2013 "in the frame": each 48x48 face, upscaled, placed in a larger synthetic frame under a controlled
condition, and run through the Analyzer's photo path (detection -> crop -> model).

A :class:`Condition` sets the face frame's size (``scale`` 1 = the 48 px face drawn at 192 px), in-plane
``rotation`` (degrees, positive = counter-clockwise on screen), position (``offset``: "jitter" = near the
centre, "edge" = 15 % of the face frame past the left edge), ``gamma``, Gaussian ``blur`` (sigma, frame px),
Gaussian ``noise`` (std, grey levels) and ``jpeg`` quality. Beyond the 48 px face the frame is the face's own
reflection (cv2.BORDER_REFLECT_101), increasingly blurred away from it (no flat colour, no sharp copy of the
face). Frames are gray uint8 ``canvas`` (w, h) = (480, 400) px. Everything is seeded: the frame of face i of a
split under a condition depends only on (seed, split, condition name, i).

A detection counts as the face when its box overlaps the face's expected HOG box (FER2013's mean box from
:data:`fer_hybrid.inference.framing.FER2013_FRAMING`, mapped into the frame) with IoU >= :data:`MATCH_IOU`;
other detections are false positives.

>>> frame, expected = render(face48, CONDITIONS["rot+20"], rng)     # uint8 (400, 480), float (4,) box
"""
from __future__ import annotations

import dataclasses
import zlib
from typing import Sequence

import numpy as np

from ..inference.framing import FER2013_FRAMING

CANVAS = (480, 400)      # (w, h) px; the Analyzer's photo mode does not upsample at this size (>= 400 px)
BASE = 4.0               # scale 1 draws the 48 px face at 192 px
PAD = 48                 # reflected extension around the 48 px face (each side), before warping
OUTER_SIGMA = 6.0        # blur of the extension far from the face (48 px units)
MATCH_IOU = 0.3


@dataclasses.dataclass(frozen=True)
class Condition:
    name: str
    scale: float = 1.0
    rotation: float = 0.0
    offset: str = "jitter"
    gamma: float = 1.0
    blur: float = 0.0
    noise: float = 0.0
    jpeg: int | None = None
    group: str = "default"

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


def _conditions() -> dict[str, Condition]:
    c = [Condition("default")]
    c += [Condition(f"scale{s:g}", scale=s, group="scale") for s in (0.5, 0.75, 1.5, 2.0)]
    c += [Condition(f"rot{r:+d}", rotation=float(r), group="rotation") for r in (-30, -20, -10, 10, 20, 30)]
    c += [Condition("edge", offset="edge", group="offset")]
    c += [Condition(f"gamma{g:g}", gamma=g, group="gamma") for g in (0.5, 2.0)]
    c += [Condition(f"blur{b:g}", blur=b, group="blur") for b in (2.0, 4.0)]
    c += [Condition(f"noise{n:g}", noise=n, group="noise") for n in (8.0, 16.0)]
    c += [Condition(f"jpeg{q}", jpeg=q, group="jpeg") for q in (30, 10)]
    return {x.name: x for x in c}


CONDITIONS: dict[str, Condition] = _conditions()


def rng_for(seed: int, split: str, condition: str, index: int) -> np.random.Generator:
    """The generator of one frame: depends only on (seed, split, condition name, face index)."""
    return np.random.default_rng([seed, zlib.crc32(split.encode()), zlib.crc32(condition.encode()), index])


def extended_face(face48: np.ndarray, pad: int = PAD, outer_sigma: float = OUTER_SIGMA) -> np.ndarray:
    """float32 (48 + 2 pad) square: the face, then its reflection blurred more and more away from it."""
    import cv2

    f = np.asarray(face48, np.float32)
    ext = cv2.copyMakeBorder(f, pad, pad, pad, pad, cv2.BORDER_REFLECT_101)
    blurred = cv2.GaussianBlur(ext, (0, 0), outer_sigma, borderType=cv2.BORDER_REFLECT_101)
    n = ext.shape[0]
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float32)
    lo, hi = pad - 0.5, pad + 47.5
    dist = np.maximum(np.maximum(lo - xx, xx - hi), np.maximum(lo - yy, yy - hi)).clip(0)  # px outside the face
    w = np.clip(dist / 6.0, 0.0, 1.0)           # fully blurred 6 px (48-px units) past the face's edge
    return ext * (1 - w) + blurred * w


def face_transform(condition: Condition, rng: np.random.Generator, canvas=CANVAS) -> np.ndarray:
    """float (2, 3) affine map from 48-frame pixel coordinates to canvas pixel coordinates."""
    import cv2

    W, H = canvas
    s = BASE * condition.scale
    side = 48 * s
    if condition.offset == "edge":
        centre = np.array([0.35 * side, H / 2 + rng.uniform(-0.1, 0.1) * max(H - side, 0) / 2])
    elif condition.offset == "jitter":
        centre = np.array([W / 2, H / 2]) + rng.uniform(-0.15, 0.15, 2) * np.maximum([W - side, H - side], 0) / 2
    else:
        raise ValueError(f"unknown offset {condition.offset!r}; valid: jitter, edge")
    m = cv2.getRotationMatrix2D((23.5, 23.5), condition.rotation, s)   # about the face centre
    m[:, 2] += centre - np.array([23.5, 23.5])
    return m


def expected_box(m: np.ndarray) -> np.ndarray:
    """float (4,) [x0, y0, x1, y1]: FER2013's mean HOG box mapped by ``m`` (axis-aligned hull of its corners)."""
    f = FER2013_FRAMING
    w = 48 / f.side
    c = np.array([23.5, 23.5]) - np.array([f.dx, f.dy]) * w
    corners = c + np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]]) * (w / 2)
    p = corners @ m[:, :2].T + m[:, 2]
    return np.concatenate([p.min(axis=0), p.max(axis=0)])


def render(face48: np.ndarray, condition: Condition, rng: np.random.Generator,
           canvas=CANVAS) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 gray frame (h, w), float (4,) expected face box) of one 48x48 face under ``condition``."""
    import cv2

    m = face_transform(condition, rng, canvas)
    ext = extended_face(face48)
    m_ext = m.copy()
    m_ext[:, 2] -= m[:, :2] @ np.array([PAD, PAD], float)      # ext pixel (PAD, PAD) is face pixel (0, 0)
    frame = cv2.warpAffine(ext, m_ext, canvas, flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT_101)
    frame = np.clip(frame, 0, 255)
    if condition.gamma != 1.0:
        frame = 255.0 * (frame / 255.0) ** condition.gamma
    if condition.blur > 0:
        frame = cv2.GaussianBlur(frame, (0, 0), condition.blur)
    if condition.noise > 0:
        frame = frame + rng.normal(0.0, condition.noise, frame.shape)
    frame = np.clip(np.round(frame), 0, 255).astype(np.uint8)
    if condition.jpeg is not None:
        ok, buf = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, int(condition.jpeg)])
        frame = cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE)
    return frame, expected_box(m)


def iou(boxes: np.ndarray, box: np.ndarray) -> np.ndarray:
    """float (k,) IoU of inclusive int boxes (k, 4) with one float box (4,) [x0, y0, x1, y1]."""
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4) + [-0.5, -0.5, 0.5, 0.5]
    ix = np.clip(np.minimum(b[:, 2], box[2]) - np.maximum(b[:, 0], box[0]), 0, None)
    iy = np.clip(np.minimum(b[:, 3], box[3]) - np.maximum(b[:, 1], box[1]), 0, None)
    inter = ix * iy
    union = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]) + (box[2] - box[0]) * (box[3] - box[1]) - inter
    return inter / np.maximum(union, 1e-9)


def match(boxes: np.ndarray, box: np.ndarray, threshold: float = MATCH_IOU) -> int:
    """Index of the detection that is the face (best IoU >= threshold), or -1."""
    if not len(boxes):
        return -1
    v = iou(boxes, box)
    j = int(np.argmax(v))
    return j if v[j] >= threshold else -1


def subset(n_total: int, n: int, seed: int, split: str) -> np.ndarray:
    """Sorted seeded sample of ``n`` of ``n_total`` face indices (all when n <= 0 or n >= n_total)."""
    if n <= 0 or n >= n_total:
        return np.arange(n_total)
    return np.sort(np.random.default_rng([seed, zlib.crc32(split.encode())]).choice(n_total, n, replace=False))


def select_conditions(names: Sequence[str] | None) -> list[Condition]:
    """The named conditions (all when None); ValueError naming the valid ones."""
    if not names:
        return list(CONDITIONS.values())
    bad = [n for n in names if n not in CONDITIONS]
    if bad:
        raise ValueError(f"unknown condition(s) {', '.join(bad)}; valid: {', '.join(CONDITIONS)}")
    return [CONDITIONS[n] for n in names]


# ---------------------------------------------------------------------------------------------
# Running the benchmark: detect once per frame (cached), classify with each crop variant
# ---------------------------------------------------------------------------------------------
VARIANT_HELP = "margin:M (box + margin M per side, the original crop), box, level, eyes (fer_hybrid.inference.align)"


def variant_predictor(predictor, spec: str, temperature: float | None = None):
    """A :class:`fer_hybrid.inference.analyzer.FacePredictor` for a crop variant ``spec`` (:data:`VARIANT_HELP`);
    ``"own"`` for a frame predictor (it crops itself). ValueError for an unknown spec."""
    from ..inference.analyzer import FacePredictor

    if spec == "own":
        return FacePredictor(predictor, temperature=temperature)
    if spec.startswith("margin:"):
        try:
            margin = float(spec.split(":", 1)[1])
        except ValueError:
            raise ValueError(f"bad crop variant {spec!r}; expected {VARIANT_HELP}") from None
        return FacePredictor(predictor, crop_margin=margin, align="off", temperature=temperature)
    if spec in ("box", "level", "eyes"):
        return FacePredictor(predictor, align=spec, temperature=temperature)
    raise ValueError(f"unknown crop variant {spec!r}; expected {VARIANT_HELP} or own")


def cache_key(x48: np.ndarray, condition: Condition, seed: int, split: str, detector: str) -> str:
    import hashlib
    import json

    h = hashlib.sha256(np.ascontiguousarray(x48).tobytes())
    h.update(json.dumps([condition.to_json(), seed, split, detector, CANVAS, BASE, PAD, OUTER_SIGMA, 2]).encode())
    return h.hexdigest()[:20]


def detect_frames(x48: np.ndarray, indices: np.ndarray, condition: Condition, seed: int, split: str, detect,
                  detector: str = "analyzer-photo", cache_dir=None, progress: bool = False) -> list[np.ndarray]:
    """Detections (int (k, 4) boxes per frame) of every rendered frame; ``x48`` (n, 48, 48) holds the faces of
    ``indices`` in order. ``detect(frame) -> (boxes, scores)``; results cached in ``cache_dir`` by content."""
    from pathlib import Path

    from tqdm import tqdm

    from ..npz_cache import cached_arrays

    def compute() -> dict:
        out = []
        for face, i in tqdm(zip(x48, indices), total=len(indices), disable=not progress, unit="frame",
                            desc=f"detect {split}/{condition.name}", leave=False):
            frame, _ = render(face, condition, rng_for(seed, split, condition.name, int(i)))
            out.append(np.asarray(detect(frame)[0], np.int64).reshape(-1, 4))
        return {"boxes": np.concatenate(out + [np.zeros((0, 4), np.int64)]),
                "counts": np.array([len(b) for b in out], np.int64)}

    z = compute() if cache_dir is None else cached_arrays(
        Path(cache_dir) / f"det-{split}-{condition.name}-{cache_key(x48, condition, seed, split, detector)}.npz", compute)
    return np.split(z["boxes"], np.cumsum(z["counts"])[:-1]) if len(z["counts"]) else []


def classify_frames(x48: np.ndarray, indices: np.ndarray, condition: Condition, seed: int, split: str,
                    boxes: list[np.ndarray], variants: dict, progress: bool = False) -> dict:
    """Run each variant (name -> FacePredictor) on the matched face of every frame.

    Returns {"matched" int (n,) detection index or -1, "n_boxes" int (n,), "false_positives" int (n,),
    "proba": {variant: float (n, k) (NaN rows where the face was not found)}, "seconds": {variant: s}}.
    """
    import time

    from tqdm import tqdm

    n = len(indices)
    matched = np.full(n, -1, np.int64)
    proba = {v: None for v in variants}
    seconds = {v: 0.0 for v in variants}
    for j, (face, i) in enumerate(tqdm(zip(x48, indices), total=n, disable=not progress, unit="frame",
                                       desc=f"classify {split}/{condition.name}", leave=False)):
        frame, box = render(face, condition, rng_for(seed, split, condition.name, int(i)))
        m = match(boxes[j], box)
        matched[j] = m
        if m < 0:
            continue
        for name, fp in variants.items():
            t0 = time.perf_counter()
            p = fp.run(frame, boxes[j][m:m + 1])[0][0]
            seconds[name] += time.perf_counter() - t0
            if proba[name] is None:
                proba[name] = np.full((n, len(p)), np.nan)
            proba[name][j] = p
    k = len(next(iter(variants.values())).classes) if variants else 0
    proba = {v: (p if p is not None else np.full((n, k), np.nan)) for v, p in proba.items()}
    n_boxes = np.array([len(b) for b in boxes], np.int64)
    return {"matched": matched, "n_boxes": n_boxes, "false_positives": n_boxes - (matched >= 0),
            "proba": proba, "seconds": seconds}


def detected_on_originals(x48: np.ndarray, upscale: int = 4) -> np.ndarray:
    """bool (n,): dlib HOG (upsample 0) finds a face on each face upscaled ``upscale`` times (no frame)."""
    from ..landmarks.detect import detect_faces
    from ..landmarks.extract import upscale_image

    return np.array([len(detect_faces(upscale_image(f, upscale), 0)) > 0 for f in x48], bool)


def predicted_labels(proba: np.ndarray) -> np.ndarray:
    """int (n,): the argmax class of each row of ``proba`` (n, k), -1 where the row is NaN (face not found)."""
    proba = np.asarray(proba, dtype=np.float64)
    return np.where(np.isfinite(proba).all(axis=1), np.nan_to_num(proba).argmax(axis=1), -1)


def condition_metrics(y: np.ndarray, proba: np.ndarray, direct: np.ndarray, found: np.ndarray,
                      found_original: np.ndarray, false_positives: np.ndarray) -> dict:
    """One (variant, condition, split) row: faces found, accuracy over found faces, accuracy counting misses
    as errors, and the same model's direct 48x48 accuracy on all faces and on the found ones."""
    y = np.asarray(y)
    pred = predicted_labels(proba)
    dpred = np.asarray(direct).argmax(axis=1)
    n, nf = len(y), int(found.sum())
    orig = int(found_original.sum())
    return {"n": n, "found": nf, "found_share": nf / n if n else float("nan"),
            "found_of_original": float((found & found_original).sum() / orig) if orig else float("nan"),
            "false_positives_per_frame": float(false_positives.mean()) if n else float("nan"),
            "accuracy_found": float((pred[found] == y[found]).mean()) if nf else float("nan"),
            "accuracy_all": float((pred == y).mean()) if n else float("nan"),
            "direct_accuracy": float((dpred == y).mean()) if n else float("nan"),
            "direct_accuracy_found": float((dpred[found] == y[found]).mean()) if nf else float("nan")}


# ---------------------------------------------------------------------------------------------
# One benchmark run: the variants, every condition of a split, and the variant chosen on val
# ---------------------------------------------------------------------------------------------
CROP_VARIANTS = "margin:0.1,margin:0.25,box,level,eyes"


def detector_key(analyzer) -> str:
    """What the cached detections depend on: the Analyzer's photo upsampling and rescue threshold."""
    key = "analyzer-photo" if analyzer.upsample is None else f"analyzer-photo-up{analyzer.upsample}"
    return key if analyzer.rescue_threshold is None else f"{key}-rescue{analyzer.rescue_threshold:g}"


def variant_specs(predictor, variants: str | None = None) -> list[str]:
    """The crop variant specs of a run: ``variants`` (comma-separated) if given, else ``"own"`` for a predictor
    that crops itself (``input_kind == "frame"``) and :data:`CROP_VARIANTS` for one taking 48x48 crops."""
    own = getattr(predictor, "input_kind", "crops") == "frame"
    return (variants or ("own" if own else CROP_VARIANTS)).split(",")


def run_split(x48: np.ndarray, y: np.ndarray, indices: np.ndarray, split: str, conditions: Sequence[Condition],
              seed: int, variants: dict, direct: np.ndarray, found_original: np.ndarray, detect,
              detector: str = "analyzer-photo", cache_dir=None, progress: bool = False, log=None,
              predictions: dict | None = None) -> tuple:
    """Every condition of one split: detect (cached), classify the matched face with every variant
    (name -> FacePredictor), and one :func:`condition_metrics` row per (variant, condition).

    Returns (rows {(variant, condition name, split): metrics}, default {variant: proba (n, k) at the "default"
    condition}, seconds {variant: classification seconds}); ``log(line)`` gets one summary line per condition.
    ``predictions``, when given, receives {variant: int16 (len(conditions), n)} per-face classes in condition
    order (-1 = face not found), for paired comparisons (:mod:`fer_hybrid.evaluation.paired`).
    """
    rows, default, seconds = {}, {}, {v: 0.0 for v in variants}
    per_face = {v: [] for v in variants}
    for c in conditions:
        boxes = detect_frames(x48, indices, c, seed, split, detect, cache_dir=cache_dir, progress=progress,
                              detector=detector)
        r = classify_frames(x48, indices, c, seed, split, boxes, variants, progress=progress)
        found = r["matched"] >= 0
        for v in variants:
            rows[(v, c.name, split)] = condition_metrics(y, r["proba"][v], direct, found, found_original,
                                                         r["false_positives"])
            seconds[v] += r["seconds"][v]
            per_face[v].append(predicted_labels(r["proba"][v]).astype(np.int16))
            if c.name == "default":
                default[v] = r["proba"][v]
        if log is not None:
            log(f"{split:4s} {c.name:9s} found {found.mean():.3f} " + " ".join(
                f"{v}={rows[(v, c.name, split)]['accuracy_found']:.3f}" for v in variants))
    if predictions is not None:
        predictions.update({v: np.stack(p) if p else np.zeros((0, len(indices)), np.int16)
                            for v, p in per_face.items()})
    return rows, default, seconds


def choose_variant(rows: dict, variants: Sequence[str], conditions: Sequence[Condition],
                   splits: Sequence[str]) -> tuple[str, str, dict]:
    """The variant with the highest mean ``accuracy_all`` (misses = errors) over all conditions on the selection
    split ("val" when run, else the first split); first wins ties. Returns (chosen, selection split,
    {variant: score}); ValueError without variants, KeyError naming a missing row."""
    if not variants:
        raise ValueError("no crop variants to choose from")
    select = "val" if "val" in splits else splits[0]
    for v in variants:
        for c in conditions:
            if (v, c.name, select) not in rows:
                raise KeyError(f"no row for variant {v!r}, condition {c.name!r}, split {select!r}")
    score = {v: float(np.mean([rows[(v, c.name, select)]["accuracy_all"] for c in conditions])) for v in variants}
    return max(score, key=score.get), select, score
