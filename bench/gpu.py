"""The GPU worker's throughput: frames/s and crops/s at batch 8-256, GPU load, CPU cores, p95 batch latency.

Composed 640x480 scenes with 4-6 faces each go through the path a CUDA worker runs
(:class:`maskwatch.runtimes.torch_batch.GpuBatch`: frames uploaded once, YuNet's frame and zoom
passes batched in torch fp16, crops cut and resized on the GPU, one fp16 classifier pass), at each
batch size for ``--seconds``:

- ``frames/s``, ``crops/s``: detection + classification of frames already decoded on the host
  (the upload to the GPU included); ``e2e frames/s`` adds JPEG decoding with the faster decoder.
- ``decode``: JPEG frames/s decoded by a thread pool with OpenCV (all cores) and by nvJPEG on the
  GPU (torchvision), measured apart; the faster one feeds ``e2e``.
- ``GPU busy``: NVML's utilisation, sampled every 20 ms during the batch size's run
  (``nvidia-ml-py``; absent: null); ``CPU cores``: process CPU time over wall time.
- ``p95 batch``: the 95th percentile of one batch's wall time, in ms; ``detect share``: the part of
  the pipeline's time spent detecting (upload, both YuNet passes) rather than classifying.
- ``yunet_on_cudnn``: the largest batch again with YuNet's convolutions on cuDNN, the torch engine's
  other mode; ``warmup_s_per_batch`` shows what new input shapes cost there.
- ``parity``: on other scenes, the pasted faces found by OpenCV's ``FaceDetector`` on the CPU and
  by the GPU detector (recall each), and the share of OpenCV's boxes the GPU finds with IoU >= 0.9.

Without CUDA it runs the same batched path on the CPU (YuNet and the classifier in ONNX Runtime,
crops by OpenCV) and says so in ``note``: the figures are then no GPU's. The target (issue 16):
>= 2,000 frames/s on one H100/H200-class GPU.

    python -m bench.gpu                                   # 2-3 minutes on a GPU
    python -m bench.gpu --batches 8,32 --seconds 0.5 --frames 8 --parity-frames 4
"""

from __future__ import annotations

import argparse
import os
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import (
    SCENE_DATA,
    BenchError,
    emit,
    frame_jpegs,
    machine,
    model_path,
    need,
    parse_pair,
    percentiles,
    show,
    use_shared_models,
)
from bench.scenes.compose import Scene, compose_scene, load_face_pool, match
from maskwatch.settings import Settings
from maskwatch.vision.detect import Detection, FaceDetector
from maskwatch.vision.jpeg import decode_jpeg
from maskwatch.vision.pipeline import Pipeline

TARGET_FPS = 2000  # issue 16: 400 cameras at 5 fps per GPU worker group
SAME_BOX_IOU = 0.9


def compose(n: int, size: tuple[int, int], faces: tuple[int, int], face_px: tuple[int, int], seed: int) -> list[Scene]:
    """``n`` scenes of ``size`` with ``faces[0]``-``faces[1]`` faces each, masked and unmasked at random."""
    rng = np.random.default_rng(seed)
    pool = load_face_pool(need(SCENE_DATA), 32, rng)
    return [compose_scene(pool, rng, size=size, faces=int(rng.integers(faces[0], faces[1] + 1)), face_px=face_px)
            for _ in range(n)]


def cuda_device(asked: str) -> str | None:
    """The GPU's name when this run uses CUDA (asked for, or auto with one present), else None."""
    if asked == "cpu":
        return None
    try:
        import torch
    except ImportError:
        torch = None  # type: ignore[assignment]
    if torch is None or not torch.cuda.is_available():
        if asked == "cuda":
            raise BenchError("--device cuda asked for, but torch sees no CUDA GPU")
        return None
    return str(torch.cuda.get_device_name())


class GpuLoad:
    """NVML's GPU utilisation sampled every 20 ms on a thread, while in a ``with`` block; None without NVML."""

    def __init__(self, enabled: bool):
        self.handle: Any = None
        if enabled:
            try:
                import pynvml

                pynvml.nvmlInit()
                self.handle, self.nvml = pynvml.nvmlDeviceGetHandleByIndex(0), pynvml
            except Exception:  # nvidia-ml-py absent or no driver: the figure is left out, not the run
                self.handle = None
        self.samples: list[int] = []
        self._stop = threading.Event()

    def __enter__(self) -> GpuLoad:
        self.samples, self._stop = [], threading.Event()
        if self.handle is not None:
            threading.Thread(target=self._sample, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()

    def _sample(self) -> None:
        while not self._stop.wait(0.02):
            self.samples.append(int(self.nvml.nvmlDeviceGetUtilizationRates(self.handle).gpu))

    @property
    def mean(self) -> float | None:
        return round(float(np.mean(self.samples)), 1) if self.samples else None


def cpu_time() -> float:
    t = os.times()
    return t.user + t.system


def run_batches(fn: Callable[[Sequence[Any]], int], items: Sequence[Any], batch: int, seconds: float,
                load: GpuLoad, spent: dict[str, float]) -> dict[str, Any]:
    """Call ``fn`` (returns the faces it labelled) on batches cycled from ``items`` for ``seconds``; rates and latency.

    ``spent`` collects the pipeline's own split of the time (detection, classification) while it runs.
    """
    batches = [[items[(i * batch + j) % len(items)] for j in range(batch)] for i in range(max(1, len(items) // batch))]
    t0 = time.perf_counter()
    for b in batches:  # warm-up: every batch once, so kernels are chosen and memory pooled for its shapes
        fn(b)
    cold = time.perf_counter() - t0
    spent.clear()
    latencies: list[float] = []
    frames = crops = 0
    cpu0, start = cpu_time(), time.perf_counter()
    with load:
        while not latencies or time.perf_counter() - start < seconds:
            t0 = time.perf_counter()
            crops += fn(batches[len(latencies) % len(batches)])
            latencies.append(time.perf_counter() - t0)
            frames += batch
    wall = time.perf_counter() - start
    return {"batch": batch, "fps": round(frames / wall, 1), "crops_per_s": round(crops / wall, 1),
            "p95_batch_ms": percentiles([x * 1000 for x in latencies], (95,))["p95"],
            "gpu_busy_pct": load.mean, "cpu_cores": round((cpu_time() - cpu0) / wall, 2), "batches": len(latencies),
            "warmup_s_per_batch": round(cold / len(batches), 3),
            "detect_share": round(spent["detect_s"] / (spent["detect_s"] + spent["infer_s"]), 3) if spent else None}


def settings_for(cuda: bool, batch: int) -> Settings:
    return Settings.from_env().override(device="cuda" if cuda else "cpu", runtime="torch" if cuda else "onnx",
                                        detector="torch" if cuda else "onnx", batch_size=batch)


def analyzers(pipeline: Pipeline, cuda: bool, pool: ThreadPoolExecutor, spent: dict[str, float]
              ) -> tuple[Callable[[Sequence[np.ndarray]], int], dict[str, Callable[[Sequence[bytes]], int]]]:
    """The batch function on decoded frames, and the end-to-end ones from JPEG by decoder name.

    The CUDA path adds its detection and classification seconds to ``spent``.
    """
    def count(faces: list[list[Any]], timings: dict[str, float]) -> int:
        for k in ("detect_s", "infer_s"):
            spent[k] = spent.get(k, 0.0) + timings[k]
        return sum(len(f) for f in faces)

    def cpu_decode(jpegs: Sequence[bytes]) -> list[np.ndarray]:
        return list(pool.map(decode_jpeg, jpegs))

    if cuda:
        from maskwatch.runtimes.torch_batch import GpuBatch

        gpu = GpuBatch(pipeline)

        def decoded(images: Sequence[np.ndarray]) -> int:
            timings: dict[str, float] = {}
            return count(gpu.analyze(images, timings=timings), timings)

        def nvjpeg(jpegs: Sequence[bytes]) -> int:
            timings: dict[str, float] = {}
            return count(gpu.analyze_jpegs(jpegs, timings=timings), timings)

        return decoded, {"cpu_pool": lambda jpegs: decoded(cpu_decode(jpegs)), "nvjpeg": nvjpeg}

    detector = pipeline.detector

    def batched_cpu(images: Sequence[np.ndarray]) -> int:
        found = detector.detect_batch(images)  # type: ignore[attr-defined]
        crops = [pipeline.crop(im, d.box) for im, dets in zip(images, found) for d in dets]
        pipeline.p_without(crops)
        return len(crops)

    return batched_cpu, {"cpu_pool": lambda jpegs: batched_cpu(cpu_decode(jpegs))}


def cudnn_variant(pipeline: Pipeline, fn: Callable[[Sequence[np.ndarray]], int], images: Sequence[np.ndarray],
                  batch: int, seconds: float, load: GpuLoad, spent: dict[str, float]) -> dict[str, Any]:
    """The largest batch again with YuNet's convolutions on cuDNN (channels-last), the engine's other mode."""
    from maskwatch.runtimes.torch_yunet import TorchYuNet

    detector = pipeline.detector
    default = detector.engine  # type: ignore[attr-defined]
    detector.engine = TorchYuNet(Path(detector.model_path), "cuda", cudnn=True)  # type: ignore[attr-defined]
    try:
        return run_batches(fn, images, batch, seconds, load, spent)
    finally:
        detector.engine = default  # type: ignore[attr-defined]


def decode_rates(jpegs: Sequence[bytes], cuda: bool, pool: ThreadPoolExecutor, seconds: float) -> dict[str, float]:
    """JPEG frames/s of each decoder on one batch of ``jpegs``, measured apart from the pipeline."""
    def timed(fn: Callable[[], object]) -> float:
        fn()
        n, start = 0, time.perf_counter()
        while not n or time.perf_counter() - start < seconds:
            fn()
            n += 1
        return round(n * len(jpegs) / (time.perf_counter() - start), 1)

    rates = {"cpu_pool": timed(lambda: list(pool.map(decode_jpeg, jpegs)))}
    if cuda:
        import torch

        from maskwatch.runtimes.torch_images import decode_jpegs

        def gpu() -> None:
            decode_jpegs(jpegs, "cuda")
            torch.cuda.synchronize()

        rates["nvjpeg"] = timed(gpu)
    return rates


def parity(pipeline: Pipeline, reference: FaceDetector, scenes: Sequence[Scene]) -> dict[str, Any]:
    """Recall of the pasted faces by OpenCV on the CPU and by the pipeline's batched detector; box agreement."""
    images = [s.image for s in scenes]
    cpu = [reference.detect(im) for im in images]
    batched: list[list[Detection]] = pipeline.detector.detect_batch(images)  # type: ignore[attr-defined]

    def recall(found: Sequence[Sequence[Detection]]) -> float:
        hits = [m for s, f in zip(scenes, found) for _, m in match(s.faces, [(d.box, "face") for d in f])]
        return round(sum(m is not None for m in hits) / max(1, len(hits)), 4)

    def same(a: Detection, b: Detection) -> bool:
        (ax, ay, aw, ah), (bx, by, bw, bh) = a.box, b.box
        inter = max(0, min(ax + aw, bx + bw) - max(ax, bx)) * max(0, min(ay + ah, by + bh) - max(ay, by))
        return inter / (aw * ah + bw * bh - inter) >= SAME_BOX_IOU

    agreed = sum(any(same(d, e) for e in b) for a, b in zip(cpu, batched) for d in a)
    return {"frames": len(scenes), "faces": sum(len(s.faces) for s in scenes), "recall_opencv_cpu": recall(cpu),
            "recall_batched": recall(batched), "opencv_boxes": sum(len(a) for a in cpu),
            "batched_boxes": sum(len(b) for b in batched),
            "same_boxes_share": round(agreed / max(1, sum(len(a) for a in cpu)), 4)}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.gpu", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", type=Path, help="classifier artifact (default: MASKWATCH_MODEL, else the shipped model)")
    p.add_argument("--batches", default="8,16,32,64,128,256", help="batch sizes in frames (default 8,...,256)")
    p.add_argument("--seconds", type=float, default=2.0, help="time per batch size and mode (default 2)")
    p.add_argument("--frames", type=int, default=64, help="distinct scenes cycled through (default 64)")
    p.add_argument("--size", type=lambda t: parse_pair(t, example="640x480"), default=(640, 480),
                   help="frame size WxH (default 640x480)")
    p.add_argument("--parity-frames", type=int, default=32, help="scenes of the parity check (default 32)")
    p.add_argument("--device", choices=["auto", "cuda", "cpu"], default="auto",
                   help="cuda, cpu, or auto: CUDA when torch sees a GPU (default)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    use_shared_models()
    sizes = sorted({int(b) for b in args.batches.split(",")})
    gpu_name = cuda_device(args.device)
    cuda = gpu_name is not None
    scenes = compose(args.frames, args.size, (4, 6), (24, 64), seed=0)
    images, jpegs = [s.image for s in scenes], frame_jpegs([s.image for s in scenes])
    s = settings_for(cuda, max(sizes))
    pipeline = Pipeline.from_settings(s, model_path(args.model))
    load, spent = GpuLoad(cuda), dict[str, float]()
    with ThreadPoolExecutor(os.cpu_count() or 1) as pool:
        decoded, e2e = analyzers(pipeline, cuda, pool, spent)
        decode = decode_rates(jpegs[:64], cuda, pool, args.seconds / 2)
        decoder = max(decode, key=lambda k: decode[k])
        rows = []
        for b in sizes:
            row = run_batches(decoded, images, b, args.seconds, load, spent)
            row["e2e_fps"] = run_batches(e2e[decoder], jpegs, b, args.seconds / 2, GpuLoad(False), {})["fps"]
            rows.append(row)
        cudnn = cudnn_variant(pipeline, decoded, images, max(sizes), args.seconds, load, spent) if cuda else None
    reference = FaceDetector(Path(pipeline.detector.model_path), score=s.det_score, upscale=s.det_upscale,
                             max_side=s.det_max_side, zoom_score=s.det_zoom_score, zoom_px=s.det_zoom_px)
    check = parity(pipeline, reference, compose(args.parity_frames, args.size, (4, 6), (24, 64), seed=1))
    best = max(rows, key=lambda r: r["fps"])
    figures = {
        "bench": "gpu", "device": gpu_name or "cpu", "machine": machine(),
        "note": None if cuda else "no CUDA GPU: the batched path ran on the CPU (ONNX Runtime); these are no GPU's "
                                  "figures. Take them on a GPU with `bash scripts/gpu-check`.",
        "path": f"detector {s.detector} on {pipeline.runtime.device}, classifier {pipeline.runtime.name}",
        "frame": f"{args.size[0]}x{args.size[1]}",
        "faces_per_frame": round(float(np.mean([len(x.faces) for x in scenes])), 2),
        "decode_fps": decode, "e2e_decoder": decoder, "batches": rows,
        "best": {k: best[k] for k in ("batch", "fps", "crops_per_s", "e2e_fps", "p95_batch_ms")},
        "yunet_on_cudnn": cudnn, "parity": check, "target_fps": TARGET_FPS,
        "target_met": best["fps"] >= TARGET_FPS if cuda else None,
    }
    show_figures(figures)
    emit(figures)
    return figures


def show_figures(f: dict) -> None:
    if f["note"]:
        print(f"NOTE: {f['note']}\n")
    show(f"GPU worker path on {f['device']}: {f['path']}; {f['frame']} frames, {f['faces_per_frame']} faces each",
         ["batch", "frames/s", "crops/s", "e2e frames/s", "p95 batch ms", "GPU busy %", "CPU cores", "detect share"],
         [[r["batch"], r["fps"], r["crops_per_s"], r["e2e_fps"], r["p95_batch_ms"], r["gpu_busy_pct"], r["cpu_cores"],
           r["detect_share"]] for r in f["batches"]])
    if f["yunet_on_cudnn"]:
        c = f["yunet_on_cudnn"]
        show("YuNet's convolutions on cuDNN instead (largest batch)",
             ["batch", "frames/s", "warm-up s a batch", "GPU busy %"],
             [[c["batch"], c["fps"], c["warmup_s_per_batch"], c["gpu_busy_pct"]]])
    show("JPEG decoding (frames/s, apart from the pipeline)", ["decoder", "frames/s"],
         [[k, v] for k, v in f["decode_fps"].items()])
    p = f["parity"]
    show(f"detection parity on {p['frames']} other scenes ({p['faces']} pasted faces)", ["figure", "value"],
         [[k, v] for k, v in p.items() if k not in ("frames", "faces")])


if __name__ == "__main__":
    main()
