"""Turn face crops (BGR uint8, any size) into the classifier's input tensor.

Training, evaluation and serving all call this, so the model sees the same pixels everywhere.

>>> import numpy as np
>>> batch = to_batch([np.zeros((30, 20, 3), np.uint8)], size=64, mean=(0.5,) * 3, std=(0.5,) * 3)
>>> batch.shape, batch.dtype, float(batch.min())
((1, 3, 64, 64), dtype('float32'), -1.0)
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np


def resize_square(crop: np.ndarray, size: int) -> np.ndarray:
    """Resize a crop to ``size`` x ``size``: area averaging when shrinking, bilinear when growing."""
    h, w = crop.shape[:2]
    interp = cv2.INTER_AREA if max(h, w) > size else cv2.INTER_LINEAR
    return cv2.resize(crop, (size, size), interpolation=interp)


def to_batch(
    crops: Sequence[np.ndarray],
    size: int,
    mean: Sequence[float],
    std: Sequence[float],
) -> np.ndarray:
    """Stack BGR crops into a normalised float32 NCHW RGB batch for the classifier."""
    out = np.empty((len(crops), 3, size, size), np.float32)
    scale = (1.0 / (255.0 * np.asarray(std, np.float32))).reshape(3, 1, 1)
    shift = (np.asarray(mean, np.float32) / np.asarray(std, np.float32)).reshape(3, 1, 1)
    for i, crop in enumerate(crops):
        if crop.ndim == 2:
            crop = cv2.cvtColor(crop, cv2.COLOR_GRAY2BGR)
        rgb = resize_square(crop, size)[:, :, ::-1]
        out[i] = rgb.transpose(2, 0, 1) * scale - shift
    return out
