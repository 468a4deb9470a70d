"""Square face crops with a margin, as the classifier was trained on them.

A face box is grown by ``margin`` of its size on every side and made square around its centre;
where that square leaves the frame, the frame's edge pixels are repeated so the face keeps its
place and proportions.

>>> import numpy as np
>>> square_box((10, 20, 30, 40), margin=0.0)
(5, 20, 40, 40)
>>> square_crop(np.zeros((50, 50, 3), np.uint8), (40, 40, 20, 20), margin=0.0).shape
(20, 20, 3)
"""

from __future__ import annotations

import cv2
import numpy as np


def square_box(box: tuple[int, int, int, int], margin: float) -> tuple[int, int, int, int]:
    x, y, w, h = box
    side = max(w, h) * (1.0 + 2.0 * margin)
    cx, cy = x + w / 2.0, y + h / 2.0
    s = max(2, round(side))
    return round(cx - s / 2.0), round(cy - s / 2.0), s, s


def square_crop(image: np.ndarray, box: tuple[int, int, int, int], margin: float) -> np.ndarray:
    """The square around ``box`` (grown by ``margin``), padded by edge replication where it leaves the image."""
    H, W = image.shape[:2]
    x, y, s, _ = square_box(box, margin)
    x0, y0, x1, y1 = max(0, x), max(0, y), min(W, x + s), min(H, y + s)
    crop = image[y0:y1, x0:x1]
    pads = (y0 - y, (y + s) - y1, x0 - x, (x + s) - x1)
    if any(pads):
        crop = cv2.copyMakeBorder(crop, *pads, cv2.BORDER_REPLICATE)
    return crop
