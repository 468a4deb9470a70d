"""Classifier runtimes: ONNX Runtime on the CPU, torch (fp16 on CUDA) where torch is installed.

Every runtime loads the same artifact and exposes ``predict_proba(batch) -> (N, classes)``.
``load_runtime`` picks one by name; only the torch runtime imports torch, and only when chosen.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from maskwatch.artifact import ModelArtifact
from maskwatch.exceptions import SettingsError
from maskwatch.settings import DeviceName, RuntimeName


class Runtime(Protocol):
    """A loaded classifier that turns a normalised NCHW batch into class probabilities."""

    name: str
    device: str

    def predict_proba(self, batch: np.ndarray) -> np.ndarray: ...


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def load_runtime(artifact: ModelArtifact, runtime: RuntimeName = "auto", device: DeviceName = "auto",
                 threads: int = 0) -> Runtime:
    """Load ``artifact`` on the runtime named ``onnx``, ``torch`` or ``auto``.

    ``auto`` takes torch in fp16 when CUDA is available and asked for (``device`` cuda or auto
    with a GPU present), else ONNX Runtime on the CPU, the fastest CPU runtime measured
    (bench/classifier.py). The names are checked once, where they are read: by
    :class:`~maskwatch.settings.Settings` and the command line's choices.
    """
    if runtime == "auto":
        runtime = "torch" if device == "cuda" or (device == "auto" and _cuda_available()) else "onnx"
    if runtime == "onnx":
        if device == "cuda":
            raise SettingsError("the onnx runtime serves the CPU; use --runtime torch for --device cuda")
        from maskwatch.runtimes.onnx import OnnxRuntime

        return OnnxRuntime(artifact, threads=threads)
    try:
        from maskwatch.runtimes.torch import TorchRuntime
    except ImportError as exc:
        raise SettingsError(f"the torch runtime needs torch ({exc}): pip install 'maskwatch[torch]', "
                            "or use --runtime onnx") from exc

    return TorchRuntime(artifact, device="cuda" if device == "auto" and _cuda_available() else device, threads=threads)


def _cuda_available() -> bool:
    """True when torch is installed and sees a GPU; never imports torch when it is absent."""
    import importlib.util

    if importlib.util.find_spec("torch") is None:
        return False
    import torch

    return bool(torch.cuda.is_available())
