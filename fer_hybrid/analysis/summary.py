"""Summaries of one analysed input, from its long table (:mod:`fer_hybrid.inference.table`).

- Video (:func:`video_summary`): one row per face track: ``frames`` (rows of the track), ``answered``
  (frames where the model gave probabilities), ``first_ms`` / ``last_ms``, ``share_<class>`` (fraction of
  the answered frames whose smoothed label is that class: the share of time, frames being equally
  spaced), ``mean_p_<class>`` (mean raw probability over answered frames) and ``top_label`` (the most
  frequent smoothed label; empty when never answered).
- Photo collection (:func:`photo_summary`): one row per label plus ``(no answer)``: ``faces`` and
  ``share`` of all faces. :func:`contact_sheet` draws the faces with their labels.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ..labels import STUDY_EMOTIONS

NO_ANSWER = "(no answer)"


def video_columns(classes: Sequence[str] = STUDY_EMOTIONS) -> list[str]:
    return (["track_id", "frames", "answered", "first_ms", "last_ms"] + [f"share_{c}" for c in classes]
            + [f"mean_p_{c}" for c in classes] + ["top_label"])


def video_summary(df, classes: Sequence[str] = STUDY_EMOTIONS):
    """Per-track summary of one video's long table (see the module docstring); sorted by track id."""
    import pandas as pd

    faces = df[df["track_id"].notna()]
    rows = []
    for tid, tr in faces.groupby("track_id", sort=True):
        answered = tr[tr["label"].notna()]
        n = len(answered)
        smoothed = answered["smoothed_label"].astype(object)
        counts = smoothed.value_counts()
        row = {"track_id": int(tid), "frames": len(tr), "answered": n, "first_ms": float(tr["time_ms"].min()),
               "last_ms": float(tr["time_ms"].max())}
        row.update({f"share_{c}": (float(counts.get(c, 0)) / n if n else np.nan) for c in classes})
        row.update({f"mean_p_{c}": (float(answered[f"p_{c}"].mean()) if n else np.nan) for c in classes})
        # most frequent smoothed label; ties go to the class listed first
        row["top_label"] = max(classes, key=lambda c: (counts.get(c, 0), -classes.index(c))) if n else None
        rows.append(row)
    out = pd.DataFrame(rows, columns=video_columns(classes))
    return out.astype({"track_id": "int64", "frames": "int64", "answered": "int64", "top_label": "string"})


def photo_summary(df, classes: Sequence[str] = STUDY_EMOTIONS):
    """Label counts of a photo collection's long table: columns ``label``, ``faces``, ``share`` (of all faces)."""
    import pandas as pd

    faces = df[df["x0"].notna()]
    labels = faces["label"].astype(object).where(faces["label"].notna(), NO_ANSWER)
    counts = labels.value_counts()
    total = len(faces)
    names = list(classes) + [NO_ANSWER]
    out = pd.DataFrame({"label": names, "faces": [int(counts.get(c, 0)) for c in names]})
    out["share"] = out["faces"] / total if total else np.nan
    return out.astype({"label": "string", "faces": "int64", "share": "float64"})


def counts(df) -> dict:
    """Frames, faces, tracks and frames without a face of one long table (ints)."""
    has_face = df["x0"].notna()
    return {"frames": int(df["frame"].nunique()), "faces": int(has_face.sum()),
            "tracks": int(df["track_id"].dropna().nunique()),
            "frames_without_face": int(df.loc[~has_face, "frame"].nunique())}


# ---------------------------------------------------------------------------------------------
# Contact sheet: faces of a photo collection with their labels
# ---------------------------------------------------------------------------------------------
THUMB = 112         # px, square face thumbnail
CAPTION = 34        # px of caption below each thumbnail
SHEET_COLUMNS = 8
MAX_SHEET_FACES = 120


def face_thumbnail(image: np.ndarray, box, size: int = THUMB, margin: float = 0.1) -> np.ndarray:
    """uint8 BGR (size, size, 3) crop of ``box`` [x0, y0, x1, y1] grown by ``margin`` per side (clipped)."""
    import cv2

    h, w = image.shape[:2]
    x0, y0, x1, y1 = (float(v) for v in box)
    mx, my = margin * (x1 - x0), margin * (y1 - y0)
    a, b = int(max(0, np.floor(x0 - mx))), int(max(0, np.floor(y0 - my)))
    c, d = int(min(w, np.ceil(x1 + mx) + 1)), int(min(h, np.ceil(y1 + my) + 1))
    crop = image[b:d, a:c]
    if crop.size == 0:
        return np.full((size, size, 3), 40, np.uint8)
    if crop.ndim == 2:
        crop = cv2.cvtColor(crop, cv2.COLOR_GRAY2BGR)
    return cv2.resize(np.ascontiguousarray(crop[..., :3]), (size, size), interpolation=cv2.INTER_AREA)


def caption(label: str | None, proba: float | None, name: str) -> tuple[str, str]:
    """The two caption lines of one face: ``label p`` (or ``(no answer)``) and the file name (shortened)."""
    first = NO_ANSWER if label is None else f"{label} {proba:.2f}"
    return first, name if len(name) <= 16 else name[:7] + "~" + name[-8:]


def contact_sheet(items: Sequence[tuple[np.ndarray, tuple[str, str]]], title: str = "",
                  columns: int = SHEET_COLUMNS) -> np.ndarray:
    """uint8 BGR image: a grid of (thumbnail, (line1, line2)) items with captions below; a title bar on top."""
    import cv2

    n = len(items)
    cols = max(1, min(columns, n))
    rows = max(1, -(-n // cols))
    cell_w, cell_h, top = THUMB + 8, THUMB + CAPTION + 8, 30
    sheet = np.full((top + rows * cell_h, max(cols * cell_w, 360), 3), 255, np.uint8)
    cv2.putText(sheet, title[:60], (6, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    if not n:
        cv2.putText(sheet, "no face found", (6, top + 30), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    for i, (thumb, lines) in enumerate(items):
        r, c = divmod(i, cols)
        x, y = c * cell_w + 4, top + r * cell_h + 4
        sheet[y:y + THUMB, x:x + THUMB] = thumb
        for j, text in enumerate(lines):
            cv2.putText(sheet, text, (x, y + THUMB + 13 + 14 * j), cv2.FONT_HERSHEY_SIMPLEX, 0.38,
                        (0, 0, 0) if j == 0 else (90, 90, 90), 1, cv2.LINE_AA)
    return sheet


def png_bytes(image: np.ndarray) -> bytes:
    import cv2

    ok, buf = cv2.imencode(".png", image)
    if not ok:
        raise ValueError(f"cannot encode a {image.shape} image as PNG")
    return buf.tobytes()
