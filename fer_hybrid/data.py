"""FER2013 loading: Kaggle image folders (directory or .tar.gz) or the original fer2013.csv.

>>> data = load_fer2013("path/to/fer2013_images.tar.gz")      # or FER2013_PATH=...
>>> data.train.x.shape, data.train.x.dtype                     # (n, 48, 48) uint8
>>> data.val.y[:5]                                             # ids into data.classes

Splits follow the original ``Usage`` column: Training -> ``train``, PublicTest -> ``val``,
PrivateTest -> ``test``. In the image-folder layout ``train/`` is Training and the file-name prefix
(``PublicTest_`` / ``PrivateTest_``) separates the two halves of ``test/``.

The first load decodes every image once and caches all seven classes in an ``.npz`` keyed by the
source's sha256 (``$FER_HYBRID_CACHE`` or ``~/.cache/fer_hybrid``); later loads read the cache.
"""
from __future__ import annotations

import csv
import dataclasses
import hashlib
import os
import tarfile
import warnings
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from .labels import FER2013_EMOTIONS, STUDY_EMOTIONS

SPLITS = ("train", "val", "test")
USAGE_TO_SPLIT = {"Training": "train", "PublicTest": "val", "PrivateTest": "test"}
IMAGE_SIZE = 48
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".pgm", ".tif", ".tiff", ".webp"}
CACHE_VERSION = 1
WHERE_TO_GET = (
    "FER2013 is not bundled. Get it from Kaggle (the image folders 'msambare/fer2013', or "
    "'challenges-in-representation-learning-facial-expression-recognition-challenge' for fer2013.csv) "
    "and pass its path, or set FER2013_PATH. In this project's dev setup it is "
    "../shared/data/fer2013/fer2013_images.tar.gz."
)


class DataError(ValueError):
    """The data source exists but cannot be read as FER2013 (layout, corrupt file, bad row)."""


@dataclasses.dataclass
class Split:
    """One split. ``x`` uint8 (n, 48, 48) grayscale; ``y`` int64 (n,) ids into the dataset's classes;
    ``keys`` (n,) str: the image's path inside the source (or ``row:<i>`` for the csv)."""

    x: np.ndarray
    y: np.ndarray
    keys: np.ndarray

    def __len__(self) -> int:
        return len(self.y)

    def subset(self, mask: np.ndarray) -> "Split":
        return Split(self.x[mask], self.y[mask], self.keys[mask])


@dataclasses.dataclass
class FER2013:
    """The three splits plus provenance (``source`` path and its ``sha256``)."""

    train: Split
    val: Split
    test: Split
    classes: tuple[str, ...]
    source: str
    sha256: str

    def split(self, name: str) -> Split:
        if name not in SPLITS:
            raise ValueError(f"unknown split {name!r}; valid: {', '.join(SPLITS)}")
        return getattr(self, name)

    def counts(self) -> dict[str, dict[str, int]]:
        """{split: {class name: count}}."""
        return {s: {c: int((self.split(s).y == i).sum()) for i, c in enumerate(self.classes)} for s in SPLITS}


# --------------------------------------------------------------------------------------------
# Source resolution and fingerprinting
# --------------------------------------------------------------------------------------------
def resolve_source(source: str | os.PathLike | None = None) -> Path:
    """The data path from ``source`` or ``$FER2013_PATH``; FileNotFoundError saying where to get it."""
    if source is None:
        source = os.environ.get("FER2013_PATH")
        if not source:
            raise FileNotFoundError(f"no FER2013 path given and FER2013_PATH is not set. {WHERE_TO_GET}")
    path = Path(source).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"FER2013 source not found: {path}. {WHERE_TO_GET}")
    return path


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of a file (:func:`fer_hybrid.safe_io.file_sha256`, cached by path, size and mtime)."""
    from .safe_io import file_sha256

    return file_sha256(path)


def source_sha256(path: Path) -> str:
    """sha256 of a file source; for a directory, of its sorted (relative path, size, mtime) listing."""
    if path.is_file():
        return sha256_file(path)
    h = hashlib.sha256()
    for p in sorted(q for q in path.rglob("*") if q.is_file()):
        st = p.stat()
        h.update(f"{p.relative_to(path).as_posix()}\t{st.st_size}\t{st.st_mtime_ns}\n".encode())
    return "dir-" + h.hexdigest()


# --------------------------------------------------------------------------------------------
# Decoding
# --------------------------------------------------------------------------------------------
def decode_gray(data: bytes, name: str) -> np.ndarray | None:
    """Decode image bytes to uint8 (48, 48) grayscale (resized with INTER_AREA if needed); None if undecodable."""
    import cv2

    arr = np.frombuffer(data, dtype=np.uint8)
    img = cv2.imdecode(arr, cv2.IMREAD_GRAYSCALE) if arr.size else None
    if img is None:
        return None
    if img.shape != (IMAGE_SIZE, IMAGE_SIZE):
        img = cv2.resize(img, (IMAGE_SIZE, IMAGE_SIZE), interpolation=cv2.INTER_AREA)
    return img


def _split_of(rel: str) -> str | None:
    """Split name for a folder-layout path like ``fer2013/test/happy/PublicTest_1.jpg``; None if not a sample."""
    parts = rel.split("/")
    if len(parts) < 3:
        return None
    top, emotion, fname = parts[-3], parts[-2], parts[-1]
    if emotion not in FER2013_EMOTIONS or fname.startswith("."):
        return None
    if top == "train":
        return "train"
    if top == "test":
        if fname.startswith("PublicTest_"):
            return "val"
        if fname.startswith("PrivateTest_"):
            return "test"
        if Path(fname).suffix.lower() not in IMAGE_SUFFIXES:
            return "test"  # not an image (notes.txt, Thumbs.db): fails to decode -> raise/skip like junk in train/
        raise DataError(f"cannot tell PublicTest from PrivateTest for {rel}: test/ files must start with "
                        "'PublicTest_' or 'PrivateTest_' (the Kaggle msambare/fer2013 naming)")
    return None


def _iter_folder(root: Path) -> Iterator[tuple[str, bytes]]:
    for p in sorted(q for q in root.rglob("*") if q.is_file()):
        yield p.relative_to(root).as_posix(), p.read_bytes()


def _iter_tar(path: Path) -> Iterator[tuple[str, bytes]]:
    try:
        with tarfile.open(path, "r:*") as tar:
            for member in tar:
                if member.isfile():
                    f = tar.extractfile(member)
                    yield member.name, f.read() if f else b""
    except (tarfile.TarError, EOFError, OSError) as e:
        raise DataError(f"cannot read archive {path}: {' '.join(str(e).split())}") from e


def _decode_folder_layout(entries: Iterable[tuple[str, bytes]], source: Path, on_error: str) -> dict:
    xs, ys, splits, keys, bad = [], [], [], [], []
    for rel, data in entries:
        split = _split_of(rel)
        if split is None:
            continue
        img = decode_gray(data, rel)
        if img is None:
            bad.append(rel)
            if on_error == "raise":
                raise DataError(f"cannot decode image {rel} in {source} (corrupt or not an image); "
                                "pass on_error='skip' to skip such files with a warning")
            continue
        xs.append(img)
        ys.append(FER2013_EMOTIONS.index(rel.split("/")[-2]))
        splits.append(SPLITS.index(split))
        keys.append(rel)
    if not xs:
        raise DataError(f"no FER2013 images found in {source}: expected train/<emotion>/*.jpg and "
                        f"test/<emotion>/*.jpg with emotions {', '.join(FER2013_EMOTIONS)}")
    if bad:
        warnings.warn(f"skipped {len(bad)} undecodable file(s) in {source}: {', '.join(bad[:5])}"
                      + (" ..." if len(bad) > 5 else ""), stacklevel=3)
    return dict(x=np.stack(xs), y7=np.array(ys, np.int8), split=np.array(splits, np.int8),
                keys=np.array(keys), skipped=np.array(bad, dtype=str))


def _decode_csv(path: Path, on_error: str) -> dict:
    try:
        return _decode_csv_rows(path, on_error)
    except (UnicodeDecodeError, csv.Error) as e:
        raise DataError(f"{path} is not fer2013.csv: not a readable text CSV ({e})") from None


def _decode_csv_rows(path: Path, on_error: str) -> dict:
    xs, ys, splits, keys, bad = [], [], [], [], []
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = {"emotion", "pixels", "Usage"} - set(reader.fieldnames or [])
        if missing:
            raise DataError(f"{path} is not fer2013.csv: missing column(s) {', '.join(sorted(missing))}")
        for i, row in enumerate(reader):
            try:
                px = np.array(row["pixels"].split(), dtype=np.int64)
                if px.size != IMAGE_SIZE * IMAGE_SIZE or px.min() < 0 or px.max() > 255:
                    raise ValueError(f"{px.size} pixel values, expected 2304 in 0..255")
                y = int(row["emotion"])
                if not 0 <= y < len(FER2013_EMOTIONS):
                    raise ValueError(f"emotion {y} outside 0..6")
                split = USAGE_TO_SPLIT[row["Usage"]]
            except (ValueError, KeyError, AttributeError) as e:
                bad.append(f"row:{i}")
                if on_error == "raise":
                    raise DataError(f"{path}: bad data row {i}: {e}") from None
                continue
            xs.append(px.astype(np.uint8).reshape(IMAGE_SIZE, IMAGE_SIZE))
            ys.append(y)
            splits.append(SPLITS.index(split))
            keys.append(f"row:{i}")
    if not xs:
        raise DataError(f"no rows in {path}")
    if bad:
        warnings.warn(f"skipped {len(bad)} bad row(s) in {path}", stacklevel=3)
    return dict(x=np.stack(xs), y7=np.array(ys, np.int8), split=np.array(splits, np.int8),
                keys=np.array(keys), skipped=np.array(bad, dtype=str))


def decode_source(path: Path, on_error: str = "raise") -> dict:
    """Decode all seven classes of a source into arrays: x (N,48,48) uint8, y7 (N,), split (N,), keys (N,)."""
    if on_error not in ("raise", "skip"):
        raise ValueError("on_error must be 'raise' or 'skip'")
    if path.is_dir():
        return _decode_folder_layout(_iter_folder(path), path, on_error)
    name = path.name.lower()
    if name.endswith(".csv"):
        return _decode_csv(path, on_error)
    if name.endswith((".tar.gz", ".tgz", ".tar")):
        return _decode_folder_layout(_iter_tar(path), path, on_error)
    raise DataError(f"unsupported FER2013 source {path}: expected a folder, a .tar.gz of the image folders, "
                    "or fer2013.csv")


# --------------------------------------------------------------------------------------------
# Cache
# --------------------------------------------------------------------------------------------
def cache_dir() -> Path:
    return Path(os.environ.get("FER_HYBRID_CACHE", Path.home() / ".cache" / "fer_hybrid")).expanduser()


def _cache_file(sha: str, on_error: str) -> Path:
    return cache_dir() / f"fer2013-v{CACHE_VERSION}-{on_error}-{sha[:24]}.npz"


def _load_all(path: Path, sha: str, on_error: str, use_cache: bool) -> dict:
    from .npz_cache import load_or_compute   # a damaged cache is rebuilt, never trusted

    return load_or_compute(_cache_file(sha, on_error), lambda: decode_source(path, on_error), store=use_cache)[0]


# --------------------------------------------------------------------------------------------
# Public loader
# --------------------------------------------------------------------------------------------
def load_fer2013(source: str | os.PathLike | None = None, classes: tuple[str, ...] = STUDY_EMOTIONS, *,
                 use_cache: bool = True, on_error: str = "raise",
                 drop_cross_split_duplicates: bool = False) -> FER2013:
    """Load FER2013 restricted to ``classes`` (default: the 5 study emotions).

    ``source``: image-folder directory, its .tar.gz, or fer2013.csv (default ``$FER2013_PATH``).
    ``on_error``: 'raise' (default) -> DataError naming the first undecodable file;
    'skip' -> skip such files with one warning giving their count.
    ``drop_cross_split_duplicates``: drop train images whose pixels also occur in val or test.
    """
    classes = tuple(classes)
    unknown = [c for c in classes if c not in FER2013_EMOTIONS]
    if unknown or not classes:
        raise ValueError(f"unknown class name(s) {unknown}; valid: {', '.join(FER2013_EMOTIONS)}")
    path = resolve_source(source)
    sha = source_sha256(path)
    a = _load_all(path, sha, on_error, use_cache)
    table = np.array([classes.index(c) if c in classes else -1 for c in FER2013_EMOTIONS], np.int64)
    y = table[a["y7"].astype(np.int64)]
    parts = {}
    for i, s in enumerate(SPLITS):
        m = (a["split"] == i) & (y >= 0)
        parts[s] = Split(a["x"][m], y[m], a["keys"][m])
    data = FER2013(parts["train"], parts["val"], parts["test"], classes, str(path), sha)
    if drop_cross_split_duplicates:
        data.train = data.train.subset(~cross_split_mask(data))
    return data


# --------------------------------------------------------------------------------------------
# Duplicates
# --------------------------------------------------------------------------------------------
def _hashes(x: np.ndarray) -> np.ndarray:
    """(n,) hex digests of each image's pixels."""
    return np.array([hashlib.blake2b(img.tobytes(), digest_size=16).hexdigest() for img in x])


def cross_split_mask(data: FER2013) -> np.ndarray:
    """bool (n_train,): train images whose exact pixels also occur in val or test."""
    held_out = set(_hashes(data.val.x)) | set(_hashes(data.test.x))
    return np.array([h in held_out for h in _hashes(data.train.x)], dtype=bool)


def duplicate_report(data: FER2013) -> dict:
    """Exact pixel duplicates within and across splits, and how many groups carry conflicting labels.

    Returns {"within": {split: {...}}, "across": {"train-val": {...}, ...}} where each entry has
    ``groups`` (distinct duplicated images), ``images`` (rows involved) and ``label_conflicts``
    (groups whose rows disagree on the label).
    """
    hashes = {s: _hashes(data.split(s).x) for s in SPLITS}
    out: dict = {"within": {}, "across": {}}
    for s in SPLITS:
        groups: dict[str, set] = {}
        counts: dict[str, int] = {}
        for h, y in zip(hashes[s], data.split(s).y):
            groups.setdefault(h, set()).add(int(y))
            counts[h] = counts.get(h, 0) + 1
        dup = [h for h, c in counts.items() if c > 1]
        out["within"][s] = {"groups": len(dup), "images": int(sum(counts[h] for h in dup)),
                            "label_conflicts": int(sum(len(groups[h]) > 1 for h in dup))}
    for a, b in (("train", "val"), ("train", "test"), ("val", "test")):
        la = {}
        for h, y in zip(hashes[a], data.split(a).y):
            la.setdefault(h, set()).add(int(y))
        lb = {}
        for h, y in zip(hashes[b], data.split(b).y):
            lb.setdefault(h, set()).add(int(y))
        shared = set(la) & set(lb)
        out["across"][f"{a}-{b}"] = {
            "groups": len(shared),
            "images": int(sum(h in shared for h in hashes[a]) + sum(h in shared for h in hashes[b])),
            "label_conflicts": int(sum(la[h] != lb[h] for h in shared)),
        }
    out["train_in_val_or_test"] = int(cross_split_mask(data).sum())
    return out


# --------------------------------------------------------------------------------------------
# tf.data pipeline
# --------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Augment:
    """Training augmentation. Fractions are of the image size; ``rotation`` in degrees;
    ``brightness``/``contrast`` are max relative changes. All zero = no augmentation.

    Degradations (off by default; each hits an image with probability ``degrade_p``, see :func:`degrade`):
    ``low_res`` = max relative loss of resolution (0.5: down to half the side, then back up), ``blur`` = max
    Gaussian sigma (px of the image), ``noise`` = max Gaussian noise std (grey levels)."""

    flip: bool = True
    shift: float = 0.1
    rotation: float = 10.0
    zoom: float = 0.1
    brightness: float = 0.2
    contrast: float = 0.2
    low_res: float = 0.0
    blur: float = 0.0
    noise: float = 0.0
    degrade_p: float = 0.25

    def __post_init__(self):
        if not 0.0 <= self.low_res < 1.0:
            raise ValueError(f"low_res must be in [0, 1), got {self.low_res}")
        if self.blur < 0 or self.noise < 0 or not 0.0 <= self.degrade_p <= 1.0:
            raise ValueError(f"blur and noise must be >= 0 and degrade_p in [0, 1], got blur={self.blur}, "
                             f"noise={self.noise}, degrade_p={self.degrade_p}")

    def scaled(self, factor: float) -> "Augment":
        """This augmentation with its shift, rotation, zoom, brightness and contrast ranges times ``factor``
        (>= 0); flip and degradations unchanged."""
        if factor < 0:
            raise ValueError(f"the augmentation scale must be >= 0, got {factor}")
        return dataclasses.replace(self, shift=self.shift * factor, rotation=self.rotation * factor,
                                   zoom=self.zoom * factor, brightness=self.brightness * factor,
                                   contrast=self.contrast * factor)

    @property
    def degrades(self) -> bool:
        return self.degrade_p > 0 and (self.low_res > 0 or self.blur > 0 or self.noise > 0)

    @classmethod
    def none(cls) -> "Augment":
        return cls(False, 0.0, 0.0, 0.0, 0.0, 0.0)

    def layers(self, seed: int | None = None) -> list:
        """Keras preprocessing layers implementing this augmentation (inputs in 0..255)."""
        import keras

        out = []
        if self.flip:
            out.append(keras.layers.RandomFlip("horizontal", seed=seed))
        if self.rotation:
            out.append(keras.layers.RandomRotation(self.rotation / 360.0, fill_mode="reflect", seed=seed))
        if self.shift:
            out.append(keras.layers.RandomTranslation(self.shift, self.shift, fill_mode="reflect", seed=seed))
        if self.zoom:
            out.append(keras.layers.RandomZoom(self.zoom, fill_mode="reflect", seed=seed))
        if self.brightness:
            out.append(keras.layers.RandomBrightness(self.brightness, value_range=(0, 255), seed=seed))
        if self.contrast:
            out.append(keras.layers.RandomContrast(self.contrast, seed=seed))
        return out


BLUR_RADIUS = 3          # px: the Gaussian kernel of :func:`degrade` spans 2 * 3 + 1 taps
LOW_RES_LEVELS = 3       # :func:`degrade` draws the reduced side from this many sizes between the min and full


def degrade(img, augment: Augment, seed: int = 0):
    """float32 (b, h, w, c) images in 0..255 -> the same, each image independently degraded as a face seen
    small, out of focus or by a noisy camera: with probability ``augment.degrade_p`` each, (1) resolution lost
    (area-downscaled to one of :data:`LOW_RES_LEVELS` sides between ``(1 - low_res) * h`` and ``h``, exclusive,
    then bilinear back to h x w), (2) Gaussian blur, sigma uniform in (0, ``blur``] px (reflected border,
    kernel radius :data:`BLUR_RADIUS`), (3) Gaussian noise, std uniform in (0, ``noise``] grey levels. Not clipped.
    """
    import tensorflow as tf

    a = augment
    b = tf.shape(img)[0]
    h, w = int(img.shape[1]), int(img.shape[2])

    def hit(offset):
        return tf.cast(tf.random.uniform([b, 1, 1, 1], seed=seed + offset) < a.degrade_p, img.dtype)

    if a.low_res > 0:
        sides = np.linspace((1.0 - a.low_res) * h, h, LOW_RES_LEVELS + 1)[:-1]
        pick = tf.random.uniform([b], 0, len(sides), dtype=tf.int32, seed=seed + 1)
        out = img
        for j, side in enumerate(sides):
            small = tf.image.resize(img, (max(1, round(side)), max(1, round(side * w / h))), method="area")
            back = tf.image.resize(small, (h, w), method="bilinear")
            out = tf.where(tf.reshape(pick == j, [-1, 1, 1, 1]), back, out)
        m = hit(2)
        img = m * out + (1 - m) * img
    if a.blur > 0:
        r = BLUR_RADIUS
        sigma = tf.random.uniform([b, 1], 1e-3, a.blur, seed=seed + 3)
        taps = tf.range(-r, r + 1, dtype=tf.float32)[None, :]
        k = tf.exp(-0.5 * (taps / sigma) ** 2)
        k = k / tf.reduce_sum(k, axis=1, keepdims=True)                        # (b, 2r + 1)
        m = hit(4)
        padded = tf.pad(img, [[0, 0], [r, r], [r, r], [0, 0]], mode="REFLECT")
        rows = sum(k[:, j, None, None, None] * padded[:, :, j:j + w, :] for j in range(2 * r + 1))
        out = sum(k[:, j, None, None, None] * rows[:, j:j + h, :, :] for j in range(2 * r + 1))
        img = m * out + (1 - m) * img
    if a.noise > 0:
        std = tf.random.uniform([b, 1, 1, 1], 0.0, a.noise, seed=seed + 5)
        img = img + hit(6) * std * tf.random.normal(tf.shape(img), seed=seed + 7)
    return img


def make_dataset(x: np.ndarray, y: np.ndarray | None = None, *, batch_size: int = 64, shuffle: bool = False,
                 augment: Augment | None = None, seed: int = 0, repeat: bool = False):
    """tf.data.Dataset of float32 (b, 48, 48, 1) images in 0..255, plus ``y`` if given: int32 (b,) labels,
    or float32 (b, k) soft targets when ``y`` is a 2-D float array.

    Model-specific resizing/normalisation lives inside each model, so this is the only pipeline.
    """
    import tensorflow as tf

    x = np.asarray(x)
    if x.ndim == 3:
        x = x[..., None]
    if y is not None:
        y = np.asarray(y)
        y = y.astype(np.float32) if y.ndim == 2 else y.astype(np.int32)
    items = (x,) if y is None else (x, y)
    ds = tf.data.Dataset.from_tensor_slices(items)
    if shuffle:
        ds = ds.shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
    if repeat:
        ds = ds.repeat()
    ds = ds.batch(batch_size)

    def to_float(*t):
        return (tf.cast(t[0], tf.float32),) + tuple(t[1:])

    ds = ds.map(to_float, num_parallel_calls=tf.data.AUTOTUNE)
    if augment is not None and augment != Augment.none():
        aug = augment.layers(seed=seed)

        def apply(img, *rest):
            for layer in aug:
                img = layer(img, training=True)
            if augment.degrades:
                img = degrade(img, augment, seed)
            return (tf.clip_by_value(img, 0.0, 255.0),) + rest

        ds = ds.map(apply, num_parallel_calls=tf.data.AUTOTUNE)
    ds = ds.map(lambda *t: t[0] if len(t) == 1 else t)
    return ds.prefetch(tf.data.AUTOTUNE)
