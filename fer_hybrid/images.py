"""Image conversion shared by detection, predictors and the runner."""
from __future__ import annotations

import math

import numpy as np


def to_gray(image: np.ndarray, what: str = "image") -> np.ndarray:
    """uint8 (h, w) from a gray (h, w) / (h, w, 1), BGR (h, w, 3) or BGRA (h, w, 4) image.

    16-bit images (0..65535) are scaled to 0..255 like ``cv2.imread(..., IMREAD_GRAYSCALE)``; other
    dtypes are clipped to 0..255. ValueError (naming ``what``) for an empty image, another shape, or
    non-finite pixel values.
    """
    import cv2

    image = np.asarray(image)
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[..., 0]
    if image.size == 0 or not (image.ndim == 2 or (image.ndim == 3 and image.shape[2] in (3, 4))):
        raise ValueError(f"{what} has shape {image.shape}; expected (h, w) gray or (h, w, 3) BGR")
    if image.dtype != np.uint8:
        if not np.all(np.isfinite(image)):
            raise ValueError(f"{what} has non-finite pixel values")
        image = (cv2.convertScaleAbs(image, alpha=1 / 256) if image.dtype == np.uint16
                 else np.clip(image, 0, 255).astype(np.uint8))
    if image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2GRAY if image.shape[2] == 4 else cv2.COLOR_BGR2GRAY)
    return np.ascontiguousarray(image)


def check_margin(margin: float) -> float:
    """``margin`` as a float; ValueError unless it is finite and in [0, 2]."""
    margin = float(margin)
    if not math.isfinite(margin) or not 0.0 <= margin <= 2.0:
        raise ValueError(f"crop margin must be a number in [0, 2], got {margin}")
    return margin


def crop_boxes(gray: np.ndarray, boxes: np.ndarray, margin: float = 0.0) -> tuple[list[np.ndarray], np.ndarray]:
    """Crops of ``boxes`` (k, 4) ``[x0, y0, x1, y1]`` (inclusive frame pixels) grown by ``margin`` x box size
    per side and clipped to the image -> (list of k crops, int (k, 2) crop origins (x, y))."""
    margin = check_margin(margin)
    h, w = gray.shape[:2]
    crops, origins = [], []
    for x0, y0, x1, y1 in np.asarray(boxes, dtype=np.float64).reshape(-1, 4):
        mx, my = margin * (x1 - x0), margin * (y1 - y0)
        a0, b0 = int(max(0, x0 - mx)), int(max(0, y0 - my))
        a1, b1 = int(min(w, x1 + mx + 1)), int(min(h, y1 + my + 1))
        crops.append(gray[b0:b1, a0:a1])
        origins.append((a0, b0))
    return crops, np.array(origins, dtype=np.int64).reshape(-1, 2)
