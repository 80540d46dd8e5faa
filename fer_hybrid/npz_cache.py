"""Computed arrays cached in one ``.npz`` file (core: imports only :mod:`._atomic`).

``cached_arrays(path, compute)`` returns ``{name: array}`` read from ``path`` when the file reads back, else
``compute()`` written there atomically (a temporary file beside it, then a rename) and returned. A cache is a
convenience: an unreadable or truncated file is recomputed and replaced, never an error. Pickled object
arrays are never loaded. The caller puts everything the arrays depend on into ``path`` (content hashes).
"""
from __future__ import annotations

import os
import warnings
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


def write_arrays(path: str | os.PathLike, arrays: Mapping[str, np.ndarray], compressed: bool = False) -> Path:
    """Write ``{name: array}`` to the ``.npz`` at ``path`` atomically (a temporary file beside it, then a
    rename; its folder is created), compressed or not. Returns ``path``."""
    with _atomic.atomic_path(path) as tmp:
        with open(tmp, "wb") as f:  # a file object: numpy would append ".npz" to a temporary name
            (np.savez_compressed if compressed else np.savez)(f, **arrays)
    return Path(path)


def load_or_compute(path: str | os.PathLike, compute: Callable[[], Mapping[str, np.ndarray]], *,
                    refresh: bool = False, store: bool = True,
                    what: str = "cache") -> tuple[dict[str, np.ndarray], bool]:
    """(``{name: array}``, computed?) from the ``.npz`` at ``path`` if it reads back, else ``compute()`` saved
    there. ``refresh``: compute and overwrite even when the file reads; ``store=False``: neither read nor
    write. An unreadable file or a failed write is a warning naming ``what`` and the path, never an error."""
    path = Path(path)
    if store and not refresh and path.exists():
        found = read_arrays(path)
        if found is not None:
            return found, False
        warnings.warn(f"ignoring unreadable {what} {path}")
    arrays = {k: np.asarray(v) for k, v in compute().items()}
    if store:
        try:
            write_arrays(path, arrays)
        except OSError as e:
            warnings.warn(f"could not write {what} {path}: {e}")
    return arrays, True


def cached_arrays(path: str | os.PathLike,
                  compute: Callable[[], Mapping[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """``{name: array}`` from the ``.npz`` at ``path`` if it reads back, else ``compute()`` saved there."""
    return load_or_compute(path, compute)[0]
