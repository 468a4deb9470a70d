"""The vision pipeline: frames in, labelled faces out.

Detect faces in every frame, cut square crops, classify the crops of *all* frames in one forward
pass, and hand each frame its faces. The worker, `maskwatch predict`, offline analysis and the
end-to-end evaluation all call :meth:`Pipeline.analyze`.

>>> # pipe = Pipeline.from_settings(Settings.from_env())
>>> # faces_per_frame = pipe.analyze([frame1, frame2])
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from maskwatch.artifact import ModelArtifact, ModelMeta, default_model_path
from maskwatch.codec import Face
from maskwatch.runtimes import Runtime, load_runtime
from maskwatch.runtimes.detectors import detector_kind, load_detector
from maskwatch.settings import Settings
from maskwatch.vision.crop import square_crop
from maskwatch.vision.detect import Detection, FaceDetector, Region
from maskwatch.vision.preprocess import to_batch

if TYPE_CHECKING:
    from maskwatch.cameras import CameraConfig

log = logging.getLogger(__name__)

Roi = tuple[float, float, float, float]


IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp"})  # image files MaskWatch reads


@dataclass(frozen=True)
class FrameSpec:
    """Per-frame options: the camera's region of interest and minimum face size."""

    roi: Roi | None = None
    min_face_px: int | None = None

    @classmethod
    def for_camera(cls, cam: CameraConfig | None) -> FrameSpec:
        """The options of ``cam``'s frames; the defaults for a camera that is not registered."""
        return cls(roi=cam.roi, min_face_px=cam.min_face_px) if cam else cls()


def keep(det: Detection, shape: tuple[int, ...], spec: FrameSpec, min_face_px: int) -> bool:
    """Whether a detection passes the camera's minimum size and region of interest."""
    x, y, w, h = det.box
    if max(w, h) < (spec.min_face_px or min_face_px):
        return False
    if spec.roi is None:
        return True
    H, W = shape[:2]
    rx, ry, rw, rh = spec.roi
    cx, cy = (x + w / 2) / W, (y + h / 2) / H
    return rx <= cx <= rx + rw and ry <= cy <= ry + rh


class Pipeline:
    """YuNet + the mask classifier, with the crop geometry and thresholds of the settings."""

    def __init__(self, detector: FaceDetector, runtime: Runtime, meta: ModelMeta, margin: float = 0.0,
                 min_face_px: int = 12, threshold: float = 0.5):
        self.detector, self.runtime, self.meta = detector, runtime, meta
        self.margin, self.min_face_px, self.threshold = margin, min_face_px, threshold
        self.without = meta.index("without_mask")

    @classmethod
    def from_settings(cls, s: Settings, model: Path | None = None) -> Pipeline:
        artifact = ModelArtifact.load(model or s.model or default_model_path())
        runtime = load_runtime(artifact, s.runtime, s.device, s.threads)
        detector = load_detector(s, runtime.device)  # a classifier on CUDA: detection on the GPU too
        log.info("pipeline: classifier %s (%s px) on %s/%s, YuNet on %s, upscale<=%.1f, zoom pass %s",
                 artifact.sha256[:12], artifact.meta.input_size, runtime.name, runtime.device,
                 detector_kind(s, runtime.device), s.det_upscale,
                 f"from score {s.det_zoom_score} to {s.det_zoom_px} px" if s.det_zoom_score > 0 else "off")
        return cls(detector, runtime, artifact.meta, s.crop_margin, s.min_face_px, s.mask_threshold)

    def detect(self, image: np.ndarray, spec: FrameSpec = FrameSpec(), regions: Sequence[Region] | None = None,
               unsure: bool = False) -> list[Detection]:
        """Faces that pass the camera's filters; with motion ``regions``, searched there only; with ``unsure``,
        the unsure candidates too (for a tracker: :class:`~maskwatch.vision.detect.Detection`)."""
        return [d for d in self.detector.detect(image, regions, unsure) if keep(d, image.shape, spec, self.min_face_px)]

    def crop(self, image: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
        """The classifier's view of the face at ``box``."""
        return square_crop(image, box, self.margin)

    def p_without(self, crops: Sequence[np.ndarray]) -> np.ndarray:
        """P(without_mask) for each crop, in one forward pass."""
        if not crops:
            return np.zeros(0, np.float32)
        batch = to_batch(crops, self.meta.input_size, self.meta.mean, self.meta.std)
        return self.runtime.predict_proba(batch)[:, self.without]

    def label(self, box: tuple[int, int, int, int], p_without: float) -> Face:
        if p_without > self.threshold:
            return Face(box=box, label="without_mask", score=float(p_without))
        return Face(box=box, label="with_mask", score=float(1.0 - p_without))

    def analyze(self, images: Sequence[np.ndarray], specs: Sequence[FrameSpec] | None = None,
                executor: Executor | None = None, timings: dict[str, float] | None = None) -> list[list[Face]]:
        """Faces of every image; detection may run on ``executor``, classification is one batch.

        ``timings``, when given, receives ``detect_s``, ``infer_s`` and ``crops``.
        """
        specs = specs or [FrameSpec()] * len(images)
        mapper = executor.map if executor is not None else map
        t0 = time.perf_counter()
        detections = list(mapper(self.detect, images, specs))
        crops = [self.crop(img, d.box) for img, dets in zip(images, detections) for d in dets]
        t1 = time.perf_counter()
        probs = iter(self.p_without(crops).tolist())
        if timings is not None:
            timings.update(detect_s=t1 - t0, infer_s=time.perf_counter() - t1, crops=len(crops))
        return [[self.label(d.box, next(probs)) for d in dets] for dets in detections]
