"""Face detection with YuNet (``cv2.FaceDetectorYN``), made to find small, far-away faces.

CCTV faces are often 15-40 px, at the edge of what YuNet sees at native resolution, and a mask
hides the nose and mouth it relies on: most small masked faces score under 0.2, where most bare
ones score over 0.6. Enlarging the whole frame 3x finds many more of them but costs 9x the pixels. So
detection runs in two stages:

1. **Frame pass.** The frame, enlarged by up to ``upscale`` (never past ``max_side`` pixels on
   the long side), through YuNet with a very low threshold (``zoom_score``): every face and some
   clutter come back as candidates. Those scoring ``score`` or more are faces. A frame longer
   than ``WORK_SIDE`` is shrunk to it instead, so an 8K frame costs what a 1080p one does.
2. **Zoom pass.** Each remaining candidate small enough to gain from a closer look and not
   on the head of a face already found (at most ``max_zooms``, best first) is cut out with some
   context and enlarged so the face is ``zoom_px`` pixels; all these tiles go through YuNet
   as one mosaic image, and a face found at a tile's centre scoring ``score`` or more is kept,
   with the box that the closer look gives.

The zoom pass costs a few small tiles instead of a larger frame. ``zoom_score=0`` turns it off.
``flip`` runs both passes on the mirrored frame as well (about twice the time, more masked faces).
Boxes are in frame pixels. bench/quality.py measures what each setting buys (docs/quality.md).

Candidates that neither pass confirms but that score ``unsure_score`` or more, away from every face
found, come back too when asked (``unsure=True``), marked ``unsure``: YuNet scores a masked face
low in many frames of a walk and high in a few, so a tracker may let such a box continue a track
that a sure detection began, and never start one (ByteTrack's second association;
:mod:`maskwatch.vision.tracking`).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from maskwatch.exceptions import ModelFileError, SettingsError
from maskwatch.vision.motion import Region

ZOOM_CONTEXT = 2.0  # a zoom tile spans this many face sides, so YuNet sees the head's outline (2.5 found no more)
MOSAIC_COLUMNS = 8
MOSAIC_FILL = 127  # the grey of a mosaic's empty cells
HEAD = 0.4  # a found face's head: its box grown by this share of its size on each side
REGION_PAD = 0.25  # a motion region is searched with this share of its size around it as context...
REGION_MIN_PAD = 32  # ...and at least this many pixels
REGION_MAX_SHARE = 0.6  # windows covering more of the frame than this: search the whole frame
# The frame pass never looks at more than this on the long side: a larger frame (8K, or a window of
# one) is shrunk to it, so its cost is bounded; the zoom pass still cuts its tiles at full resolution.
WORK_SIDE = 1920


@dataclass(frozen=True)
class Detection:
    """A face box in frame pixels ``[x, y, w, h]`` and the detector's confidence."""

    box: tuple[int, int, int, int]
    confidence: float
    unsure: bool = False  # a candidate under the face threshold: it may only continue a track


Box = tuple[float, float, float, float]


class FaceDetector:
    """Thread-safe YuNet wrapper: ``cv2.FaceDetectorYN`` objects per thread (they hold per-size state)."""

    def __init__(self, model_path: Path, score: float = 0.5, upscale: float = 2.0, max_side: int = 960,
                 nms: float = 0.3, top_k: int = 500, zoom_score: float = 0.02, zoom_px: int = 80,
                 max_zooms: int = 32, flip: bool = False, unsure_score: float = 0.1):
        if not Path(model_path).is_file():
            raise ModelFileError(f"YuNet model {model_path} not found; run `maskwatch models fetch` "
                                 "or set MASKWATCH_MODEL_DIR")
        if not 0 <= zoom_score <= 1 or not 0 < score <= 1 or not 0 <= unsure_score <= 1:
            raise SettingsError(f"detector thresholds must lie in (0, 1]: MASKWATCH_DET_SCORE={score}, "
                                f"MASKWATCH_DET_ZOOM_SCORE={zoom_score} (0 turns the zoom pass off), "
                                f"MASKWATCH_TRACK_UNSURE_SCORE={unsure_score} (0 turns unsure candidates off)")
        self.model_path = str(model_path)
        self.score, self.upscale, self.max_side, self.nms, self.top_k = score, upscale, max_side, nms, top_k
        self.zoom_score, self.zoom_px, self.max_zooms = min(zoom_score, score), zoom_px, max_zooms
        self.flip = flip
        # Candidates exist only down to the frame pass's threshold, so unsure ones cannot go lower.
        self.unsure_score = max(unsure_score, self.zoom_score) if unsure_score > 0 else 0.0
        # Tiles are a multiple of YuNet's largest stride (32) so the mosaic's grid lines up with its cells.
        self.tile = 32 * math.ceil(ZOOM_CONTEXT * zoom_px / 32)
        self._local = threading.local()

    def _net(self, role: str, w: int, h: int, score: float) -> cv2.FaceDetectorYN:
        """This thread's YuNet for ``role`` ("frame" or "zoom"), set to a ``w`` x ``h`` input."""
        nets = self._local.__dict__.setdefault("nets", {})
        if role not in nets:
            nets[role] = [_create_yunet(self.model_path, (w, h), score, self.nms, self.top_k), (w, h)]
        net, size = nets[role]
        if size != (w, h):
            net.setInputSize((w, h))
            nets[role][1] = (w, h)
        return net

    def scale_for(self, w: int, h: int) -> float:
        """The enlargement applied to a ``w`` x ``h`` frame before the frame pass."""
        return max(1.0, min(self.upscale, self.max_side / max(w, h)))

    def work_scale(self, w: int, h: int) -> float:
        """:meth:`scale_for`, but a frame longer than :data:`WORK_SIDE` is shrunk to it (a factor under 1).

        >>> d = FaceDetector.__new__(FaceDetector)  # the arithmetic only: no model loaded
        >>> d.upscale, d.max_side = 2.0, 960
        >>> d.work_scale(640, 360), d.work_scale(1280, 720), d.work_scale(7680, 4320)
        (1.5, 1.0, 0.25)
        """
        return min(self.scale_for(w, h), WORK_SIDE / max(w, h))

    def detect(self, image: np.ndarray, regions: Sequence[Region] | None = None,
               unsure: bool = False) -> list[Detection]:
        """Faces in the frame; given motion ``regions`` (frame pixels), faces within them only; with
        ``unsure``, the unsure candidates after them (``Detection.unsure``).

        Each region is padded with context (:func:`padded_regions`) and searched as a frame of its
        own, so a small region is enlarged as far as ``upscale`` allows while the whole frame
        would be held back by ``max_side``. Regions covering most of the frame are not worth
        cutting: the whole frame is searched instead.
        """
        h, w = image.shape[:2]
        windows = padded_regions(regions, w, h) if regions is not None else None
        found: list[tuple[Box, float]] = []
        candidates: list[tuple[Box, float]] = []
        for x, y, rw, rh in windows if windows is not None else [(0, 0, w, h)]:
            window_found, window_candidates = self._look(image[y:y + rh, x:x + rw])
            found += _moved(window_found, x, y)
            candidates += _moved(window_candidates, x, y)
        found = _nms(found, self.nms)
        return _to_detections(found, w, h) + (self._unsure(found, candidates, w, h) if unsure else [])

    def _unsure(self, found: list[tuple[Box, float]], candidates: list[tuple[Box, float]], w: int,
                h: int) -> list[Detection]:
        """The candidates under the face threshold but at least ``unsure_score``, away from every face found."""
        if self.unsure_score <= 0:
            return []
        heads = [_grown(f, HEAD) for f, _ in found]
        doubtful = [(b, s) for b, s in candidates
                    if self.unsure_score <= s < self.score and not any(_centre_inside(b, head) for head in heads)]
        return [Detection(d.box, d.confidence, unsure=True) for d in _to_detections(_nms(doubtful, self.nms), w, h)]

    def _look(self, image: np.ndarray) -> tuple[list[tuple[Box, float]], list[tuple[Box, float]]]:
        """Faces found, and the frame pass's candidates (in ``image`` pixels)."""
        h, w = image.shape[:2]
        found, candidates = self._two_passes(image)
        if self.flip:  # the mirror image too: YuNet is not symmetric, and a second look finds more masked faces
            mirrored_found, mirrored_candidates = self._two_passes(cv2.flip(image, 1))
            found += _mirrored(mirrored_found, w)
            candidates += _mirrored(mirrored_candidates, w)
        return found, candidates

    def _two_passes(self, image: np.ndarray) -> tuple[list[tuple[Box, float]], list[tuple[Box, float]]]:
        candidates = self._frame_pass(image)
        found = [(b, s) for b, s in candidates if s >= self.score]
        if self.zoom_score > 0:
            found += self._zoom_pass(image, self._worth_zooming(candidates, found))
        return found, candidates

    def _worth_zooming(self, candidates: list[tuple[Box, float]], found: list[tuple[Box, float]]) -> list[Box]:
        """The unsure candidates a closer look can help, best first: small ones, not on a head already found.

        Candidates over ``zoom_px / 1.5`` px are skipped: the zoom would hardly enlarge them, and
        such big, unsure boxes are mostly clutter. So are candidates centred on the head around a
        face already found (hair, chin, a hand): another face cannot sit there, and enlarged 5x
        such a patch can pass for one.
        """
        out: list[Box] = []
        for box, s in candidates:
            if s >= self.score or max(box[2], box[3]) * 1.5 > self.zoom_px:
                continue
            if any(_centre_inside(box, _grown(f, HEAD)) for f, _ in found):
                continue
            out.append(box)
            if len(out) == self.max_zooms:
                break
        return out

    def _frame_pass(self, image: np.ndarray) -> list[tuple[Box, float]]:
        """Every box YuNet gives on the (enlarged) frame at the candidate threshold, best first, in frame pixels."""
        h, w = image.shape[:2]
        scale = self.work_scale(w, h)
        if scale != 1.0:
            image = cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))),
                               interpolation=cv2.INTER_LINEAR if scale > 1.0 else cv2.INTER_AREA)
        ih, iw = image.shape[:2]
        threshold = self.zoom_score if self.zoom_score > 0 else self.score
        _, rows = self._net("frame", iw, ih, threshold).detect(image)
        out: list[tuple[Box, float]] = []
        for r in rows if rows is not None else ():
            x, y, bw, bh = (float(v) / scale for v in r[:4])
            out.append(((x, y, bw, bh), float(r[-1])))
        return sorted(out, key=lambda bs: -bs[1])

    def _zoom_pass(self, image: np.ndarray, boxes: list[Box]) -> list[tuple[Box, float]]:
        """Look again at each candidate box, enlarged so the face is ``zoom_px``; faces found, in frame pixels."""
        t = self.tile
        tiles: list[np.ndarray] = []
        where: list[tuple[float, float, float]] = []  # per tile: frame x, y of its corner and its zoom
        for box in boxes:
            where.append(zoom_window(box, self.zoom_px, t))
            tiles.append(cut_tile(image, where[-1], t))
        if not tiles:
            return []
        picture = mosaic(tiles, t)
        _, found = self._net("zoom", picture.shape[1], picture.shape[0], self.score).detect(picture)
        out: list[tuple[Box, float]] = []
        for row in found if found is not None else ():
            face = from_mosaic((float(row[0]), float(row[1]), float(row[2]), float(row[3])), where, t, self.zoom_px)
            if face is not None:
                out.append((face, float(row[-1])))
        return out


_QUIET = threading.Lock()  # OpenCV's log level is process-wide: one creation at a time lowers and restores it


def _create_yunet(model: str, size: tuple[int, int], score: float, nms: float, top_k: int) -> cv2.FaceDetectorYN:
    """``cv2.FaceDetectorYN.create`` without OpenCV 5's warning.

    ``create`` always sets the network's target, and OpenCV 5's new graph engine answers with a
    "Targets are not supported" warning, once per detector, so once per worker thread and per
    `predict`: noise that no argument avoids (the CPU target is what runs). Only warnings are held
    back, and only during the call.
    """
    logging = getattr(getattr(cv2, "utils", None), "logging", None)
    if logging is None:
        return cv2.FaceDetectorYN.create(model, "", size, score, nms, top_k)
    with _QUIET:
        level = logging.getLogLevel()
        logging.setLogLevel(min(level, logging.LOG_LEVEL_ERROR))
        try:
            return cv2.FaceDetectorYN.create(model, "", size, score, nms, top_k)
        finally:
            logging.setLogLevel(level)


def zoom_window(box: Box, zoom_px: int, t: int) -> tuple[float, float, float]:
    """The zoom tile of ``box``: its corner ``x0, y0`` in the picture's pixels and its enlargement ``k``.

    The tile is ``t`` x ``t`` pixels, centred on the box, enlarged so the face is ``zoom_px``.
    """
    x, y, bw, bh = box
    k = zoom_px / max(bw, bh, 1.0)
    return x + bw / 2 - t / (2 * k), y + bh / 2 - t / (2 * k), k


def cut_tile(image: np.ndarray, where: tuple[float, float, float], t: int) -> np.ndarray:
    """The ``t`` x ``t`` zoom tile of ``image`` with corner and zoom ``where``; edge pixels repeat past the border."""
    x0, y0, k = where
    warp = np.array([[k, 0, -x0 * k], [0, k, -y0 * k]], np.float32)
    return cv2.warpAffine(image, warp, (t, t), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def mosaic_shape(tiles: int) -> tuple[int, int]:
    """Columns and rows of a mosaic of ``tiles`` zoom tiles: at most :data:`MOSAIC_COLUMNS` wide, fewest empty cells."""
    cols = math.ceil(tiles / math.ceil(tiles / MOSAIC_COLUMNS))
    return cols, math.ceil(tiles / cols)


def mosaic(tiles: Sequence[np.ndarray], t: int) -> np.ndarray:
    """The ``t`` x ``t`` tiles laid out row by row in one picture (:func:`mosaic_shape`), empty cells grey."""
    cols, rows = mosaic_shape(len(tiles))
    out = np.full((t * rows, t * cols, 3), MOSAIC_FILL, np.uint8)
    for i, tile in enumerate(tiles):
        r, c = divmod(i, cols)
        out[r * t:(r + 1) * t, c * t:(c + 1) * t] = tile
    return out


def from_mosaic(box: Box, where: Sequence[tuple[float, float, float]], t: int, zoom_px: int) -> Box | None:
    """A face found at ``box`` in the mosaic of zoom tiles ``where`` (corner and zoom each), in the picture's pixels.

    None unless it sits at its tile's centre: only the face the tile was cut for counts, not a
    neighbour near its edge.
    """
    cols = mosaic_shape(len(where))[0]
    mx, my, mw, mh = box
    c, r = int((mx + mw / 2) // t), int((my + mh / 2) // t)
    i = r * cols + c
    lx, ly = mx - c * t, my - r * t
    if i >= len(where) or max(abs(lx + mw / 2 - t / 2), abs(ly + mh / 2 - t / 2)) > zoom_px / 2:
        return None
    x0, y0, k = where[i]
    return x0 + lx / k, y0 + ly / k, mw / k, mh / k


def padded_regions(regions: Sequence[Region], w: int, h: int) -> list[Region] | None:
    """Motion regions grown by context, clipped to a ``w`` x ``h`` frame; None when the whole frame is better searched.

    A moving body's face lies at its edge and YuNet needs the head's outline, hence the padding
    (:data:`REGION_PAD` of the region's size, at least :data:`REGION_MIN_PAD` px). Overlapping
    windows are merged so no face is searched twice. When the windows cover more than
    :data:`REGION_MAX_SHARE` of the frame, None: one pass over the frame costs less.

    >>> padded_regions([(300, 100, 40, 80)], 640, 360)
    [(268, 68, 104, 144)]
    >>> padded_regions([(0, 0, 600, 300)], 640, 360) is None
    True
    """
    windows: list[list[int]] = []
    for x, y, rw, rh in regions:
        pad = max(REGION_MIN_PAD, round(REGION_PAD * max(rw, rh)))
        x0, y0, x1, y1 = max(0, x - pad), max(0, y - pad), min(w, x + rw + pad), min(h, y + rh + pad)
        if x1 > x0 and y1 > y0:
            windows.append([x0, y0, x1, y1])
    merged = True
    while merged:  # few windows: the quadratic merge costs nothing
        merged = False
        for i in range(len(windows)):
            for j in range(i + 1, len(windows)):
                a, b = windows[i], windows[j]
                if a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]:
                    windows[i] = [min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3])]
                    del windows[j]
                    merged = True
                    break
            if merged:
                break
    if sum((x1 - x0) * (y1 - y0) for x0, y0, x1, y1 in windows) > REGION_MAX_SHARE * w * h:
        return None
    return [(x0, y0, x1 - x0, y1 - y0) for x0, y0, x1, y1 in windows]


def _moved(found: list[tuple[Box, float]], dx: float, dy: float) -> list[tuple[Box, float]]:
    """Boxes of a window, in the pixels of the picture the window was cut from at (``dx``, ``dy``)."""
    return [((x + dx, y + dy, w, h), s) for (x, y, w, h), s in found]


def _mirrored(found: list[tuple[Box, float]], width: float) -> list[tuple[Box, float]]:
    """Boxes found on the mirror image of a picture ``width`` wide, in the picture's own pixels."""
    return [((width - x - w, y, w, h), s) for (x, y, w, h), s in found]


def _centre_inside(box: Box, outer: Box) -> bool:
    cx, cy = box[0] + box[2] / 2, box[1] + box[3] / 2
    return outer[0] <= cx <= outer[0] + outer[2] and outer[1] <= cy <= outer[1] + outer[3]


def _grown(box: Box, share: float) -> Box:
    x, y, w, h = box
    return x - share * w, y - share * h, w * (1 + 2 * share), h * (1 + 2 * share)


def _nms(found: list[tuple[Box, float]], threshold: float) -> list[tuple[Box, float]]:
    """The two passes can find one face twice: keep the best-scoring box of each overlapping group."""
    if len(found) < 2:
        return found
    keep = cv2.dnn.NMSBoxes([list(b) for b, _ in found], [s for _, s in found], 0.0, threshold)
    return [found[i] for i in np.asarray(keep, int).reshape(-1)]


def _to_detections(found: list[tuple[Box, float]], w: int, h: int) -> list[Detection]:
    """Boxes clipped to the frame and rounded; slivers under 2 px dropped."""
    out: list[Detection] = []
    for (x, y, bw, bh), score in found:
        x0, y0 = max(0.0, x), max(0.0, y)
        x1, y1 = min(float(w), x + bw), min(float(h), y + bh)
        if x1 - x0 < 2 or y1 - y0 < 2:
            continue
        out.append(Detection((round(x0), round(y0), round(x1 - x0), round(y1 - y0)), score))
    return out
