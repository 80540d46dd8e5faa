"""Face box -> model input: the crop around a detector box.

Boxes are ``[x0, y0, x1, y1]`` frame pixels (inclusive corners, as dlib gives them). The crop grows
each box by ``margin`` x its width/height on every side, clipped to the frame
(:func:`fer_hybrid.images.crop_boxes`, shared with the hybrid's frame API).
"""
from __future__ import annotations

from ..images import check_margin, crop_boxes

DEFAULT_MARGIN = 0.1
crop_faces = crop_boxes  # (gray, boxes (k, 4), margin) -> (crops, int (k, 2) origins)

__all__ = ["DEFAULT_MARGIN", "check_margin", "crop_faces"]
