"""ONNX Runtime on the CPU: the default classifier runtime of CPU workers (no torch needed)."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort

from maskwatch.artifact import ModelArtifact
from maskwatch.runtimes import softmax


class OnnxRuntime:
    """Runs the artifact's ONNX graph with ORT's full graph optimisations (BN folding, fusions)."""

    name = "onnx"
    device = "cpu"

    def __init__(self, artifact: ModelArtifact, threads: int = 0):
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:
            opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        # Spinning threads burn the core that decode and YuNet need between batches (bench/pipeline.py).
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(artifact.onnx, opts, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name

    def predict_proba(self, batch: np.ndarray) -> np.ndarray:
        if len(batch) == 0:
            return np.zeros((0, 2), np.float32)
        (logits,) = self.session.run(None, {self.input_name: np.ascontiguousarray(batch, np.float32)})
        return softmax(logits)
