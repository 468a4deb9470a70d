"""YuNet's raw output decoded into face rows as ``cv2.FaceDetectorYN`` decodes it, for a whole batch at once.

YuNet (face_detection_yunet_2023mar) looks at an input padded to a multiple of 32 and predicts,
for every cell of three grids (strides 8, 16 and 32), a class score, an objectness, a box (the
centre as an offset in cells, the size as the log of cells) and five landmarks (offsets in cells).
A cell's face score is ``sqrt(cls * obj)``, both clipped to [0, 1]. Cells at or above the
threshold become rows ``x, y, w, h, 5 x (lx, ly), score`` in input pixels, and NMS on the boxes
truncated to whole pixels keeps the best of each overlapping group, at most ``top_k`` a picture.

The engines that run the network (ONNX Runtime in :mod:`maskwatch.vision.yunet_ort`, torch on
CUDA in :mod:`maskwatch.runtimes.torch_yunet`) pick the cells over the threshold; everything
after that is here, so every engine returns OpenCV's rows (tests/test_yunet_batch.py checks it).

>>> anchors(64, 32).shape  # 8x4 cells at stride 8, 4x2 at 16, 2x1 at 32
(42, 3)
>>> padded(100, 64)
(128, 64)
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import cv2
import numpy as np

STRIDES = (8, 16, 32)
DIVISOR = 32  # YuNet's input must be a multiple of its largest stride; OpenCV pads with zeros below and right
OUTPUTS = tuple(f"{kind}_{s}" for kind in ("cls", "obj", "bbox", "kps") for s in STRIDES)  # the graph's outputs
RAW = 14  # per cell after the scores: box (4) and landmarks (10), as the network gives them
ROW = 15  # per face: x, y, w, h, five landmarks (x, y), score: FaceDetectorYN's row


def padded(w: int, h: int) -> tuple[int, int]:
    """The input size YuNet sees for a ``w`` x ``h`` picture: each side rounded up to a multiple of 32."""
    return -(-w // DIVISOR) * DIVISOR, -(-h // DIVISOR) * DIVISOR


@functools.lru_cache(maxsize=32)
def anchors(pw: int, ph: int) -> np.ndarray:
    """Every cell of a ``pw`` x ``ph`` input as ``column, row, stride`` (float32), in the network's output order.

    The outputs list stride 8's cells row by row, then stride 16's, then stride 32's.
    """
    parts = []
    for s in STRIDES:
        rows, cols = np.divmod(np.arange((ph // s) * (pw // s)), pw // s)
        parts.append(np.stack([cols, rows, np.full_like(cols, s)], 1))
    return np.concatenate(parts).astype(np.float32)


def face_scores(cls: np.ndarray, obj: np.ndarray) -> np.ndarray:
    """A cell's face score from its class score and objectness, as OpenCV computes it."""
    return np.sqrt(np.clip(cls, 0.0, 1.0) * np.clip(obj, 0.0, 1.0))


@dataclass(frozen=True)
class Candidates:
    """The cells of a batch that scored at or above the threshold."""

    picture: np.ndarray  # (k,) int: which picture of the batch
    cell: np.ndarray  # (k,) int: which cell, an index into :func:`anchors`
    raw: np.ndarray  # (k, RAW) float32: the cell's box and landmarks as the network gives them
    score: np.ndarray  # (k,) float32

    @classmethod
    def select(cls, scores: np.ndarray, raw: np.ndarray, threshold: float) -> Candidates:
        """The cells of ``scores`` (pictures x cells) at or above ``threshold``, with their ``raw`` values."""
        picture, cell = np.nonzero(scores >= threshold)
        return cls(picture, cell, raw[picture, cell], scores[picture, cell])


def decode(c: Candidates, pw: int, ph: int) -> np.ndarray:
    """The candidates' rows (k x 15) in input pixels of a ``pw`` x ``ph`` input."""
    cell = anchors(pw, ph)[c.cell]
    col, row, stride = cell[:, :1], cell[:, 1:2], cell[:, 2:]
    raw = c.raw.astype(np.float32, copy=False)
    out = np.empty((len(raw), ROW), np.float32)
    size = np.exp(raw[:, 2:4]) * stride
    out[:, 0:2] = (np.concatenate([col, row], 1) + raw[:, 0:2]) * stride - size / 2
    out[:, 2:4] = size
    out[:, 4:14:2] = (raw[:, 4:14:2] + col) * stride
    out[:, 5:14:2] = (raw[:, 5:14:2] + row) * stride
    out[:, 14] = c.score
    return out


def faces(c: Candidates, pictures: int, pw: int, ph: int, nms: float, top_k: int) -> list[np.ndarray]:
    """Per picture, its face rows after NMS, best first: what ``FaceDetectorYN.detect`` returns for it.

    As OpenCV does, NMS runs on the boxes truncated to whole pixels, over each picture's ``top_k``
    best cells (one NMS call a picture: one call over a batch would compare every box with every
    kept box of every picture).
    """
    rows = decode(c, pw, ph)
    # Best first within each picture; a stable sort keeps the network's cell order among equal scores, as OpenCV's.
    order = np.lexsort((-rows[:, 14], c.picture))
    rows = rows[order]
    ends = np.searchsorted(c.picture[order], np.arange(pictures + 1))
    out = []
    for i in range(pictures):
        mine = rows[ends[i]:ends[i + 1]][:top_k]
        if len(mine) > 1:
            boxes = np.trunc(mine[:, :4]).astype(np.float64)
            mine = mine[np.asarray(cv2.dnn.NMSBoxes(boxes, mine[:, 14].tolist(), 0.0, nms), int).reshape(-1)]
        out.append(mine)
    return out
