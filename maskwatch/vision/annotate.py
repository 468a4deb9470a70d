"""Draw faces on a frame: green for with_mask, red for without_mask, with the probability."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from maskwatch.codec import Face

COLOURS = {"with_mask": (80, 200, 60), "without_mask": (40, 40, 230)}


def annotate(image: np.ndarray, faces: Sequence[Face]) -> np.ndarray:
    """A copy of ``image`` with each face boxed and labelled."""
    out = image.copy()
    thick = max(1, round(max(out.shape[:2]) / 640))
    for f in faces:
        x, y, w, h = f.box
        colour = COLOURS.get(f.label, (200, 200, 200))
        cv2.rectangle(out, (x, y), (x + w, y + h), colour, thick)
        text = f"{'mask' if f.label == 'with_mask' else 'NO MASK'} {f.score:.2f}"
        scale = 0.4 * thick
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
        ty = y - 3 if y - th - base - 3 > 0 else y + h + th + 3
        cv2.rectangle(out, (x, ty - th - base), (x + tw + 2, ty + base - 1), colour, -1)
        cv2.putText(out, text, (x + 1, ty - 1), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1, cv2.LINE_AA)
    return out
