"""Classifier runtimes: ONNX Runtime on the CPU, torch (fp16 on CUDA) where torch is installed.

Every runtime loads the same artifact and exposes ``predict_proba(batch) -> (N, classes)``.
``load_runtime`` picks one by name; only the torch runtime imports torch, and only when chosen.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from maskwatch.artifact import ModelArtifact


class Runtime(Protocol):
    """A loaded classifier that turns a normalised NCHW batch into class probabilities."""

    name: str
    device: str

    def predict_proba(self, batch: np.ndarray) -> np.ndarray: ...


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def load_runtime(artifact: ModelArtifact, runtime: str = "auto", device: str = "auto", threads: int = 0) -> Runtime:
    """Load ``artifact`` on the runtime named ``onnx``, ``torch`` or ``auto``.

    ``auto`` takes torch in fp16 when CUDA is available and asked for (``device`` cuda or auto
    with a GPU present), else ONNX Runtime on the CPU, the fastest CPU runtime measured
    (bench/classifier.py).
    """
    if runtime not in {"auto", "onnx", "torch"}:
        raise ValueError(f"unknown runtime {runtime!r}; choose auto, onnx or torch")
    if runtime == "auto":
        runtime = "torch" if device == "cuda" or (device == "auto" and _cuda_available()) else "onnx"
    if runtime == "onnx":
        if device == "cuda":
            raise ValueError("the onnx runtime serves the CPU; use --runtime torch for --device cuda")
        from maskwatch.runtimes.onnx import OnnxRuntime

        return OnnxRuntime(artifact, threads=threads)
    from maskwatch.runtimes.torch import TorchRuntime

    return TorchRuntime(artifact, device="cuda" if device == "auto" and _cuda_available() else device, threads=threads)


def _cuda_available() -> bool:
    """True when torch is installed and sees a GPU; never imports torch when it is absent."""
    import importlib.util

    if importlib.util.find_spec("torch") is None:
        return False
    import torch

    return bool(torch.cuda.is_available())
