"""YuNet's ONNX graph run by torch: the detector's engine for CUDA workers (fp16).

The graph is read with ``onnx`` and each of its nodes becomes the torch operation it names (a
YuNet graph uses eight kinds: Conv, Relu, MaxPool, Resize, Add, Transpose, Reshape, Sigmoid), so
torch runs the very weights OpenCV runs, on any batch and any input size that is a multiple of
32. Pictures stay on the GPU from upload to scores (:mod:`maskwatch.runtimes.torch_images`): the
frame pass's enlargement, the zoom tiles and their mosaics are cut there, and only the cells over
the threshold come back to the host for decoding and NMS (:mod:`maskwatch.vision.yunet`).
Torch only, loaded through :func:`maskwatch.runtimes.detectors.load_detector`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from maskwatch.exceptions import SettingsError
from maskwatch.runtimes.torch_images import Frames, Staging, resize_linear, sample
from maskwatch.vision.batch_detect import Tile, View
from maskwatch.vision.detect import MOSAIC_FILL, mosaic_shape
from maskwatch.vision.yunet import OUTPUTS, STRIDES, Candidates

Op = Callable[[list[torch.Tensor]], torch.Tensor]


class YuNetGraph(torch.nn.Module):
    """The nodes of YuNet's ONNX graph as torch operations, in the graph's order."""

    def __init__(self, model_path: Path, matmul_1x1: bool = True):
        super().__init__()
        self.matmul_1x1 = matmul_1x1
        import onnx
        from onnx import numpy_helper

        graph = onnx.load(str(model_path)).graph
        self.consts = {t.name: torch.from_numpy(numpy_helper.to_array(t).copy()) for t in graph.initializer}
        self.weights = torch.nn.ParameterDict()  # the convolutions' weights, so .to() moves and casts them
        self.nodes: list[tuple[str, list[str], str, Op]] = []
        for node in graph.node:
            attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
            op = self._op(node.op_type, node.input, attrs)
            self.nodes.append((node.op_type, list(node.input), node.output[0], op))
        self.input_name = graph.input[0].name
        # A value is dropped after the last node that reads it: a batch's activations are gigabytes.
        last = {name: i for i, (_, inputs, _, _) in enumerate(self.nodes) for name in inputs}
        self.drops = [[n for n in inputs if last.get(n) == i and n not in OUTPUTS] for i, (_, inputs, _, _)
                      in enumerate(self.nodes)]

    def _param(self, name: str) -> torch.Tensor:
        key = name.replace(".", "_")
        if key not in self.weights:
            self.weights[key] = torch.nn.Parameter(self.consts[name], requires_grad=False)
        return self.weights[key]

    def _op(self, kind: str, inputs: Sequence[str], attrs: dict) -> Op:
        if kind == "Conv":
            pads = list(attrs.get("pads", [0, 0, 0, 0]))
            if pads[:2] != pads[2:]:
                raise SettingsError(f"YuNet graph: a Conv with asymmetric padding {pads} is not supported")
            weight = self._param(inputs[1])
            bias = self._param(inputs[2]) if len(inputs) > 2 else None
            stride, groups, dilation = tuple(attrs.get("strides", (1, 1))), attrs.get("group", 1), \
                tuple(attrs.get("dilations", (1, 1)))
            if self.matmul_1x1 and tuple(attrs["kernel_shape"]) == (1, 1) and groups == 1 and stride == (1, 1) \
                    and not any(pads) and bias is not None:
                return lambda x: pointwise(x[0], weight, bias)
            return lambda x: F.conv2d(x[0], weight, bias, stride, tuple(pads[:2]), dilation, groups)
        if kind == "Relu":
            return lambda x: F.relu(x[0])
        if kind == "Sigmoid":
            return lambda x: torch.sigmoid(x[0])
        if kind == "Add":
            return lambda x: x[0] + x[1]
        if kind == "MaxPool":
            kernel, stride = tuple(attrs["kernel_shape"]), tuple(attrs.get("strides", attrs["kernel_shape"]))
            padding, ceil = tuple(attrs.get("pads", (0, 0, 0, 0))[:2]), bool(attrs.get("ceil_mode", 0))
            return lambda x: F.max_pool2d(x[0], kernel, stride, padding, ceil_mode=ceil)
        if kind == "Resize":
            scales = self.consts[inputs[2]].tolist()
            if attrs.get("mode") != b"nearest" or scales[:2] != [1.0, 1.0]:
                raise SettingsError(f"YuNet graph: Resize {attrs.get('mode')!r} by {scales} is not supported")
            # ONNX's nearest, asymmetric, floor is torch's "nearest"
            return lambda x: F.interpolate(x[0], scale_factor=tuple(scales[2:]), mode="nearest")
        if kind == "Transpose":
            perm = tuple(attrs["perm"])
            return lambda x: x[0].permute(perm)
        if kind == "Reshape":
            shape = self.consts[inputs[1]].tolist()  # the graph's batch of 1 becomes the input's batch
            return lambda x: x[0].reshape(x[0].shape[0], *shape[1:])
        raise SettingsError(f"YuNet graph: operation {kind} is not supported by the torch engine")

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        values = {self.input_name: x}
        for (_, inputs, output, op), drops in zip(self.nodes, self.drops):
            values[output] = op([values[i] for i in inputs if i in values])
            for name in drops:
                values.pop(name, None)
        return {name: values[name] for name in OUTPUTS}


def pointwise(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """A 1x1 convolution as one batched matrix product (cuBLAS): no cuDNN plan to build for each new input shape."""
    n, c, h, w = x.shape
    out = torch.matmul(weight.view(weight.shape[0], c), x.reshape(n, c, h * w))
    return out.add_(bias.view(1, -1, 1)).view(n, -1, h, w)


class TorchYuNet:
    """YuNet in torch: fp16 on CUDA, fp32 on the CPU (where the tests compare it with OpenCV).

    Without ``cudnn`` (the default) the depthwise and the first convolution run on torch's own CUDA
    kernels and the 1x1 ones as matrix products: cuDNN builds a plan per convolution for each new
    input shape, which on an H200 stalled a batch of new shapes for seconds, and motion windows and
    zoom mosaics make new shapes all the time. ``cudnn=True`` runs every convolution on cuDNN,
    channels-last, with the batch padded to a power of two so that shapes recur (bench/gpu.py
    compares the two).
    """

    name = "torch"

    def __init__(self, model_path: Path, device: str = "cuda", cudnn: bool = False):
        if device == "cuda" and not torch.cuda.is_available():
            raise SettingsError("--device cuda asked for, but torch sees no CUDA GPU; use --device cpu")
        self.device, self.cudnn = device, cudnn
        self.dtype = torch.float16 if device == "cuda" else torch.float32
        self.layout = torch.channels_last if cudnn else torch.contiguous_format
        self.graph = YuNetGraph(model_path, matmul_1x1=not cudnn).to(device=device, dtype=self.dtype).eval()
        self.staging = Staging(device)

    def upload(self, images: Sequence[np.ndarray]) -> Frames:
        return self.staging.upload(images)

    def frame_inputs(self, frames: Frames, views: Sequence[View], pw: int, ph: int) -> torch.Tensor:
        """The views enlarged by their factor (as cv2.resize's INTER_LINEAR), zero-padded to ``pw`` x ``ph``."""
        batch = torch.zeros((len(views), 3, ph, pw), dtype=self.dtype, device=self.device)
        sizes: dict[tuple[int, int, int, int], list[int]] = {}
        for i, (_, (_, _, w, h), _, scale) in enumerate(views):
            sizes.setdefault((w, h, round(w * scale), round(h * scale)), []).append(i)
        for (_, _, sw, sh), members in sizes.items():
            pictures = self._pictures(frames, [views[i] for i in members], (sw, sh))
            batch[torch.tensor(members, device=self.device), :, :sh, :sw] = pictures.to(self.dtype)
        return batch.contiguous(memory_format=self.layout)

    def _pictures(self, frames: Frames, views: Sequence[View], size: tuple[int, int]) -> torch.Tensor:
        """Views (all of one window size) resized to ``size`` (w, h) as cv2.resize does: (n, 3, h, w) float32."""
        windows = torch.stack([frames.pixels[f, y:y + h, x:x + w] for f, (x, y, w, h), _, _ in views])
        mirrored = [i for i, v in enumerate(views) if v[2]]
        if mirrored:
            at = torch.tensor(mirrored, device=self.device)
            windows[at] = windows[at].flip(2)
        if size == (windows.shape[2], windows.shape[1]):
            return windows.permute(0, 3, 1, 2).float()
        return resize_linear(windows, size)

    def _sample(self, frames: Frames, views: Sequence[View], xs: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
        """Samples at ``xs``, ``ys`` in each view's own pixels: its window of its frame, mirrored if it is."""
        win = torch.tensor([v[1] for v in views], dtype=torch.float32, device=self.device)
        mirrored = torch.tensor([v[2] for v in views], dtype=torch.bool, device=self.device)[:, None]
        xs = torch.where(mirrored, win[:, 2:3] - 1 - xs, xs) + win[:, 0:1]
        ys = ys + win[:, 1:2]
        corner = win[:, :2].long()
        bounds = torch.cat([corner, corner + win[:, 2:].long() - 1], 1)
        index = torch.tensor([v[0] for v in views], dtype=torch.long, device=self.device)
        return sample(frames, index, xs, ys, bounds)

    def mosaic_inputs(self, frames: Frames, views: Sequence[View], mosaics: Sequence[Sequence[Tile]],
                      t: int) -> torch.Tensor:
        """The mosaics (all of one layout) of zoom tiles cut as cv2.warpAffine cuts them, grey where empty."""
        cols, rows = mosaic_shape(len(mosaics[0]))
        tiles = [tile for m in mosaics for tile in m]
        where = torch.tensor([tile[1:] for tile in tiles], dtype=torch.float32, device=self.device)
        j = torch.arange(t, device=self.device, dtype=torch.float32)
        xs = where[:, 0:1] + j[None, :] / where[:, 2:3]  # warpAffine's destination pixel j sits at x0 + j / k
        ys = where[:, 1:2] + j[None, :] / where[:, 2:3]
        cut = self._sample(frames, [views[tile[0]] for tile in tiles], xs, ys).round().to(self.dtype)
        cells = torch.full((len(mosaics), rows * cols, t, t, 3), MOSAIC_FILL, dtype=self.dtype, device=self.device)
        slot = torch.tensor([(m, i) for m, tiles_m in enumerate(mosaics) for i in range(len(tiles_m))],
                            device=self.device)
        cells[slot[:, 0], slot[:, 1]] = cut
        batch = cells.view(len(mosaics), rows, cols, t, t, 3).permute(0, 5, 1, 3, 2, 4)
        return batch.reshape(len(mosaics), 3, rows * t, cols * t).contiguous(memory_format=self.layout)

    @torch.inference_mode()
    def candidates(self, batch: torch.Tensor, threshold: float) -> Candidates:
        """The cells of every picture of ``batch`` that score ``threshold`` or more; only those leave the GPU."""
        n = len(batch)
        if self.cudnn and n & (n - 1):  # pad to a power of two: few shapes, few cuDNN plans
            batch = torch.cat([batch, batch.new_zeros((1 << n.bit_length()) - n, *batch.shape[1:])])
        with torch.backends.cudnn.flags(enabled=self.cudnn):
            outs = {k: v[:n] for k, v in self.graph(batch).items()}
        cls = torch.cat([outs[f"cls_{s}"][..., 0] for s in STRIDES], 1).float()
        obj = torch.cat([outs[f"obj_{s}"][..., 0] for s in STRIDES], 1).float()
        scores = (cls.clamp(0, 1) * obj.clamp(0, 1)).sqrt()
        picture, cell = torch.nonzero(scores >= threshold, as_tuple=True)
        raw = torch.cat([torch.cat([outs[f"bbox_{s}"], outs[f"kps_{s}"]], 2) for s in STRIDES], 1)
        return Candidates(picture.cpu().numpy(), cell.cpu().numpy(), raw[picture, cell].float().cpu().numpy(),
                          scores[picture, cell].cpu().numpy())
