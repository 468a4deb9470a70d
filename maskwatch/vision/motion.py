"""Per-camera motion detection and gating: which frames are worth analysing, and where.

CCTV is mostly still. The producer runs a :class:`MotionDetector` on every captured frame (before
JPEG encoding) and a :class:`MotionGate` per camera: a frame without motion is not sent (counted
``idle``), a frame with motion is sent with its motion regions (:func:`encode_regions`), and a
keyframe every ``keyframe_s`` seconds is sent whole so that people who stand still are still seen
(docs/architecture.md, "Keyed by camera").

How a frame is read:

1. **Small and grey.** The frame in grey, halved while it stays at least ``width`` pixels wide,
   and blurred: averaging blocks of pixels cancels most sensor noise and JPEG block flicker.
2. **Brightness matched.** The frame is scaled by the median ratio of the background's pixels to
   its own, so a light switched evenly or a camera's exposure step moves nothing; a median, so
   that a person covering less than half the frame does not tilt it. The background itself is a
   running average of the frames, so slow drift is learnt, not compared.
3. **Foreground.** ``mog2`` (the default): OpenCV's Gaussian-mixture background subtractor;
   ``knn``: OpenCV's K-nearest-neighbours one; ``average`` (Frigate's): the absolute difference
   from the running average, over ``threshold``.
4. **Regions.** The mask is dilated; blobs under ``min_area`` small-frame pixels are noise; the
   rest become boxes in full-frame pixels, padded and merged.

When ``scene_change`` of the frame changes at once (a light switched unevenly, the camera moved),
the background is rebuilt from that frame: it counts as moving everywhere, the next ones are quiet.

Why ``mog2``, measured by ``python -m bench.motion`` (walking-people scenes at 5 fps: 1,425
frames of quiet, busy, standing and poor-camera scenes, plus empty ones under switched light; all
three methods flag every frame with a walking person's face in view, and none flags an empty
frame of the poor camera):

- **False motion.** ``average`` flags 2.6-3.8% of empty frames: people who stood or crowded are
  learnt into its one background and leave ghosts when they go. ``mog2`` keeps the old
  background as a second mode and flags none (``knn`` 0-0.3%).
- **What the worker still does.** The gate sends 85% of a busy scene's frames with ``mog2`` against
  94% with ``average``, 16% of a scene where one person stands 25 s against 28%, and ``mog2``'s
  regions cover 18% of a flagged 640x360 frame (12% at 1280x720) against 37% (18%) for
  ``average`` and 23% (14%) for ``knn``.
- **Regions.** Faces of walking people wholly inside a region: ``mog2`` 99.6% at 640x360 and
  97.7% at 1280x720 (``average`` 99.8% / 99.6%); half the misses are cut by 5 px or less at the
  top of the head, so the worker's padding of a region (context for YuNet) must take that in.
- **Light.** The light halved or an exposure step of 20% moves nothing for ``mog2`` and
  ``average`` (the brightness match; without it one frame is flagged) and 4 frames for ``knn``;
  dimmed unevenly (50% to 80% of the light across the frame), 1 frame for ``mog2``, 4 for ``knn``,
  10 for ``average``.
- **Cost.** About twice ``average``'s CPU (1.6 against 0.8 ms a 640x360 frame on one core), a
  sixtieth of the worker's 50 CPU-ms or so for each frame the gate keeps back.

``width`` 160 saves a third to a half of the CPU and loses regions (97.4% / 92.5% of faces inside).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import cv2
import numpy as np

Region = tuple[int, int, int, int]  # x, y, w, h in full-frame pixels

METHODS = ("mog2", "knn", "average")
WARM_UP = 5  # KNN calls everything foreground until it holds a few samples of each pixel (4 frames)
MAX_REGIONS = 16  # more than this are sent as their bounding box: the worker would scan most of the frame anyway


@dataclass(frozen=True)
class Motion:
    """What moved in one frame: whether anything did, where (full-frame boxes), and what share of the frame."""

    moving: bool
    regions: list[Region]
    fraction: float


class MotionDetector:
    """Motion in one camera's frames, fed in capture order; one detector per camera (it holds that camera's background).

    ``width``: the small frame is the frame halved while it stays at least this wide. ``threshold``:
    grey levels a steady pixel must change to count (``mog2`` and ``knn`` scale their own tests from
    it). ``min_area``: the smallest moving blob, in small-frame pixels, after dilation. ``history``:
    frames the background remembers (10 is 2 s at 5 fps; scale it with the camera's fps). ``pad``:
    share of a blob's size added on each side (plus one small-frame pixel). ``scene_change``: the
    share of the frame that, changed at once, rebuilds the background. ``gain``: match each frame's
    brightness to the background's (off only to measure what it buys).
    """

    def __init__(self, width: int = 240, threshold: float = 20.0, min_area: int = 12, history: int = 10,
                 blur: float = 1.0, pad: float = 0.15, scene_change: float = 0.4, method: str = "mog2",
                 gain: bool = True):
        if method not in METHODS:
            raise ValueError(f"motion method {method!r} is unknown; use one of {', '.join(METHODS)}")
        if (width < 16 or threshold <= 0 or min_area < 1 or history < 2 or not 0 < scene_change <= 1 or pad < 0
                or blur < 0):
            raise ValueError(f"motion settings out of range: width={width} (>= 16), threshold={threshold} (> 0), "
                             f"min_area={min_area} (>= 1), history={history} (>= 2 frames), "
                             f"scene_change={scene_change} (0-1], pad={pad} (>= 0), blur={blur} (>= 0)")
        self.width, self.threshold, self.min_area, self.history = width, threshold, min_area, history
        self.blur, self.pad, self.scene_change, self.method, self.gain = blur, pad, scene_change, method, gain
        self._kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))
        self._shape: tuple[int, ...] | None = None
        self._background: np.ndarray | None = None  # float32 running average of the small grey frames
        self._subtractor: cv2.BackgroundSubtractor | None = None

    def reset(self) -> None:
        """Forget the background: the next frame starts a new one (and reports no motion)."""
        self._shape, self._background, self._subtractor = None, None, None

    def update(self, frame_bgr: np.ndarray) -> Motion:
        """Feed the next frame of this camera; returns what moved in it relative to the frames before."""
        if frame_bgr.ndim != 3 or frame_bgr.shape[2] != 3 or frame_bgr.size == 0:
            raise ValueError(f"motion detection wants a BGR frame (height, width, 3), got shape {frame_bgr.shape}")
        if frame_bgr.shape != self._shape:  # first frame, or the camera's resolution changed
            self.reset()
            self._shape = frame_bgr.shape
        grey = self._small_grey(frame_bgr)
        if self._background is None:
            self._start(grey)
            return Motion(False, [], 0.0)
        # Compared at the background's brightness, learnt at its own: the background follows slow drift by
        # itself and the gain takes out only what changed faster (exposure steps, a light switched evenly).
        raw = self._foreground(grey * _gain(grey, self._background) if self.gain else grey, self._background)
        cv2.accumulateWeighted(grey, self._background, 1.0 / self.history)
        h, w = frame_bgr.shape[:2]
        changed = np.count_nonzero(raw) / raw.size
        if changed >= self.scene_change:
            self._start(grey)
            return Motion(True, [(0, 0, w, h)], round(changed, 4))
        return self._regions(cv2.dilate(raw, self._kernel), w, h)

    def _small_grey(self, frame_bgr: np.ndarray) -> np.ndarray:
        grey = cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2GRAY)
        # Halvings, not one resize: INTER_AREA halves on a fast path (a 1280 px frame to 320 px costs a
        # third of a direct resize), and averaging 2x2 blocks cancels most sensor noise and JPEG block flicker.
        while grey.shape[1] // 2 >= self.width:
            grey = cv2.resize(grey, (grey.shape[1] // 2, grey.shape[0] // 2), interpolation=cv2.INTER_AREA)
        if self.blur > 0:
            grey = cv2.GaussianBlur(grey, (0, 0), self.blur)
        return grey.astype(np.float32)

    def _start(self, grey: np.ndarray) -> None:
        self._background = grey.copy()
        if self.method == "average":
            return
        if self.method == "mog2":
            # varThreshold is a squared distance in standard deviations; MOG2 never lets a pixel's variance
            # fall under 4 (sigma 2), so threshold**2 / 4 makes a steady pixel need ``threshold`` grey levels.
            self._subtractor = cv2.createBackgroundSubtractorMOG2(self.history, self.threshold ** 2 / 4,
                                                                  detectShadows=False)
        else:
            # dist2Threshold is a squared grey-level distance: the same cut as ``threshold`` for ``average``.
            self._subtractor = cv2.createBackgroundSubtractorKNN(self.history, self.threshold ** 2, detectShadows=False)
        for _ in range(WARM_UP):
            self._subtractor.apply(grey.astype(np.uint8))

    def _foreground(self, grey: np.ndarray, background: np.ndarray) -> np.ndarray:
        """The raw foreground mask (uint8, 0 or 255) of the brightness-matched small frame."""
        if self._subtractor is None:
            diff = cv2.absdiff(grey, background)
            return cv2.threshold(diff, self.threshold, 255, cv2.THRESH_BINARY)[1].astype(np.uint8)
        return self._subtractor.apply(np.clip(grey, 0, 255).astype(np.uint8))

    def _regions(self, mask: np.ndarray, frame_w: int, frame_h: int) -> Motion:
        count, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
        keep = [i for i in range(1, count) if stats[i, cv2.CC_STAT_AREA] >= self.min_area]
        if not keep:
            return Motion(False, [], 0.0)
        sx, sy = frame_w / mask.shape[1], frame_h / mask.shape[0]
        boxes = []
        for i in keep:
            x, y, w, h = (int(v) for v in stats[i, :4])
            px, py = self.pad * w + 1, self.pad * h + 1
            boxes.append(_clip(((x - px) * sx, (y - py) * sy, (w + 2 * px) * sx, (h + 2 * py) * sy), frame_w, frame_h))
        fraction = float(sum(stats[i, cv2.CC_STAT_AREA] for i in keep)) / mask.size
        return Motion(True, merge_regions(boxes), round(fraction, 4))


def _gain(grey: np.ndarray, background: np.ndarray) -> float:
    """The factor that brings the frame's brightness to the background's: the median pixel ratio on a sparse grid."""
    ref, cur = background[::4, ::4], grey[::4, ::4]
    usable = cur > 8.0  # near-black pixels carry no ratio
    if np.count_nonzero(usable) < usable.size // 4:
        return 1.0
    return float(np.median(ref[usable] / cur[usable]))


def _clip(box: tuple[float, float, float, float], frame_w: int, frame_h: int) -> Region:
    x0, y0 = max(0, int(box[0])), max(0, int(box[1]))
    x1, y1 = min(frame_w, int(np.ceil(box[0] + box[2]))), min(frame_h, int(np.ceil(box[1] + box[3])))
    return x0, y0, x1 - x0, y1 - y0


def merge_regions(boxes: list[Region], limit: int = MAX_REGIONS) -> list[Region]:
    """Boxes that overlap or touch become their bounding box, until none do; more than ``limit`` become one box.

    >>> merge_regions([(0, 0, 10, 10), (5, 5, 10, 10), (40, 40, 5, 5)])
    [(0, 0, 15, 15), (40, 40, 5, 5)]
    """
    out = list(boxes)
    i = 0
    while i < len(out):
        j = next((j for j in range(i + 1, len(out)) if _touch(out[i], out[j])), None)
        if j is None:
            i += 1
            continue
        out[i] = _union([out[i], out.pop(j)])
        i = 0  # the grown box may now touch one already passed
    return [_union(out)] if len(out) > limit else out


def _touch(a: Region, b: Region) -> bool:
    return a[0] <= b[0] + b[2] and b[0] <= a[0] + a[2] and a[1] <= b[1] + b[3] and b[1] <= a[1] + a[3]


def _union(boxes: list[Region]) -> Region:
    x0, y0 = min(b[0] for b in boxes), min(b[1] for b in boxes)
    x1, y1 = max(b[0] + b[2] for b in boxes), max(b[1] + b[3] for b in boxes)
    return x0, y0, x1 - x0, y1 - y0


class GateDecision(StrEnum):
    """What the producer does with a frame: send it with its regions, send it whole, or count it idle."""

    SEND = "send"
    KEYFRAME = "keyframe"
    IDLE = "idle"


class MotionGate:
    """One camera's gate: a keyframe first and then every ``keyframe_s`` seconds, motion frames between, the rest idle.

    A keyframe is due by capture time whether or not motion frames were sent meanwhile, because a
    motion frame is analysed only in its regions and a person standing still outside them is seen
    only on keyframes. A capture time that goes backwards (a file camera looping) makes a keyframe.

    >>> gate, still = MotionGate(keyframe_s=2.0), Motion(False, [], 0.0)
    >>> [gate.decide(ts, still).value for ts in (0, 1000, 2000, 2500)]
    ['keyframe', 'idle', 'keyframe', 'idle']
    >>> gate.decide(3000, Motion(True, [(0, 0, 8, 8)], 0.01)).value
    'send'
    """

    def __init__(self, keyframe_s: float = 2.0):
        if keyframe_s <= 0:
            raise ValueError(f"keyframe_s must be positive seconds, got {keyframe_s}")
        self.keyframe_ms = keyframe_s * 1000.0
        self._last_key_ms: int | None = None

    def decide(self, ts_ms: int, motion: Motion) -> GateDecision:
        """The decision for the frame captured at ``ts_ms`` (epoch ms) with ``motion``."""
        last = self._last_key_ms
        if last is None or ts_ms < last or ts_ms - last >= self.keyframe_ms:
            self._last_key_ms = ts_ms
            return GateDecision.KEYFRAME
        return GateDecision.SEND if motion.moving else GateDecision.IDLE


def encode_regions(regions: list[Region]) -> str:
    """Regions as the stream entry carries them: ``"x,y,w,h;x,y,w,h"`` (empty for none).

    >>> encode_regions([(0, 0, 64, 48), (100, 20, 30, 40)])
    '0,0,64,48;100,20,30,40'
    """
    return ";".join(",".join(str(int(v)) for v in r) for r in regions)


def decode_regions(text: str, frame_w: int | None = None, frame_h: int | None = None) -> list[Region]:
    """The regions of :func:`encode_regions`; given the frame's size, each must lie inside it.

    Raises ValueError naming the malformed region and what is wrong with it.

    >>> decode_regions('0,0,64,48;100,20,30,40', 640, 360)
    [(0, 0, 64, 48), (100, 20, 30, 40)]
    >>> decode_regions('0,0,64', 640, 360)
    Traceback (most recent call last):
    ValueError: regions: region 1 '0,0,64' has 3 fields, want x,y,w,h
    """
    if not text:
        return []
    parts = text.split(";")
    if len(parts) > MAX_REGIONS:
        raise ValueError(f"regions: {len(parts)} regions, at most {MAX_REGIONS} are allowed")
    out: list[Region] = []
    for n, part in enumerate(parts, 1):
        fields = part.split(",")
        if len(fields) != 4:
            raise ValueError(f"regions: region {n} {part!r} has {len(fields)} fields, want x,y,w,h")
        if not all(f.isascii() and f.isdigit() for f in fields):
            raise ValueError(f"regions: region {n} {part!r} is not four non-negative integers x,y,w,h")
        x, y, w, h = (int(f) for f in fields)
        if w < 1 or h < 1:
            raise ValueError(f"regions: region {n} {part!r} is empty: w and h must be at least 1")
        if (frame_w is not None and x + w > frame_w) or (frame_h is not None and y + h > frame_h):
            raise ValueError(f"regions: region {n} {part!r} reaches past the {frame_w}x{frame_h} frame")
        out.append((x, y, w, h))
    return out
