"""Frames on the GPU and the pictures cut from them there: zoom tiles, enlarged frames, classifier crops.

A CUDA worker moves each batch of frames to the GPU once (:class:`Staging`, or decodes the JPEGs
there with :func:`decode_jpegs`) and cuts everything the detector and the classifier need from
that copy, so no crop travels back and forth. Every cut is a grid of bilinear samples
(:func:`sample`): a zoom tile as ``cv2.warpAffine`` cuts it, a face crop as :func:`maskwatch.vision.crop.square_crop`
followed by :func:`maskwatch.vision.preprocess.to_batch`; past a window's or frame's edge the edge
pixels repeat, as OpenCV's ``BORDER_REPLICATE`` does. The frame pass's enlargement copies
``cv2.resize``'s fixed-point arithmetic (:func:`resize_linear`): YuNet's scores move with single
grey levels, and the candidates decide which tiles the zoom pass cuts. Torch only: the CPU paths
never load this module.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from maskwatch.vision.crop import square_box

BGR_TO_RGB = [2, 1, 0]
RESIZE_ONE = 2048  # OpenCV's INTER_LINEAR weights on uint8 are in units of 1/2048 (INTER_RESIZE_COEF_BITS)
MAX_SUPERSAMPLE = 4  # shrinking a crop averages up to this many samples per axis, as INTER_AREA averages pixels


@dataclass(frozen=True)
class Frames:
    """BGR frames on the device: ``pixels`` (N, H, W, 3) uint8, each frame top-left, padded to the largest."""

    pixels: torch.Tensor
    sizes: torch.Tensor  # (N, 2) long: each frame's own width and height
    shapes: tuple[tuple[int, int], ...]  # the same, on the host: (h, w) per frame


class Staging:
    """Uploads batches of frames through one pinned host buffer, kept from batch to batch.

    Pinning memory costs more than copying into it, so the buffer is pinned once (and again only
    when a batch is larger). Frames are copied in top-left, the tensor goes to the device
    asynchronously, and the next upload waits for that copy before it reuses the buffer. Uploads
    take turns (a worker may detect on several threads).
    """

    def __init__(self, device: str):
        self.device = device
        self.buffer: torch.Tensor | None = None
        self.copied: torch.cuda.Event | None = None
        self.lock = threading.Lock()

    def upload(self, images: Sequence[np.ndarray]) -> Frames:
        """``images`` (BGR uint8, any sizes) in one tensor on the device."""
        shapes = tuple((int(i.shape[0]), int(i.shape[1])) for i in images)
        n, hmax, wmax = len(images), max(h for h, _ in shapes), max(w for _, w in shapes)
        sizes = torch.tensor([(w, h) for h, w in shapes], dtype=torch.long).to(self.device)
        if not self.device.startswith("cuda"):
            host = torch.zeros((n, hmax, wmax, 3), dtype=torch.uint8)
            for i, image in enumerate(images):
                host[i, :image.shape[0], :image.shape[1]] = torch.from_numpy(image)
            return Frames(host, sizes, shapes)
        with self.lock:
            if self.copied is not None:
                self.copied.synchronize()
            if self.buffer is None or self.buffer.shape[0] < n or self.buffer.shape[1:3] != (hmax, wmax):
                self.buffer = torch.empty((n, hmax, wmax, 3), dtype=torch.uint8, pin_memory=True)
            host, staged = self.buffer[:n], self.buffer[:n].numpy()
            for i, image in enumerate(images):
                staged[i, :image.shape[0], :image.shape[1]] = image
            pixels = host.to(self.device, non_blocking=True)
            self.copied = torch.cuda.Event()
            self.copied.record()
        return Frames(pixels, sizes, shapes)


def decode_jpegs(jpegs: Sequence[bytes], device: str) -> Frames:
    """JPEG frames decoded on the GPU (nvJPEG through torchvision) into BGR :class:`Frames`."""
    from torchvision.io import ImageReadMode, decode_jpeg

    data = [torch.frombuffer(bytearray(j), dtype=torch.uint8) for j in jpegs]
    decoded = decode_jpeg(data, mode=ImageReadMode.RGB, device=device)  # (3, H, W) RGB each
    shapes = tuple((int(d.shape[1]), int(d.shape[2])) for d in decoded)
    hmax, wmax = max(h for h, _ in shapes), max(w for _, w in shapes)
    pixels = torch.zeros((len(decoded), hmax, wmax, 3), dtype=torch.uint8, device=device)
    for i, d in enumerate(decoded):
        pixels[i, :d.shape[1], :d.shape[2]] = d[BGR_TO_RGB].permute(1, 2, 0)
    sizes = torch.tensor([(w, h) for h, w in shapes], dtype=torch.long, device=device)
    return Frames(pixels, sizes, shapes)


def sample(frames: Frames, index: torch.Tensor, xs: torch.Tensor, ys: torch.Tensor, bounds: torch.Tensor,
           ) -> torch.Tensor:
    """Bilinear samples of frame ``index[k]`` at columns ``xs[k]`` and rows ``ys[k]`` (frame pixels, float32).

    ``bounds[k]`` = (x0, y0, x1, y1), inclusive pixel bounds: coordinates are clamped into them
    first, so that past a window's edge its edge pixels repeat. Returns (K, rows, cols, 3) float32.
    """
    n, hmax, wmax, _ = frames.pixels.shape
    flat = frames.pixels.reshape(-1, 3)
    xs = torch.minimum(torch.maximum(xs, bounds[:, 0:1].float()), bounds[:, 2:3].float())
    ys = torch.minimum(torch.maximum(ys, bounds[:, 1:2].float()), bounds[:, 3:4].float())
    x0, y0 = xs.floor(), ys.floor()
    fx, fy = (xs - x0)[:, None, :, None], (ys - y0)[:, :, None, None]
    x0l, y0l = x0.long(), y0.long()
    x1l = torch.minimum(x0l + 1, bounds[:, 2:3])
    y1l = torch.minimum(y0l + 1, bounds[:, 3:4])
    base = (index.long() * hmax)[:, None]

    def at(yl: torch.Tensor, xl: torch.Tensor) -> torch.Tensor:
        rows = (base + yl) * wmax  # (K, rows)
        return flat[rows[:, :, None] + xl[:, None, :]].float()  # (K, rows, cols, 3)

    top = at(y0l, x0l) * (1 - fx) + at(y0l, x1l) * fx
    bottom = at(y1l, x0l) * (1 - fx) + at(y1l, x1l) * fx
    return top * (1 - fy) + bottom * fy


def linear_taps(n_out: int, n_in: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``cv2.resize``'s INTER_LINEAR taps from ``n_in`` to ``n_out`` pixels: source pixels i0, i1 and their weights.

    The weights are OpenCV's 11-bit fixed-point ones, computed from float32 positions as OpenCV
    computes them, so :func:`resize_linear` gives OpenCV's pixels (all but about one in a thousand;
    those are one grey level off).
    """
    pos = ((np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5).astype(np.float32)
    i0 = np.floor(pos).astype(np.int64)
    frac = (pos - i0).astype(np.float32)
    frac[(i0 < 0) | (i0 >= n_in - 1)] = 0
    i0 = np.clip(i0, 0, n_in - 1)
    w0 = np.rint((np.float32(1) - frac) * RESIZE_ONE).astype(np.int64)
    w1 = np.rint(frac * RESIZE_ONE).astype(np.int64)
    return i0, np.minimum(i0 + 1, n_in - 1), w0, w1


def resize_linear(pictures: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Pictures (K, h, w, 3) uint8 resized to ``size`` (w, h) as ``cv2.resize`` (INTER_LINEAR) resizes them.

    OpenCV's fixed-point arithmetic (:func:`linear_taps`): a horizontal pass in whole numbers,
    then a vertical one with its shifts and rounding. Returns (K, 3, h, w) float32.
    """
    (sw, sh), device = size, pictures.device
    x0, x1, a0, a1 = (torch.from_numpy(t).to(device) for t in linear_taps(sw, pictures.shape[2]))
    y0, y1, b0, b1 = (torch.from_numpy(t).to(device) for t in linear_taps(sh, pictures.shape[1]))

    def across(rows: torch.Tensor) -> torch.Tensor:  # (K, sh, w, 3) -> (K, sh, sw, 3), weights summing to 2048
        rows = rows.int()
        return rows.index_select(2, x0) * a0.int()[:, None] + rows.index_select(2, x1) * a1.int()[:, None]

    top, bottom = across(pictures.index_select(1, y0)) >> 4, across(pictures.index_select(1, y1)) >> 4
    out = (((top * b0.int()[:, None, None]) >> 16) + ((bottom * b1.int()[:, None, None]) >> 16) + 2) >> 2
    return out.permute(0, 3, 1, 2).float()


def resize_grid(origin: torch.Tensor, step: torch.Tensor, n: int) -> torch.Tensor:
    """Sample positions of an ``n``-pixel resize: pixel centres ``origin + (j + 0.5) * step - 0.5`` (as cv2.resize)."""
    j = torch.arange(n, device=origin.device, dtype=torch.float32)
    return origin[:, None] + (j[None, :] + 0.5) * step[:, None] - 0.5


def crop_inputs(frames: Frames, picks: Sequence[tuple[int, tuple[int, int, int, int]]], margin: float, size: int,
                mean: Sequence[float], std: Sequence[float], dtype: torch.dtype) -> torch.Tensor:
    """The classifier's normalised RGB NCHW batch for face ``box`` of frame ``f``, for each ``(f, box)`` of ``picks``.

    What ``to_batch([square_crop(frame, box, margin)], ...)`` gives on the CPU, cut on the GPU:
    the square around the box (its part inside the frame, edge pixels repeated past it), resized
    bilinearly when growing and averaged over up to :data:`MAX_SUPERSAMPLE` samples a pixel when
    shrinking (INTER_AREA on the CPU).
    """
    device = frames.pixels.device
    out = torch.empty((len(picks), 3, size, size), dtype=torch.float32, device=device)
    squares = [square_box(box, margin) for _, box in picks]
    by_factor: dict[int, list[int]] = {}
    for i, (_, _, side, _) in enumerate(squares):
        by_factor.setdefault(min(MAX_SUPERSAMPLE, max(1, math.ceil(side / size))), []).append(i)
    for m, members in by_factor.items():
        sq = torch.tensor([squares[i] for i in members], dtype=torch.float32, device=device)
        index = torch.tensor([picks[i][0] for i in members], dtype=torch.long, device=device)
        # square_crop cuts the square's part inside the frame and repeats its edges: clamp to that part
        corner, wh = sq[:, :2].long(), frames.sizes[index]
        bounds = torch.cat([corner.clamp(min=0), torch.minimum(corner + sq[:, 2:3].long(), wh) - 1], 1)
        step = sq[:, 2] / (size * m)
        pixels = sample(frames, index, resize_grid(sq[:, 0], step, size * m), resize_grid(sq[:, 1], step, size * m),
                        bounds).permute(0, 3, 1, 2)[:, BGR_TO_RGB]  # (k, 3, S*m, S*m) RGB
        if m > 1:
            pixels = torch.nn.functional.avg_pool2d(pixels, m)
        out[torch.tensor(members, device=device)] = pixels.round()  # the CPU path resizes into uint8
    mean_t = torch.tensor(mean, dtype=torch.float32, device=device).view(1, 3, 1, 1)
    std_t = torch.tensor(std, dtype=torch.float32, device=device).view(1, 3, 1, 1)
    return ((out / 255.0 - mean_t) / std_t).to(dtype).contiguous(memory_format=torch.channels_last)
