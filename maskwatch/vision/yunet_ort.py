"""YuNet's ONNX graph in ONNX Runtime, on many pictures of one size at a time: the ``onnx`` detector's engine.

The published graph is fixed to one 640x640 picture. :func:`batched_graph` frees the batch and the
size and makes its reshapes keep the batch, so one ``run`` takes a whole batch of frames (or of
zoom tiles). On the CPU this runs the very graph OpenCV runs; with ``onnxruntime-gpu`` installed
(``pip install 'maskwatch[cuda]'``) the CUDA execution provider runs it, and TensorRT's where that
is present. Pictures are prepared as OpenCV prepares them (:mod:`maskwatch.vision.yunet`), with
OpenCV's resizing and warping, so the ``onnx`` detector finds the boxes ``cv2.FaceDetectorYN`` finds.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort

from maskwatch.exceptions import SettingsError
from maskwatch.vision.batch_detect import Tile, View
from maskwatch.vision.detect import cut_tile, mosaic
from maskwatch.vision.yunet import OUTPUTS, STRIDES, Candidates, face_scores

log = logging.getLogger(__name__)

def batched_graph(model_path: Path) -> bytes:
    """YuNet's graph with a free batch and input size, its outputs shaped (batch, cells, values)."""
    try:
        import onnx
        from onnx import numpy_helper
    except ImportError as exc:
        raise SettingsError(f"the onnx detector needs the onnx package ({exc}): pip install 'maskwatch[cuda]', "
                            "or use MASKWATCH_DETECTOR=opencv") from None
    model = onnx.load(str(model_path))
    graph = model.graph
    for dim, name in zip(graph.input[0].type.tensor_type.shape.dim, ("batch", None, "height", "width")):
        if name:
            dim.dim_param = name
    for out in graph.output:
        dims = out.type.tensor_type.shape.dim
        dims[0].dim_param, dims[1].dim_param = "batch", "cells"
    del graph.value_info[:]  # shapes inferred for 640x640 would contradict other sizes
    inits = {t.name: t for t in graph.initializer}
    for node in graph.node:
        if node.op_type == "Reshape" and node.input[1] in inits:
            shape = numpy_helper.to_array(inits[node.input[1]]).copy()
            shape[0] = 0  # 0: the input's own batch (the graph said 1)
            inits[node.input[1]].CopyFrom(numpy_helper.from_array(shape, node.input[1]))
    return model.SerializeToString()


def providers_for(device: str) -> list[str]:
    """ONNX Runtime's execution providers for ``device``, best first; raises if CUDA is asked for and absent."""
    if device != "cuda":
        return ["CPUExecutionProvider"]
    present = ort.get_available_providers()
    if "CUDAExecutionProvider" not in present:
        raise SettingsError(f"--device cuda asked for, but ONNX Runtime {ort.__version__} has no CUDA provider "
                            f"(it has {', '.join(present)}): pip install 'maskwatch[cuda]' (onnxruntime-gpu), "
                            "or use MASKWATCH_DETECTOR=torch")
    gpu = [p for p in ("TensorrtExecutionProvider", "CUDAExecutionProvider") if p in present]
    return gpu + ["CPUExecutionProvider"]


class OrtYuNet:
    """YuNet in ONNX Runtime; pictures are numpy arrays and are prepared with OpenCV on the CPU."""

    name = "onnx"

    def __init__(self, model_path: Path, device: str = "cpu", threads: int = 0):
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:
            opts.intra_op_num_threads = threads
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")  # as the classifier: cores stay free
        self.session = ort.InferenceSession(batched_graph(model_path), opts, providers=providers_for(device))
        self.device = device
        log.info("YuNet in ONNX Runtime on %s", ", ".join(self.session.get_providers()))

    def upload(self, images: Sequence[np.ndarray]) -> Sequence[np.ndarray]:
        """The frames where this engine works on them: the CPU's memory, as they are."""
        return images

    def view(self, frames: Sequence[np.ndarray], v: View) -> np.ndarray:
        """The picture of view ``v``: its frame's window, mirrored if asked."""
        f, (x, y, w, h), mirrored, _ = v
        image = frames[f][y:y + h, x:x + w]
        return cv2.flip(image, 1) if mirrored else image

    def frame_inputs(self, frames: Sequence[np.ndarray], views: Sequence[View], pw: int, ph: int) -> np.ndarray:
        """The views enlarged by their factor and padded with zeros to ``pw`` x ``ph``, as one NCHW batch."""
        batch = np.zeros((len(views), ph, pw, 3), np.float32)
        for i, v in enumerate(views):
            image, scale = self.view(frames, v), v[3]
            if scale > 1.0:
                h, w = image.shape[:2]
                image = cv2.resize(image, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_LINEAR)
            batch[i, :image.shape[0], :image.shape[1]] = image
        return batch.transpose(0, 3, 1, 2)

    def mosaic_inputs(self, frames: Sequence[np.ndarray], views: Sequence[View], mosaics: Sequence[Sequence[Tile]],
                      t: int) -> np.ndarray:
        """Each mosaic of zoom tiles (all of one layout), tiles cut from their views' pictures, as one NCHW batch."""
        pictures = {vi: self.view(frames, views[vi]) for m in mosaics for vi, *_ in m}
        batch = np.stack([mosaic([cut_tile(pictures[vi], (x0, y0, k), t) for vi, x0, y0, k in m], t) for m in mosaics])
        return batch.astype(np.float32).transpose(0, 3, 1, 2)

    def candidates(self, batch: np.ndarray, threshold: float) -> Candidates:
        """The cells of every picture of ``batch`` that score ``threshold`` or more."""
        outs = dict(zip(OUTPUTS, self.session.run(list(OUTPUTS), {"input": np.ascontiguousarray(batch)})))
        cls = np.concatenate([outs[f"cls_{s}"][..., 0] for s in STRIDES], 1)
        obj = np.concatenate([outs[f"obj_{s}"][..., 0] for s in STRIDES], 1)
        raw = np.concatenate([np.concatenate([outs[f"bbox_{s}"], outs[f"kps_{s}"]], 2) for s in STRIDES], 1)
        return Candidates.select(face_scores(cls, obj), raw, threshold)
