"""The classifier as the trainer sees it: initial weights, the frozen/trainable split, ONNX export.

The network (:class:`maskwatch.runtimes.torch.MaskNet`) is defined in the core so the torch
runtime rebuilds exactly what was trained. Feature blocks ``features[:cut]`` stay frozen (their
outputs are cached, see :mod:`trainer.features`); ``features[cut:]`` and the head are trained.
Batch norms of pretrained blocks keep their ImageNet statistics (eval mode): the small batches of a
CPU run would only make them noisier.
"""

from __future__ import annotations

import copy
import io
import logging
import warnings
from pathlib import Path

import torch
from torch import nn

from maskwatch.exceptions import MaskWatchError
from maskwatch.runtimes.torch import MaskNet, fold_batchnorm

log = logging.getLogger(__name__)

NUM_BLOCKS = 19  # len(mobilenet_v2().features): stem conv, 17 inverted residuals, final 1x1 conv


class InitWeightsError(MaskWatchError):
    """Initial weights that cannot be had or do not fit MobileNetV2."""


def imagenet_state() -> dict[str, torch.Tensor]:
    """torchvision's IMAGENET1K_V1 MobileNetV2 weights, from torch's cache or downloaded into it."""
    import torchvision

    try:
        return torchvision.models.MobileNet_V2_Weights.IMAGENET1K_V1.get_state_dict(progress=True)
    except Exception as exc:  # no network, no cache: tell the user the offline way
        raise InitWeightsError(
            f"torchvision's ImageNet MobileNetV2 weights are neither cached nor downloadable ({exc}); "
            "pass --init-weights PATH to a state dict with torchvision's key names "
            "(e.g. ../shared/models/mobilenet_v2_imagenet.pth)") from exc


def load_init_weights(model: MaskNet, spec: str) -> str:
    """Load ``features.*`` weights into ``model`` from ``imagenet`` or a .pth path; return what was used."""
    if spec == "imagenet":
        state, source = imagenet_state(), "torchvision IMAGENET1K_V1"
    else:
        path = Path(spec)
        if not path.is_file():
            raise InitWeightsError(f"--init-weights {spec}: no such file (use 'imagenet' or a .pth state dict)")
        try:
            loaded = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise InitWeightsError(f"--init-weights {path}: not a torch state dict ({exc})") from exc
        loaded = loaded.get("state_dict", loaded) if isinstance(loaded, dict) else loaded
        if not isinstance(loaded, dict):
            raise InitWeightsError(f"--init-weights {path}: holds a {type(loaded).__name__}, not a state dict")
        state, source = loaded, str(path)
    state = {k.removeprefix("module."): v for k, v in state.items()
             if k.removeprefix("module.").startswith("features.")}
    expected = [k for k in model.state_dict() if k.startswith("features.") and not k.endswith("num_batches_tracked")]
    missing = [k for k in expected if k not in state]
    if missing:
        raise InitWeightsError(
            f"--init-weights {spec}: {len(missing)} of MobileNetV2's {len(expected)} feature tensors are missing "
            f"(e.g. {missing[0]!r}); expected torchvision's key names")
    try:
        model.load_state_dict(state, strict=False)
    except RuntimeError as exc:
        raise InitWeightsError(f"--init-weights {spec}: shapes do not fit MobileNetV2 ({exc})") from exc
    return source


def build(head: list[int], dropout: float, init_weights: str, from_scratch: bool) -> tuple[MaskNet, str]:
    """A MaskNet with ImageNet features (or random ones, only when asked) and a fresh head."""
    model = MaskNet(2, head, dropout)
    if from_scratch:
        log.warning("--from-scratch: the feature layers start from random weights")
        return model, "random (--from-scratch)"
    return model, load_init_weights(model, init_weights)


class Stem(nn.Module):
    """The frozen part, ``features[:cut]`` (pooled to a vector when every block is frozen)."""

    def __init__(self, model: MaskNet, cut: int):
        super().__init__()
        self.blocks = model.features[:cut]
        self.pool = cut == NUM_BLOCKS

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(x)
        return x.mean((2, 3)) if self.pool else x


class Upper(nn.Module):
    """The trainable part: ``features[cut:]``, pooling and the head, fed by cached stem outputs."""

    def __init__(self, model: MaskNet, cut: int):
        super().__init__()
        self.blocks = model.features[cut:]
        self.head = model.head
        self.pool = cut < NUM_BLOCKS

    def pooled(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(x).mean((2, 3)) if self.pool else x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.pooled(x))


def set_train_mode(model: MaskNet, cut: int, batchnorm_stats: bool) -> None:
    """Train mode for the trainable part; batch norms learn statistics only when ``batchnorm_stats``."""
    model.eval()
    model.head.train()
    for block in model.features[cut:]:
        block.train()
        if not batchnorm_stats:
            for m in block.modules():
                if isinstance(m, nn.BatchNorm2d):
                    m.eval()


def freeze(model: MaskNet, cut: int) -> list[nn.Parameter]:
    """Freeze ``features[:cut]``; return the parameters left to train."""
    for i, block in enumerate(model.features):
        for p in block.parameters():
            p.requires_grad_(i >= cut)
    return [p for p in model.parameters() if p.requires_grad]


def to_onnx(module: nn.Module, size: int, output: str) -> bytes:
    """ONNX bytes of ``module`` (eval, batch norms folded) taking ``input`` (N, 3, size, size).

    The TorchScript exporter keeps every parameter as an initializer under its torch name, which
    the torch runtime relies on, and takes a second where the dynamo exporter takes many.
    """
    folded = fold_batchnorm(copy.deepcopy(module).eval())
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # torch annotates f as a path only; the TorchScript exporter (dynamo=False) writes to a file object too.
        torch.onnx.export(folded, (torch.zeros(1, 3, size, size),), buf,  # type: ignore[arg-type]
                          dynamo=False, input_names=["input"], output_names=[output],
                          dynamic_axes={"input": {0: "n"}, output: {0: "n"}}, opset_version=17)
    return buf.getvalue()
