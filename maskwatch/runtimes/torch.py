"""PyTorch runtime: the classifier rebuilt as a torch module, fp16 on CUDA, fp32 on the CPU.

The artifact holds one set of weights: its ONNX graph, exported from :class:`MaskNet` with batch
norms folded into the convolutions and every parameter kept under its PyTorch name. This runtime
builds the same folded module and loads those initializers into it, so ONNX Runtime and torch
serve the very same weights. The network definition lives here, in the core, because the trainer
and the runtime must agree on it exactly; the trainer imports it from here.
"""

from __future__ import annotations

import itertools

import numpy as np
import torch
import torchvision
from torch import nn

from maskwatch.artifact import ModelArtifact, ModelMeta
from maskwatch.exceptions import ArtifactError, SettingsError
from maskwatch.runtimes import softmax
from maskwatch.settings import DeviceName


class MaskNet(nn.Module):
    """MobileNetV2 feature layers, global average pooling, and a head of FC + ReLU + dropout layers."""

    def __init__(self, num_classes: int = 2, head: list[int] | tuple[int, ...] = (128,), dropout: float = 0.5):
        super().__init__()
        self.features = torchvision.models.mobilenet_v2(weights=None).features
        layers: list[nn.Module] = []
        width = 1280
        for hidden in head:
            layers += [nn.Linear(width, hidden), nn.ReLU(inplace=True), nn.Dropout(dropout)]
            width = hidden
        layers.append(nn.Linear(width, num_classes))
        self.head = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).mean((2, 3)))


def fold_batchnorm(module: nn.Module) -> nn.Module:
    """Fold every Conv2d + BatchNorm2d pair of ``module``'s Sequentials into one biased Conv2d, in place.

    The BatchNorm becomes an Identity, so the folded module's parameters keep the convolutions'
    names (``features.0.0.weight``, ``features.0.0.bias``); with ``module`` in eval mode the outputs
    are unchanged. Works on a module of random weights too: that is how the runtime gets the shape.
    """
    for seq in module.modules():
        if not isinstance(seq, nn.Sequential):
            continue
        names = list(seq._modules)
        for a, b in itertools.pairwise(names):
            conv, bn = seq._modules[a], seq._modules[b]
            if not (isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d)):
                continue
            mean, var = bn.running_mean, bn.running_var
            assert mean is not None and var is not None, "folding needs the BatchNorm's running statistics"
            padding = conv.padding if isinstance(conv.padding, str) else _pair(conv.padding)
            fused = nn.Conv2d(conv.in_channels, conv.out_channels, _pair(conv.kernel_size), _pair(conv.stride), padding,
                              _pair(conv.dilation), conv.groups, bias=True, padding_mode=conv.padding_mode)
            fused_bias = fused.bias
            assert fused_bias is not None  # built with bias=True
            with torch.no_grad():
                scale = bn.weight / torch.sqrt(var + bn.eps)
                bias = conv.bias if conv.bias is not None else torch.zeros_like(mean)
                fused.weight.copy_(conv.weight * scale.reshape(-1, 1, 1, 1))
                fused_bias.copy_((bias - mean) * scale + bn.bias)
            seq._modules[a] = fused.to(conv.weight.device, conv.weight.dtype)
            seq._modules[b] = nn.Identity()
    return module


def _pair(value: tuple[int, ...]) -> tuple[int, int]:
    """A Conv2d's size attribute as the pair it always is (typed ``tuple[int, ...]`` by torch)."""
    return value[0], value[1]


def build_folded(meta: ModelMeta) -> nn.Module:
    """The folded, eval-mode network an artifact describes, with random weights."""
    if meta.architecture != "mobilenet_v2":
        raise ArtifactError(f"the torch runtime builds mobilenet_v2 classifiers, not {meta.architecture!r}")
    return fold_batchnorm(MaskNet(len(meta.classes), meta.head).eval())


def state_from_onnx(artifact: ModelArtifact, module: nn.Module) -> dict[str, torch.Tensor]:
    """The ONNX initializers that hold ``module``'s parameters, by name; raises if one is missing."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load_from_string(artifact.onnx).graph
    inits = {t.name: t for t in graph.initializer}
    wanted = module.state_dict()
    missing = [k for k in wanted if k not in inits]
    if missing:
        raise ArtifactError(
            f"the artifact's ONNX graph lacks {len(missing)} parameter(s) of the torch module, e.g. {missing[0]!r}; "
            "it was not exported by `maskwatch train`")
    state = {k: torch.from_numpy(numpy_helper.to_array(inits[k]).copy()) for k in wanted}
    for k, v in state.items():
        if v.shape != wanted[k].shape:
            raise ArtifactError(f"parameter {k!r} has shape {tuple(v.shape)} in the artifact, "
                                f"the module expects {tuple(wanted[k].shape)}")
    return state


class TorchRuntime:
    """The artifact's weights in torch: fp16 on CUDA, fp32 on the CPU."""

    name = "torch"

    def __init__(self, artifact: ModelArtifact, device: DeviceName = "cpu", threads: int = 0):
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        if device == "cuda" and not torch.cuda.is_available():
            raise SettingsError("--device cuda asked for, but torch sees no CUDA GPU; use --device cpu or auto")
        if threads and device == "cpu":
            torch.set_num_threads(threads)
        self.device: str = device
        self.dtype = torch.float16 if device == "cuda" else torch.float32
        self.num_classes = len(artifact.meta.classes)
        module = build_folded(artifact.meta)
        module.load_state_dict(state_from_onnx(artifact, module))
        self.module = module.to(device=device, dtype=self.dtype).to(memory_format=torch.channels_last).eval()

    def predict_proba(self, batch: np.ndarray) -> np.ndarray:
        if len(batch) == 0:
            return np.zeros((0, self.num_classes), np.float32)
        x = torch.from_numpy(np.ascontiguousarray(batch, np.float32)).to(self.device)
        x = x.to(self.dtype).contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            logits = self.module(x).float().cpu().numpy()
        return softmax(logits)
