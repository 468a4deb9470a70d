"""A frame's violation: the face that makes it one and the snapshot that shows it.

The live worker (at most one event per camera per throttle window) and the offline analysis (at
most one per throttle window of video) pick a violation and draw its evidence the same way; only
their throttles differ, and those stay with them.

>>> from maskwatch.codec import Face
>>> faces = [Face((0, 0, 9, 9), "without_mask", 0.7), Face((20, 0, 9, 9), "without_mask", 0.9),
...          Face((40, 0, 9, 9), "with_mask", 0.99)]
>>> v = find_violation(faces)
>>> v.worst.score, v.unmasked
(0.9, 2)
>>> find_violation(faces[2:]) is None
True
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from maskwatch.codec import Face
from maskwatch.vision.annotate import annotate
from maskwatch.vision.jpeg import encode_jpeg

SNAPSHOT_MAX_WIDTH = 960  # enough to recognise a person, small enough to keep many in Redis
SNAPSHOT_QUALITY = 80


@dataclass(frozen=True)
class Violation:
    worst: Face  # the face most surely without a mask: the event's box and score
    unmasked: int  # faces without a mask in the frame


def find_violation(faces: Sequence[Face]) -> Violation | None:
    """The frame's violation, or None when every face wears a mask."""
    bad = [f for f in faces if f.label == "without_mask"]
    if not bad:
        return None
    return Violation(worst=max(bad, key=lambda f: f.score), unmasked=len(bad))


def snapshot(image: np.ndarray, faces: Sequence[Face]) -> bytes:
    """The frame with its faces drawn, as JPEG at most :data:`SNAPSHOT_MAX_WIDTH` wide."""
    return encode_jpeg(annotate(image, faces), SNAPSHOT_QUALITY, max_width=SNAPSHOT_MAX_WIDTH)
