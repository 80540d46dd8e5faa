"""Score a labelled image folder through the full Analyzer (detection -> crop -> model).

Labels come from the first-level class sub-folder (``PATH/<label>/.../image.jpg``) or from a regular
expression searched in the file name (the group named ``label``, else group 1, else the whole match). A
mapping (:func:`parse_map`; by default each of the model's classes maps to itself, case-insensitively) turns
them into the model's classes; images whose label is unmapped are skipped and counted by label.

Each image is analysed as a photo; the largest detected face is the image's answer (no face = a miss, counted
as an error in ``accuracy`` and left out of ``accuracy_found``).

>>> items, skipped = collect("faces/", "subfolders", default_map())
>>> result = evaluate(Analyzer("vggbn"), items)          # FolderResult: table (DataFrame) + metrics
"""
from __future__ import annotations

import collections
import dataclasses
import os
import re
from pathlib import Path
from typing import Sequence

import numpy as np

from ..labels import STUDY_EMOTIONS
from ..video import IMAGE_EXTS

SUBFOLDERS = "subfolders"


class FolderError(ValueError):
    """The folder, the label pattern or the map cannot be used (the message says why)."""


def default_map(classes: Sequence[str] = STUDY_EMOTIONS) -> dict[str, str]:
    return {c.lower(): c for c in classes}


def parse_map(text: str | None, classes: Sequence[str] = STUDY_EMOTIONS) -> dict[str, str]:
    """``"anger=angry,fearful=fear"`` -> the default map updated with those pairs (keys lower-cased).
    FolderError for a malformed pair or a target that is not one of ``classes``."""
    mapping = default_map(classes)
    for pair in filter(None, (p.strip() for p in (text or "").split(","))):
        key, sep, value = pair.partition("=")
        key, value = key.strip().lower(), value.strip().lower()
        if not sep or not key or not value:
            raise FolderError(f"bad --map entry {pair!r}; expected LABEL=CLASS pairs separated by commas")
        if value not in default_map(classes):
            raise FolderError(f"--map target {value!r} is not a class; valid: {', '.join(classes)}")
        mapping[key] = default_map(classes)[value]
    return mapping


def compile_pattern(pattern: str) -> re.Pattern:
    try:
        return re.compile(pattern)
    except re.error as e:
        raise FolderError(f"bad --labels pattern {pattern!r}: {e}") from None


def _label_from_name(name: str, pattern: re.Pattern) -> str | None:
    m = pattern.search(name)
    if m is None:
        return None
    if "label" in pattern.groupindex:
        return m.group("label")
    return m.group(1) if pattern.groups else m.group(0)


def collect(root: str | os.PathLike, labels: str | re.Pattern = SUBFOLDERS,
            mapping: dict[str, str] | None = None) -> tuple[list[tuple[Path, str, str]], dict[str, int]]:
    """([(image path, raw label, class)], {reason or raw label: images skipped}) for every image under ``root``.

    FolderError if ``root`` is not a folder or holds no image at all.
    """
    root = Path(root)
    if not root.is_dir():
        raise FolderError(f"{root}: no such folder" if not root.exists() else f"{root}: not a folder")
    mapping = default_map() if mapping is None else mapping
    pattern = None if labels == SUBFOLDERS else (labels if isinstance(labels, re.Pattern) else compile_pattern(labels))
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTS)
    if not files:
        raise FolderError(f"no images ({', '.join(IMAGE_EXTS)}) under {root}")
    items, skipped = [], collections.Counter()
    for p in files:
        rel = p.relative_to(root)
        if pattern is None:
            raw = rel.parts[0] if len(rel.parts) > 1 else None
            why = "(not in a class sub-folder)"
        else:
            raw = _label_from_name(p.name, pattern)
            why = "(file name does not match the pattern)"
        if raw is None:
            skipped[why] += 1
        elif raw.lower() not in mapping:
            skipped[raw] += 1
        else:
            items.append((p, raw, mapping[raw.lower()]))
    return items, dict(sorted(skipped.items()))


@dataclasses.dataclass
class FolderResult:
    """``table``: pandas DataFrame, one row per image (file, label, class, faces, found, predicted, probabilities,
    box); ``metrics``: :func:`fer_hybrid.evaluate.classification_metrics` over all images (misses = errors) plus
    ``found``, ``found_share``, ``accuracy_found``, ``unreadable``."""

    table: object
    metrics: dict


def evaluate(analyzer, items: Sequence[tuple[Path, str, str]], root: str | os.PathLike | None = None,
             progress: bool = False) -> FolderResult:
    """Analyse each image of ``items`` (from :func:`collect`) with ``analyzer`` (a :class:`fer_hybrid.Analyzer`)."""
    import pandas as pd
    from tqdm import tqdm

    from ..evaluate import ABSTAIN, classification_metrics
    from ..video import SourceError

    classes = tuple(analyzer.classes)
    rows = []
    for path, raw, cls in tqdm(items, disable=not progress, unit="image", desc="images"):
        row = {"file": Path(path).relative_to(root).as_posix() if root else str(path), "label": raw, "class": cls,
               "faces": 0, "found": False, "predicted": None, "readable": True}
        try:
            faces = analyzer.analyze(path)
        except SourceError:
            row["readable"] = False
            faces = []
        row["faces"] = len(faces)
        if faces:
            face = max(faces, key=lambda f: (f.box[2] - f.box[0]) * (f.box[3] - f.box[1]))
            row.update(found=True, predicted=face.label, box=" ".join(str(int(v)) for v in face.box))
            for c, v in zip(classes, face.proba):
                row[f"p_{c}"] = float(v)
        rows.append(row)
    table = pd.DataFrame(rows, columns=["file", "label", "class", "readable", "faces", "found", "predicted", "box",
                                        *(f"p_{c}" for c in classes)])
    readable = table[table["readable"]]
    y = np.array([classes.index(c) for c in readable["class"]], np.int64)
    pred = np.array([classes.index(p) if isinstance(p, str) else ABSTAIN for p in readable["predicted"]], np.int64)
    metrics = classification_metrics(y, pred, classes)
    found = readable["found"].to_numpy(bool)
    metrics.update(found=int(found.sum()), found_share=float(found.mean()) if len(found) else float("nan"),
                   accuracy_found=float((pred[found] == y[found]).mean()) if found.any() else float("nan"),
                   unreadable=int((~table["readable"]).sum()))
    return FolderResult(table, metrics)
