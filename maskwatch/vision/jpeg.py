"""JPEG in and out, and shrinking to a width: what goes on the stream, into snapshots and the live view.

Every image MaskWatch sends or stores is shrunk here (aspect kept, ``INTER_AREA`` so nothing aliases)
and encoded here, so the producer's frames and the worker's and the analysis job's snapshots agree.

>>> import numpy as np
>>> shrink(np.zeros((720, 1280, 3), np.uint8), 640).shape
(360, 640, 3)
>>> decode_jpeg(encode_jpeg(np.zeros((720, 1280, 3), np.uint8), 80, max_width=960)).shape
(540, 960, 3)
"""

from __future__ import annotations

import cv2
import numpy as np

from maskwatch.exceptions import DecodeError


def decode_jpeg(data: bytes) -> np.ndarray:
    """Decode JPEG (or PNG) bytes to a BGR image; raises DecodeError for anything else."""
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) if data else None
    if image is None or image.size == 0:
        raise DecodeError(f"{len(data)} bytes are not a decodable image")
    return image


def shrink(image: np.ndarray, max_width: int) -> np.ndarray:
    """``image`` at most ``max_width`` pixels wide, aspect kept; the same array when it is narrow enough."""
    h, w = image.shape[:2]
    if w <= max_width:
        return image
    return cv2.resize(image, (max_width, max(1, round(h * max_width / w))), interpolation=cv2.INTER_AREA)


def encode_jpeg(image: np.ndarray, quality: int = 85, max_width: int | None = None) -> bytes:
    """JPEG bytes of ``image``, first shrunk to ``max_width`` when one is given."""
    if max_width is not None:
        image = shrink(image, max_width)
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        h, w = image.shape[:2]
        raise DecodeError(f"JPEG encoding failed for a {w}x{h} image")
    return buf.tobytes()
