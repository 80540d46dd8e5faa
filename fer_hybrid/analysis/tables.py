"""Result tables on disk: CSV or Parquet, written atomically, read back with the same dtypes.

A table is any pandas DataFrame; the long per-face table (:mod:`fer_hybrid.inference.table`) reads back
with its nullable dtypes (``track_id`` Int64, ``detected`` boolean, strings), so a CSV round trip gives
an equal frame.
"""
from __future__ import annotations

import io
import os
from pathlib import Path

from .. import _atomic

FORMATS = ("csv", "parquet")


def check_format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise ValueError(f"unknown table format {fmt!r}; valid: {', '.join(FORMATS)}")
    return fmt


def table_bytes(df, fmt: str = "csv") -> bytes:
    """The bytes of ``df`` as CSV (UTF-8, no index, empty cells for missing values) or Parquet (pyarrow)."""
    if check_format(fmt) == "csv":
        return df.to_csv(index=False, lineterminator="\n").encode("utf-8")
    buf = io.BytesIO()
    df.to_parquet(buf, index=False, engine="pyarrow")
    return buf.getvalue()


def write_table(df, path: str | os.PathLike, fmt: str | None = None) -> Path:
    """Write ``df`` to ``path`` atomically; the format is ``fmt`` or the file's suffix (.csv / .parquet)."""
    path = Path(path)
    fmt = fmt or path.suffix.lstrip(".").lower()
    return _atomic.write_bytes(path, table_bytes(df, fmt))


def long_table_dtypes(columns) -> dict:
    """The dtypes of the long per-face table (:func:`fer_hybrid.inference.table.to_dataframe`) for ``columns``."""
    ints = {"track_id", "x0", "y0", "x1", "y1"}
    strings = {"source", "file", "label", "smoothed_label", "model"}
    out = {}
    for c in columns:
        if c in ints:
            out[c] = "Int64"
        elif c in strings:
            out[c] = "string"
        elif c == "detected":
            out[c] = "boolean"
        elif c == "frame":
            out[c] = "int64"
        elif c == "time_ms" or c == "score" or c[:2] in ("p_", "s_"):
            out[c] = "float64"
    return out


def read_table(path: str | os.PathLike):
    """A table written by :func:`write_table` (CSV or Parquet by suffix); long-table columns get their dtypes."""
    import pandas as pd

    path = Path(path)
    if path.suffix.lower() == ".parquet":
        df = pd.read_parquet(path, engine="pyarrow")
    else:
        df = pd.read_csv(path, keep_default_na=False, na_values=[""])
    return df.astype(long_table_dtypes(df.columns))
