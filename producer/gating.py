"""Motion gating of one camera's frames: idle, sent with its motion regions, or sent whole as a keyframe.

A capture loop makes one :class:`CameraGating` each time it opens its source, and asks it about
every frame due (at the camera's target fps) before encoding it: frames without motion are not
sent, frames with motion go with their regions, and a keyframe goes whole first and then every
``keyframe_s`` seconds (docs/architecture.md, "Keyed by camera"; the detector and the gate are
:mod:`maskwatch.vision.motion`'s). A new one per open: after a reconnect the worker sees the camera
whole at once, and the background is learnt again from a stream that may have changed.

The detector sees the frame as captured; the regions are scaled here to the frame that is sent,
downscaled to the camera's ``max_width``.

>>> scale_regions([(100, 50, 41, 20)], (1280, 720), (640, 360))
((50, 25, 21, 10),)
>>> scale_regions([(0, 0, 1280, 720)], (1280, 720), (100, 56))
((0, 0, 100, 56),)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from maskwatch.vision.motion import GateDecision, MotionDetector, MotionGate, Region

# The detector's background remembers this many seconds of frames (its ``history`` is in frames).
HISTORY_S = 2.0


@dataclass(frozen=True)
class Gated:
    """The gate's word on one frame; ``regions`` (full-frame pixels) only when ``decision`` is SEND."""

    decision: GateDecision
    moving: bool
    regions: tuple[Region, ...] = ()


class CameraGating:
    """One camera's motion detector and gate, fed its frames due in capture order."""

    def __init__(self, fps: float, keyframe_s: float):
        self.detector = MotionDetector(history=max(2, round(HISTORY_S * fps)))
        self.gate = MotionGate(keyframe_s)

    def decide(self, ts_ms: int, image: np.ndarray) -> Gated:
        """What to do with ``image`` (BGR, as captured) taken at ``ts_ms`` (epoch ms)."""
        motion = self.detector.update(image)
        decision = self.gate.decide(ts_ms, motion)
        regions = tuple(motion.regions) if decision is GateDecision.SEND else ()
        return Gated(decision, motion.moving, regions)


def scale_regions(regions: Sequence[Region], size: tuple[int, int], to: tuple[int, int]) -> tuple[Region, ...]:
    """``regions`` of a ``size`` (w, h) frame in the pixels of the same frame resized to ``to``.

    Rounded outwards and clipped, so a box inside a region stays inside it at the new size.
    """
    sx, sy = to[0] / size[0], to[1] / size[1]
    out = []
    for x, y, w, h in regions:
        x0, y0 = max(0, math.floor(x * sx)), max(0, math.floor(y * sy))
        x1, y1 = min(to[0], math.ceil((x + w) * sx)), min(to[1], math.ceil((y + h) * sy))
        out.append((x0, y0, x1 - x0, y1 - y0))
    return tuple(out)
