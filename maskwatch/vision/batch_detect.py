"""Face detection over a whole batch of frames at once: the two passes of :mod:`maskwatch.vision.detect`, batched.

:class:`BatchFaceDetector` finds what :class:`~maskwatch.vision.detect.FaceDetector` finds (the
same frame pass, zoom pass, mirror and motion windows, with the same settings), but it gives
YuNet every picture of a batch in one call per input size instead of one call per picture:

1. **Frame pass.** Every frame (or motion window, or its mirror image: a *view*) is enlarged as
   ``FaceDetector`` enlarges it and padded with zeros to a multiple of 32, as OpenCV pads it.
   Views of one padded size go through the network together, ``max_batch`` at a time; frames
   of one camera size all share one size.
2. **Zoom pass.** The unsure candidates of each view are cut out as tiles and laid out in a
   mosaic as ``FaceDetector`` lays them out (YuNet sees a tile's neighbours: alone, a tile scores
   up to 0.1 differently); the mosaics of one layout go through the network together.

The network runs on an *engine*: ONNX Runtime (:class:`~maskwatch.vision.yunet_ort.OrtYuNet`,
CPU or CUDA) or torch on CUDA (:class:`~maskwatch.runtimes.torch_yunet.TorchYuNet`), which also
cuts and enlarges the pictures where it keeps them. Decoding and NMS are shared
(:mod:`maskwatch.vision.yunet`), so every engine gives OpenCV's boxes.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from maskwatch.vision import yunet
from maskwatch.vision.detect import (
    Box,
    Detection,
    FaceDetector,
    Region,
    _mirrored,
    _moved,
    _nms,
    _to_detections,
    from_mosaic,
    mosaic_shape,
    padded_regions,
    zoom_window,
)

View = tuple[int, Region, bool, float]  # a picture of the frame pass: frame index, window, mirrored, enlargement
Tile = tuple[int, float, float, float]  # a zoom tile: view index, the corner x, y in the view's pixels, the zoom
Found = list[tuple[Box, float]]


class YuNetEngine(Protocol):
    """Runs YuNet on batches of pictures kept where the engine works (CPU memory or the GPU)."""

    name: str
    device: str

    def upload(self, images: Sequence[np.ndarray]) -> Any: ...

    def frame_inputs(self, frames: Any, views: Sequence[View], pw: int, ph: int) -> Any: ...

    def mosaic_inputs(self, frames: Any, views: Sequence[View], mosaics: Sequence[Sequence[Tile]], t: int) -> Any: ...

    def candidates(self, batch: Any, threshold: float) -> yunet.Candidates: ...


class BatchFaceDetector(FaceDetector):
    """:class:`FaceDetector`'s two passes over many frames per network call, on a :class:`YuNetEngine`."""

    def __init__(self, engine: YuNetEngine, model_path: Path, max_batch: int = 64, **settings: Any):
        super().__init__(model_path, **settings)
        self.engine, self.max_batch = engine, max_batch

    def detect(self, image: np.ndarray, regions: Sequence[Region] | None = None,
               unsure: bool = False) -> list[Detection]:
        """Faces in one frame, as :meth:`FaceDetector.detect` finds them."""
        return self.detect_batch([image], [regions], unsure)[0]

    def detect_batch(self, images: Sequence[np.ndarray], regions: Sequence[Sequence[Region] | None] | None = None,
                     unsure: bool = False) -> list[list[Detection]]:
        """Faces in each frame; ``regions[i]`` (None: the whole frame) limits the search in frame ``i``; with
        ``unsure``, each frame's unsure candidates after its faces."""
        return self.detect_frames(self.engine.upload(images), [i.shape[:2] for i in images], regions, unsure)

    def detect_frames(self, frames: Any, shapes: Sequence[tuple[int, int]],
                      regions: Sequence[Sequence[Region] | None] | None = None,
                      unsure: bool = False) -> list[list[Detection]]:
        """As :meth:`detect_batch`, for frames already where the engine works (``shapes``: each frame's h, w).

        A CUDA worker uploads (or decodes) a batch once and cuts the classifier's crops from the same copy.
        """
        regions = regions if regions is not None else [None] * len(shapes)
        views = self._views(shapes, regions)
        candidates = self._look_all(frames, views)
        found = [[(b, s) for b, s in cands if s >= self.score] for cands in candidates]
        if self.zoom_score > 0:
            zooms = [self._worth_zooming(cands, f) for cands, f in zip(candidates, found)]
            for vi, more in enumerate(self._look_closer(frames, views, zooms)):
                found[vi] += more
        per_frame: list[Found] = [[] for _ in shapes]
        per_frame_candidates: list[Found] = [[] for _ in shapes]
        for (f, (x, y, w, _), mirrored, _), faces, cands in zip(views, found, candidates):
            for into, boxes in ((per_frame[f], faces), (per_frame_candidates[f], cands if unsure else [])):
                into += _moved(_mirrored(boxes, w) if mirrored else boxes, x, y)
        out = []
        for (h, w), faces, cands in zip(shapes, per_frame, per_frame_candidates):
            kept = _nms(faces, self.nms)
            out.append(_to_detections(kept, w, h) + (self._unsure(kept, cands, w, h) if unsure else []))
        return out

    def _views(self, shapes: Sequence[tuple[int, int]], regions: Sequence[Sequence[Region] | None]) -> list[View]:
        """The pictures the frame pass looks at: each frame or its motion windows, and their mirrors with ``flip``."""
        views: list[View] = []
        for f, ((h, w), rs) in enumerate(zip(shapes, regions)):
            windows = padded_regions(rs, w, h) if rs is not None else None
            for window in windows if windows is not None else [(0, 0, w, h)]:
                for mirrored in (False, True) if self.flip else (False,):
                    views.append((f, window, mirrored, self.scale_for(window[2], window[3])))
        return views

    def _look_all(self, frames: Any, views: Sequence[View]) -> list[Found]:
        """Per view, every box YuNet gives at the candidate threshold, best first, in the view's pixels."""
        threshold = self.zoom_score if self.zoom_score > 0 else self.score
        by_size: dict[tuple[int, int], list[int]] = defaultdict(list)
        for i, (_, (_, _, w, h), _, scale) in enumerate(views):
            by_size[yunet.padded(round(w * scale), round(h * scale))].append(i)
        out: list[Found] = [[] for _ in views]
        for (pw, ph), members in by_size.items():
            for chunk in _chunks(members, self.max_batch):
                batch = self.engine.frame_inputs(frames, [views[i] for i in chunk], pw, ph)
                rows = yunet.faces(self.engine.candidates(batch, threshold), len(chunk), pw, ph, self.nms, self.top_k)
                for i, r in zip(chunk, rows):
                    scale = views[i][3]
                    out[i] = [((float(x) / scale, float(y) / scale, float(w) / scale, float(h) / scale), float(s))
                              for x, y, w, h, s in r[:, [0, 1, 2, 3, 14]].tolist()]
        return out

    def _look_closer(self, frames: Any, views: Sequence[View], zooms: Sequence[list[Box]]) -> list[Found]:
        """Per view, the faces a closer look at its unsure candidates finds, in the view's pixels.

        A view's tiles form one mosaic as in :meth:`FaceDetector._zoom_pass` (YuNet sees a tile's
        neighbours, so the layout matters); mosaics of one layout go through the network together.
        """
        t = self.tile
        by_shape: dict[tuple[int, int], list[int]] = defaultdict(list)
        for vi, boxes in enumerate(zooms):
            if boxes:
                by_shape[mosaic_shape(len(boxes))].append(vi)
        out: list[Found] = [[] for _ in views]
        for (cols, rows), members in by_shape.items():
            for chunk in _chunks(members, self.max_batch):
                mosaics = [[(vi, *zoom_window(box, self.zoom_px, t)) for box in zooms[vi]] for vi in chunk]
                batch = self.engine.mosaic_inputs(frames, views, mosaics, t)
                found = yunet.faces(self.engine.candidates(batch, self.score), len(chunk), cols * t, rows * t,
                                    self.nms, self.top_k)
                for vi, tiles, r in zip(chunk, mosaics, found):
                    where = [(x0, y0, k) for _, x0, y0, k in tiles]
                    for x, y, w, h, s in r[:, [0, 1, 2, 3, 14]].tolist():
                        face = from_mosaic((x, y, w, h), where, t, self.zoom_px)
                        if face is not None:
                            out[vi].append((face, s))
        return out


def _chunks(items: Sequence[Any], size: int) -> list[Sequence[Any]]:
    return [items[i:i + size] for i in range(0, len(items), size)]
