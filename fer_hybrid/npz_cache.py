"""Computed arrays cached in one ``.npz`` file (core: imports only :mod:`._atomic`).

``cached_arrays(path, compute)`` returns ``{name: array}`` read from ``path`` when the file reads back, else
``compute()`` written there atomically (a temporary file beside it, then a rename) and returned. A cache is a
convenience: an unreadable or truncated file is recomputed and replaced, never an error. Pickled object
arrays are never loaded. The caller puts everything the arrays depend on into ``path`` (content hashes).
"""
from __future__ import annotations

import os
import zipfile
from pathlib import Path
from typing import Callable, Mapping

import numpy as np

from . import _atomic


def read_arrays(path: str | os.PathLike) -> dict[str, np.ndarray] | None:
    """``{name: array}`` of an ``.npz`` file, or None when it is missing or unreadable."""
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile):
        return None


def cached_arrays(path: str | os.PathLike,
                  compute: Callable[[], Mapping[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """``{name: array}`` from the ``.npz`` at ``path`` if it reads back, else ``compute()`` saved there."""
    path = Path(path)
    found = read_arrays(path) if path.exists() else None
    if found is not None:
        return found
    arrays = {k: np.asarray(v) for k, v in compute().items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    with _atomic.atomic_path(path, suffix=".npz") as tmp:
        with open(tmp, "wb") as f:  # a file object: numpy would append ".npz" to a temporary name
            np.savez(f, **arrays)
    return arrays
