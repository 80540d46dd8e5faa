"""FER+ crowd labels (Barsoum et al. 2016) joined to the FER2013 JPEGs, for a second opinion on test accuracy.

Two files (``$FERPLUS_DIR``, default ``../shared/data/ferplus`` beside the repo):

- ``fer2013new.csv``: 10 annotator votes per fer2013.csv row (columns :data:`VOTE_COLUMNS`);
- ``kaggle_to_ferplus_map.csv.gz``: which fer2013.csv row each JPEG is (``jpg``, ``fer2013_row``, ``flag``).

The join is on ``fer2013_row`` (never on the FER+ ``Image name``, which is not the row number); ``unmatched``
JPEGs have no FER+ label. The majority rule is FER+'s "majority" mode as documented in MAP.md: votes of 1
are dropped as outliers, and the top emotion must hold *more than half* of the remaining votes (so a tie
is never a majority). An image is **excluded** (label -1) with one of the reasons in :data:`REASONS`:

``unmatched``      the JPEG has no fer2013.csv row (flag ``unmatched``)
``no_majority``    no emotion holds > 50 % of the votes left after dropping single votes (ties included)
``unknown``        the majority is FER+'s ``unknown``
``not_a_face``     the majority is ``NF``
``outside_study``  the majority is an emotion outside ``classes`` (neutral, disgust, contempt)
``not_in_map``     (only when scoring a split) the image key is not in the map at all

>>> labels = ferplus_majority_labels()                        # {archive path: study id or -1}
>>> y_fp, keep = ferplus_split_labels(data.test, labels)      # int (n,), bool (n,)
>>> ferplus_metrics(proba, data.test, labels)["accuracy"]

For training, :func:`ferplus_vote_shares` and :func:`soft_targets` turn the votes into soft targets.
"""
from __future__ import annotations

import csv
import gzip
import io
import os
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from .evaluate import classification_metrics, predictions_from_proba
from .labels import STUDY_EMOTIONS

VOTES_FILE = "fer2013new.csv"
MAP_FILE = "kaggle_to_ferplus_map.csv.gz"
VOTE_COLUMNS = ("neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt",
                "unknown", "NF")
# FER+ emotion name -> FER2013 / study name (FER+ has no "unknown"/"NF" counterpart)
FERPLUS_TO_FER = {"neutral": "neutral", "happiness": "happy", "surprise": "surprise", "sadness": "sad",
                  "anger": "angry", "disgust": "disgust", "fear": "fear", "contempt": "contempt"}
REASONS = ("unmatched", "no_majority", "unknown", "not_a_face", "outside_study", "not_in_map")
WHERE_TO_GET = ("FER+ labels come from github.com/microsoft/FERPlus (fer2013new.csv, MIT); the JPEG->row map "
                "kaggle_to_ferplus_map.csv.gz is in this project's shared data (../shared/data/ferplus). "
                "Pass their paths or set FERPLUS_DIR to the folder holding both.")


class FerPlusError(ValueError):
    """A FER+ file exists but does not have the expected columns or values."""


class FerPlusLabels(dict):
    """``{archive path: study id or -1}`` plus why each -1 was excluded.

    ``reasons`` {path: reason in :data:`REASONS`} for excluded paths; ``outside`` {path: FER2013-style name}
    of the majority emotion for ``outside_study`` paths; ``classes`` the class list the ids index.
    """

    def __init__(self, labels: Mapping[str, int], reasons: Mapping[str, str], outside: Mapping[str, str],
                 classes: Sequence[str]):
        super().__init__(labels)
        self.reasons = dict(reasons)
        self.outside = dict(outside)
        self.classes = tuple(classes)

    def counts(self) -> dict:
        """{"labelled": n, "excluded": {reason: n, ..., "outside_study_by_label": {name: n}}}."""
        return {"labelled": int(sum(v >= 0 for v in self.values())),
                "excluded": _excluded_counts(self.reasons.values(), self.outside.values())}


def _excluded_counts(reasons, outside_names) -> dict:
    reasons, outside_names = list(reasons), list(outside_names)
    out: dict = {r: reasons.count(r) for r in REASONS}
    out["outside_study_by_label"] = {n: outside_names.count(n) for n in sorted(set(outside_names))}
    out["total"] = len(reasons)
    return out


# --------------------------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------------------------
def ferplus_dir() -> Path:
    """``$FERPLUS_DIR`` or ``../shared/data/ferplus`` relative to the repository root."""
    env = os.environ.get("FERPLUS_DIR")
    return Path(env).expanduser() if env else Path(__file__).resolve().parents[2] / "shared" / "data" / "ferplus"


def resolve_files(votes_csv: str | os.PathLike | None = None,
                  map_csv: str | os.PathLike | None = None) -> tuple[Path, Path]:
    """(votes, map) paths from the arguments or :func:`ferplus_dir`; FileNotFoundError naming what is missing."""
    folder = ferplus_dir()
    votes = Path(votes_csv) if votes_csv is not None else folder / VOTES_FILE
    mapping = Path(map_csv) if map_csv is not None else folder / MAP_FILE
    missing = [str(p) for p in (votes, mapping) if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"FER+ file(s) not found: {', '.join(missing)}. {WHERE_TO_GET}")
    return votes, mapping


def available(votes_csv=None, map_csv=None) -> bool:
    """True when both FER+ files can be found."""
    try:
        resolve_files(votes_csv, map_csv)
    except FileNotFoundError:
        return False
    return True


def _read_csv(path: Path) -> tuple[list[str], list[dict]]:
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    reader = csv.DictReader(io.StringIO(raw.decode("utf-8-sig"), newline=""))
    rows = list(reader)
    return list(reader.fieldnames or []), rows


def read_votes(votes_csv: Path) -> np.ndarray:
    """int (n_rows, 10) vote counts in :data:`VOTE_COLUMNS` order; row i = fer2013.csv data row i."""
    fields, rows = _read_csv(Path(votes_csv))
    missing = [c for c in VOTE_COLUMNS if c not in fields]
    if missing:
        raise FerPlusError(f"{votes_csv} is not fer2013new.csv: missing column(s) {', '.join(missing)}")
    try:
        votes = np.array([[int(r[c]) for c in VOTE_COLUMNS] for r in rows], dtype=np.int64).reshape(-1, len(VOTE_COLUMNS))
    except (TypeError, ValueError) as e:
        raise FerPlusError(f"{votes_csv}: non-integer vote count ({e})") from None
    if (votes < 0).any():
        raise FerPlusError(f"{votes_csv}: negative vote count")
    return votes


# --------------------------------------------------------------------------------------------
# Majority rule
# --------------------------------------------------------------------------------------------
def _drop_single_votes(votes: np.ndarray) -> np.ndarray:
    v = np.asarray(votes, dtype=np.int64).reshape(-1, len(VOTE_COLUMNS))
    return np.where(v > 1, v, 0)


def majority_vote(votes: np.ndarray) -> np.ndarray:
    """FER+ majority per row: int (n,) index into :data:`VOTE_COLUMNS`, or -1 for no majority.

    Single votes are dropped (counts of 1 -> 0); the top count must exceed half of what remains.
    Among equal top counts the first column wins, but equal counts can never exceed half, so -1.
    """
    v = _drop_single_votes(votes)
    s = v.sum(axis=1)
    top = v.argmax(axis=1)
    m = v.max(axis=1, initial=0)
    ok = (s > 0) & (m > 0.5 * s)
    return np.where(ok, top, -1)


def _map_rows(map_path: Path, votes_path: Path, n_votes: int):
    """Yield (archive path, fer2013.csv row or None when unmatched) for every row of the JPEG->row map."""
    fields, rows = _read_csv(map_path)
    missing = {"jpg", "fer2013_row", "flag"} - set(fields)
    if missing:
        raise FerPlusError(f"{map_path} is not the FER+ map: missing column(s) {', '.join(sorted(missing))}")
    for r in rows:
        if r["flag"] == "unmatched" or not r["fer2013_row"].strip():
            yield r["jpg"], None
            continue
        try:
            i = int(r["fer2013_row"])
        except ValueError:
            i = -1
        if not 0 <= i < n_votes:
            raise FerPlusError(f"{map_path}: row for {r['jpg']} points at fer2013 row {r['fer2013_row']!r}, "
                               f"outside the {n_votes} rows of {votes_path.name}")
        yield r["jpg"], i


def _check_classes(classes: Sequence[str]) -> tuple[str, ...]:
    classes = tuple(classes)
    known = set(FERPLUS_TO_FER.values())
    bad = [c for c in classes if c not in known]
    if bad:
        raise ValueError(f"class name(s) {bad} have no FER+ counterpart; valid: {', '.join(sorted(known))}")
    return classes


def ferplus_majority_labels(votes_csv: str | os.PathLike | None = None, map_csv: str | os.PathLike | None = None,
                            classes: Sequence[str] = STUDY_EMOTIONS) -> FerPlusLabels:
    """``{archive path: id into classes, or -1}`` for every JPEG of the map (see the module doc for the rule).

    ``classes`` use FER2013 names (angry, fear, happy, sad, surprise, ...; also neutral/disgust/contempt).
    Excluded paths carry their reason in ``result.reasons``. FileNotFoundError when a file is missing,
    FerPlusError when one is malformed (e.g. a map row pointing past the votes).
    """
    votes_path, map_path = resolve_files(votes_csv, map_csv)
    classes = _check_classes(classes)
    votes = read_votes(votes_path)
    top = majority_vote(votes)
    labels, reasons, outside = {}, {}, {}
    for path, i in _map_rows(map_path, votes_path, len(votes)):
        if i is None:
            labels[path], reasons[path] = -1, "unmatched"
            continue
        col = int(top[i])
        name = VOTE_COLUMNS[col] if col >= 0 else None
        if name is None:
            labels[path], reasons[path] = -1, "no_majority"
        elif name == "unknown":
            labels[path], reasons[path] = -1, "unknown"
        elif name == "NF":
            labels[path], reasons[path] = -1, "not_a_face"
        elif FERPLUS_TO_FER[name] not in classes:
            labels[path], reasons[path] = -1, "outside_study"
            outside[path] = FERPLUS_TO_FER[name]
        else:
            labels[path] = classes.index(FERPLUS_TO_FER[name])
    return FerPlusLabels(labels, reasons, outside, classes)


# --------------------------------------------------------------------------------------------
# Vote distributions as soft training targets
# --------------------------------------------------------------------------------------------
def ferplus_vote_shares(votes_csv: str | os.PathLike | None = None, map_csv: str | os.PathLike | None = None,
                        classes: Sequence[str] = STUDY_EMOTIONS) -> dict[str, np.ndarray]:
    """``{archive path: float64 (k,) share of the votes}`` over ``classes`` (FER2013 names).

    Single votes are dropped as outliers (the rule of :func:`majority_vote` and of FER+'s own training
    modes), the rest is restricted to ``classes`` and normalised to sum to 1. Paths that are unmatched or
    keep no vote for any of ``classes`` are absent.
    """
    votes_path, map_path = resolve_files(votes_csv, map_csv)
    classes = _check_classes(classes)
    votes = read_votes(votes_path)
    fer_names = [FERPLUS_TO_FER.get(c) for c in VOTE_COLUMNS]
    cols = [fer_names.index(c) for c in classes]
    study = _drop_single_votes(votes)[:, cols].astype(np.float64)
    total = study.sum(axis=1)
    return {path: study[i] / total[i] for path, i in _map_rows(map_path, votes_path, len(votes))
            if i is not None and total[i] > 0}


def soft_targets(split, shares: Mapping[str, np.ndarray], mix: float, num_classes: int) -> tuple[np.ndarray, int]:
    """(float32 (n, num_classes) training targets, number of rows that got FER+ votes) for a data.Split.

    Row i is ``(1 - mix) * onehot(split.y[i]) + mix * shares[key]``; rows without FER+ votes keep the one-hot
    FER2013 label. With ``mix <= 0.5`` the FER2013 label stays the arg-max, so the crowd only says how
    ambiguous a face is (label-distribution learning), it never overrules the original label.
    """
    if not 0.0 <= mix <= 1.0:
        raise ValueError(f"mix must be in [0, 1], got {mix}")
    out = np.eye(num_classes, dtype=np.float64)[np.asarray(split.y, dtype=np.int64)]
    n_voted = 0
    for i, key in enumerate(np.asarray(split.keys).tolist()):
        s = shares.get(key)
        if s is not None:
            out[i] = (1.0 - mix) * out[i] + mix * s
            n_voted += 1
    return out.astype(np.float32), n_voted


# --------------------------------------------------------------------------------------------
# Scoring a FER2013 split against FER+
# --------------------------------------------------------------------------------------------
def ferplus_split_labels(split, labels: FerPlusLabels) -> tuple[np.ndarray, np.ndarray]:
    """(int64 (n,) FER+ ids with -1 where excluded, bool (n,) mask of usable rows) for a data.Split's keys."""
    keys = np.asarray(split.keys if hasattr(split, "keys") else split).tolist()
    y = np.array([labels.get(k, -1) for k in keys], dtype=np.int64)
    return y, y >= 0


def excluded_counts(split, labels: FerPlusLabels) -> dict:
    """{reason: n, "outside_study_by_label": {...}, "total": n} over a split's excluded images."""
    keys = np.asarray(split.keys if hasattr(split, "keys") else split).tolist()
    reasons = [labels.reasons.get(k, "not_in_map") for k in keys if labels.get(k, -1) < 0]
    outside = [labels.outside[k] for k in keys if k in labels.outside]
    return _excluded_counts(reasons, outside)


def ferplus_metrics(y_pred_or_proba: np.ndarray, split, labels: FerPlusLabels,
                    classes: Sequence[str] | None = None) -> dict:
    """Metrics (:func:`fer_hybrid.evaluate.classification_metrics`) against the FER+ majority label.

    ``y_pred_or_proba``: int (n,) predictions (-1 = abstained) or float (n, k) probabilities (NaN row =
    abstained), in ``split`` order. Only images with a FER+ label in the classes are scored; the result
    adds ``excluded`` (counts by reason), ``n_split`` (the split size), and ``fer2013_label_agreement``
    (share of the scored images whose FER2013 label equals the FER+ majority).
    """
    classes = tuple(classes or labels.classes)
    a = np.asarray(y_pred_or_proba)
    pred = predictions_from_proba(a) if a.ndim == 2 else a.astype(np.int64)
    if len(pred) != len(split.keys):
        raise ValueError(f"{len(pred)} predictions for a split of {len(split.keys)} images")
    y_fp, keep = ferplus_split_labels(split, labels)
    out = classification_metrics(y_fp[keep], pred[keep], classes)
    out["excluded"] = excluded_counts(split, labels)
    out["n_split"] = int(len(pred))
    y_orig = getattr(split, "y", None)
    out["fer2013_label_agreement"] = (float((np.asarray(y_orig)[keep] == y_fp[keep]).mean())
                                      if y_orig is not None and keep.any() else None)
    return out


def summary(metrics: dict) -> dict:
    """The compact form stored in reports as ``metrics.test_ferplus``."""
    keys = ("accuracy", "macro_f1", "n", "n_split", "n_abstained", "excluded", "fer2013_label_agreement",
            "per_class", "confusion_matrix")
    return {k: metrics[k] for k in keys if k in metrics}
