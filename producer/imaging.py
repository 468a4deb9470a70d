"""Turn a captured frame into what goes on the stream: downscaled to a maximum width, JPEG-encoded."""

from __future__ import annotations

import cv2
import numpy as np


def to_jpeg(image: np.ndarray, max_width: int, quality: int) -> tuple[bytes, int, int]:
    """JPEG bytes, width and height of ``image`` shrunk (aspect kept) to at most ``max_width`` pixels wide."""
    h, w = image.shape[:2]
    if w > max_width:
        h, w = max(1, round(h * max_width / w)), max_width
        image = cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA)  # AREA: no aliasing when shrinking
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise ValueError(f"JPEG encoding failed for a {w}x{h} frame")
    return buf.tobytes(), w, h
