"""Image conversion shared by detection, predictors and the runner."""
from __future__ import annotations

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
