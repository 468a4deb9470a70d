"""A batch of frames to labelled faces with every pixel on the GPU: the CUDA worker's path.

:meth:`GpuBatch.analyze` does what :meth:`Pipeline.analyze <maskwatch.vision.pipeline.Pipeline.analyze>`
does, for a pipeline whose detector runs YuNet in torch and whose classifier is the torch runtime
on CUDA: the frames go to the GPU once (or are decoded there from JPEG), YuNet's frame and zoom
passes run batched on that copy, the face crops are cut and resized from it, and the classifier
takes them all in one fp16 forward pass. Only YuNet's candidate cells and the probabilities
come back to the host. The camera filters (minimum size, region of interest) and the labels are
the pipeline's own.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
import torch

from maskwatch.codec import Face
from maskwatch.exceptions import SettingsError
from maskwatch.runtimes.torch import TorchRuntime
from maskwatch.runtimes.torch_images import Frames, crop_inputs, decode_jpegs
from maskwatch.runtimes.torch_yunet import TorchYuNet
from maskwatch.vision.batch_detect import BatchFaceDetector
from maskwatch.vision.detect import Region
from maskwatch.vision.pipeline import FrameSpec, Pipeline, keep


class GpuBatch:
    """Detection and classification of whole batches on the pipeline's GPU."""

    def __init__(self, pipeline: Pipeline):
        detector, runtime = pipeline.detector, pipeline.runtime
        if not (isinstance(detector, BatchFaceDetector) and isinstance(detector.engine, TorchYuNet)
                and isinstance(runtime, TorchRuntime)):
            raise SettingsError("the GPU batch path needs YuNet and the classifier in torch: "
                                "--device cuda with MASKWATCH_DETECTOR=torch (or auto) and --runtime torch (or auto)")
        self.pipeline, self.detector, self.engine, self.runtime = pipeline, detector, detector.engine, runtime

    def analyze(self, images: Sequence[np.ndarray], specs: Sequence[FrameSpec] | None = None,
                regions: Sequence[Sequence[Region] | None] | None = None,
                timings: dict[str, float] | None = None) -> list[list[Face]]:
        """Faces of every frame (BGR uint8 arrays); ``regions[i]`` limits the search in frame ``i``."""
        return self.analyze_frames(self.engine.upload(images), specs, regions, timings)

    def analyze_jpegs(self, jpegs: Sequence[bytes], specs: Sequence[FrameSpec] | None = None,
                      regions: Sequence[Sequence[Region] | None] | None = None,
                      timings: dict[str, float] | None = None) -> list[list[Face]]:
        """As :meth:`analyze`, for JPEG frames decoded on the GPU."""
        return self.analyze_frames(decode_jpegs(jpegs, self.engine.device), specs, regions, timings)

    @torch.inference_mode()
    def analyze_frames(self, frames: Frames, specs: Sequence[FrameSpec] | None = None,
                       regions: Sequence[Sequence[Region] | None] | None = None,
                       timings: dict[str, float] | None = None) -> list[list[Face]]:
        """As :meth:`analyze`, for frames already on the GPU. ``timings`` gets ``detect_s``, ``infer_s``, ``crops``."""
        p = self.pipeline
        specs = specs or [FrameSpec()] * len(frames.shapes)
        t0 = time.perf_counter()
        found = self.detector.detect_frames(frames, frames.shapes, regions)
        detections = [[d for d in dets if keep(d, shape, spec, p.min_face_px)]
                      for dets, shape, spec in zip(found, frames.shapes, specs)]
        t1 = time.perf_counter()
        picks = [(f, d.box) for f, dets in enumerate(detections) for d in dets]
        probs = iter(self.p_without(frames, picks).tolist())
        if timings is not None:
            timings.update(detect_s=t1 - t0, infer_s=time.perf_counter() - t1, crops=len(picks))
        return [[p.label(d.box, next(probs)) for d in dets] for dets in detections]

    def p_without(self, frames: Frames, picks: Sequence[tuple[int, tuple[int, int, int, int]]]) -> np.ndarray:
        """P(without_mask) of face ``box`` of frame ``f`` for each ``(f, box)``, in one forward pass."""
        if not picks:
            return np.zeros(0, np.float32)
        meta = self.pipeline.meta
        batch = crop_inputs(frames, picks, self.pipeline.margin, meta.input_size, meta.mean, meta.std,
                            self.runtime.dtype)
        logits = self.runtime.module(batch).float()
        return torch.softmax(logits, 1)[:, self.pipeline.without].cpu().numpy()
