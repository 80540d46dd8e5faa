"""The API input contract: face crops -> uint8 gray model input (core: imports only :mod:`.images`).

Every ``predict_proba(faces)`` reads ``faces`` through :func:`to_gray_faces`, with these rules:

Shapes
    - a list or tuple: each element is one face, gray (h, w) / (h, w, 1), BGR (h, w, 3) or BGRA (h, w, 4);
    - a 2-D array (h, w): ONE gray face (one row out);
    - a 3-D array whose last axis is 1, 3 or 4: ONE face, gray with a channel axis or BGR(A), whatever its
      size (a whole frame is one face: crop the faces first, or use :class:`fer_hybrid.Analyzer`);
    - any other 3-D array (n, h, w): a batch of n gray faces (the FER2013 layout, e.g. ``data.test.x``);
    - a 4-D array (n, h, w, c) with c in (1, 3, 4): a batch of n faces;
    - anything else: ``ValueError``.

Pixel values (each face)
    - uint8: 0..255 as is; uint16: scaled to 8 bit (``/ 256``, like OpenCV's gray reading of 16-bit files);
    - float: must be finite and in 0..255, rounded to the nearest integer. A float face whose values all lie
      in [0, 1] is refused: it is almost surely a 0..1 image, and reading it as 0..255 would classify a
      black square. Pass ``(x * 255).round().astype(np.uint8)`` instead;
    - any other dtype (bool, signed integers, complex, object): ``ValueError`` naming the dtypes expected.

An empty crop (a zero-size axis) is a ``ValueError`` naming the face's index. Every error names the face
(``face i``) and what was expected.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from .images import to_gray

EXPECTED_SHAPES = ("a list of faces, one face (h, w) / (h, w, 1|3|4), or a batch (n, h, w) / (n, h, w, 1|3|4)")
EXPECTED_DTYPES = "uint8 0..255 (also uint16, or float 0..255)"


def face_list(faces) -> Sequence[np.ndarray]:
    """The faces of ``faces`` (see the module rules) as a sequence of per-face arrays (a list, or a batch
    array whose first axis indexes faces). ValueError for another shape."""
    if isinstance(faces, (list, tuple)):
        return faces
    arr = np.asarray(faces)
    if arr.dtype == object:
        return list(arr)
    if arr.ndim == 2 or (arr.ndim == 3 and arr.shape[-1] in (1, 3, 4)):
        return arr[None]
    if arr.ndim == 3 or (arr.ndim == 4 and arr.shape[-1] in (1, 3, 4)):
        return arr
    raise ValueError(f"faces have shape {arr.shape}; expected {EXPECTED_SHAPES}")


def _as_uint8(face, i: int) -> np.ndarray:
    """One face's pixels as uint8 (or uint16, which :func:`.images.to_gray` scales); ValueError naming face i."""
    f = np.asarray(face)
    if f.size == 0 or f.ndim not in (2, 3) or (f.ndim == 3 and f.shape[2] not in (1, 3, 4)):
        what = "an empty crop" if f.size == 0 else "not a face"
        raise ValueError(f"face {i} has shape {f.shape} ({what}); expected (h, w), (h, w, 1), (h, w, 3) BGR or "
                         "(h, w, 4) BGRA with h, w >= 1")
    if f.dtype in (np.uint8, np.uint16):
        return f
    if np.issubdtype(f.dtype, np.floating):
        if not np.isfinite(f).all():
            raise ValueError(f"face {i} has non-finite pixel values; expected {EXPECTED_DTYPES}")
        lo, hi = float(f.min()), float(f.max())
        if lo < 0 or hi > 255:
            raise ValueError(f"face {i} has float pixels in [{lo:g}, {hi:g}]; expected {EXPECTED_DTYPES}")
        if hi <= 1.0:
            raise ValueError(f"face {i} has float pixels in [0, 1]; pass uint8 0..255, e.g. "
                             "(x * 255).round().astype(np.uint8)")
        return np.rint(f).astype(np.uint8)
    raise ValueError(f"face {i} has dtype {f.dtype}; expected {EXPECTED_DTYPES}")


def to_gray_faces(faces, size: int | tuple[int, int] = 48) -> np.ndarray:
    """uint8 (n, h, w) gray faces at ``size`` (int or (h, w); INTER_AREA resize) from ``faces`` (module rules).

    A uint8 (n, h, w) batch already at ``size`` is returned as is (no copy)."""
    import cv2

    hw = (size, size) if isinstance(size, int) else tuple(int(s) for s in size)
    if (isinstance(faces, np.ndarray) and faces.dtype == np.uint8 and faces.ndim == 3
            and faces.shape[1:] == hw and faces.shape[-1] not in (1, 3, 4)):
        return faces
    items = face_list(faces)
    out = np.empty((len(items), *hw), dtype=np.uint8)
    for i, f in enumerate(items):
        g = to_gray(_as_uint8(f, i), what=f"face {i}")
        out[i] = g if g.shape == hw else cv2.resize(g, hw[::-1], interpolation=cv2.INTER_AREA)
    return out


def face_sizes(faces) -> np.ndarray:
    """float64 (n, 2) (w, h) size of each face of ``faces`` (module rules)."""
    items = face_list(faces)
    return np.array([[np.shape(f)[1], np.shape(f)[0]] for f in items], dtype=np.float64).reshape(-1, 2)
