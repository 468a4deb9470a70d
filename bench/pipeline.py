"""The worker end to end against the bare classifier and a naive loop, on one pre-filled frames stream.

Composed CCTV-like scenes (several faces each) are pushed as JPEG frames onto a private Redis, then
measured in one run as:

- ``worker``: :class:`worker.service.Worker` consuming the camera's stream exactly as in production
  (camera lease, XREADGROUP, decode and YuNet detection on its thread pool, crops, one classifier
  pass per batch, violation events and snapshots, the commit script, the live frame), until every
  frame is counted. Every frame is a keyframe and tracking is off: this measures today's path, every
  face of every frame classified (``python -m bench.quality`` measures gating and tracking).
- ``bare``: only the classifier, the same runtime object, on the very crops the worker classified
  (cut again from the result boxes), grouped as the worker's batches were; the input tensor is
  prepared beforehand, so this is the forward pass and softmax alone, the most the worker could reach.
- ``naive``: what a first script would do: per frame decode and detect (same detector, one thread),
  then per face one batch-1 eager torch call (fp32, NCHW, folded weights: kinder than an unfolded model).

- ``worker, detection replayed``: the same worker with YuNet's boxes replayed from a table: the
  worker's own overhead (Redis, decode, crops, preprocessing, commit) apart from the detector's cost.

The four alternate in rounds and each keeps its median. CPU time per frame and per crop (process
time, all threads) and redis-server's CPU and memory per frame are reported too: they are what
sizing needs, and they vary less with the machine's load than wall time. Targets (issue 7):
worker crops/s >= 85% of bare, and >= 5x naive.

    python -m bench.pipeline                       # 1-2 minutes on 2 cores
    python -m bench.pipeline --frames 8 --naive-frames 2
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
from prometheus_client import CollectorRegistry
from tqdm import tqdm

from bench.common import (
    emit,
    frame_jpegs,
    machine,
    model_path,
    parse_pair,
    prefill,
    private_redis,
    ratio,
    redis_cpu_seconds,
    register,
    scenes,
    show,
    use_shared_models,
)
from maskwatch.codec import decode_result
from maskwatch.keys import Keys
from maskwatch.settings import Settings
from maskwatch.vision.crop import square_crop
from maskwatch.vision.jpeg import decode_jpeg
from maskwatch.vision.pipeline import Pipeline
from maskwatch.vision.preprocess import to_batch

CAM = "bench"
WARM_CAM = "warmup"
TARGET_VS_BARE, TARGET_VS_NAIVE = 0.85, 5.0


def parse_range(text: str) -> tuple[int, int]:
    try:
        lo, hi = (int(v) for v in text.split(","))
        return lo, hi
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not MIN,MAX, e.g. 32,56") from None


def worker_settings(args: argparse.Namespace, redis_url: str, prefix: str) -> Settings:
    use_shared_models()
    flags = {"batch_size": args.batch_size, "runtime": args.runtime, "threads": args.threads,
             "det_upscale": args.det_upscale}
    return Settings.from_env().override(redis_url=redis_url, prefix=prefix, model=model_path(args.model),
                                        worker_metrics_port=0, tracking=False, **flags)


def metric(registry: CollectorRegistry, name: str) -> float:
    """A sample of one worker's metrics (each worker has a registry of its own)."""
    return registry.get_sample_value(name) or 0.0


class ReplayDetector:
    """Hands back the detections a real detector found on the same image: the worker without YuNet's cost.

    Identical frames decode to identical pixels, so a sparse sample of the pixels is a sufficient key.
    """

    def __init__(self, detector, images: list[np.ndarray]):
        self.found = {self.key(img): detector.detect(img, unsure=True) for img in images}

    @staticmethod
    def key(image: np.ndarray) -> bytes:
        return image[::7, ::11].tobytes()

    def detect(self, image: np.ndarray, regions: object = None, unsure: bool = False) -> list:
        found = self.found[self.key(image)]  # keyframes only: no regions to search
        return found if unsure else [d for d in found if not d.unsure]


def run_worker(s: Settings, pipeline: Pipeline, jpegs: list[bytes], shape: tuple[int, int]) -> dict:
    """Drain a pre-filled stream of ``jpegs`` with a real Worker; wall and CPU time, counts, the time split.

    Also the redis-server's CPU time per frame (XADD, XREADGROUP, commit script) and the stream's
    memory per frame: what sizing Redis needs.
    """
    import redis

    from maskwatch.streams import ensure_group
    from worker.service import Worker

    r = redis.Redis.from_url(s.redis_url)
    keys = Keys(s.prefix)
    r.delete(keys.frames(CAM), keys.frames(WARM_CAM), keys.results, keys.totals(CAM), keys.totals(WARM_CAM))
    for cam in (CAM, WARM_CAM):  # registered before the worker starts, so it takes both at its first tick
        register(r, keys, cam)
        ensure_group(r, keys, cam)
    worker = Worker(s, r, pipeline, name="bench-worker")
    prefill(r, keys, WARM_CAM, jpegs[: s.batch_size], shape)  # thread pool, detector nets, runtime warmed up
    while worker.run_once():
        pass
    redis_cpu0 = redis_cpu_seconds(r)
    n = prefill(r, keys, CAM, jpegs, shape)
    stream = keys.frames(CAM)
    stream_bytes = int(r.memory_usage(stream, samples=0) or 0) * n // max(1, int(r.xlen(stream)))
    seen = worker.metrics.registry
    det0 = metric(seen, "maskwatch_worker_detection_seconds_sum")
    inf0 = metric(seen, "maskwatch_worker_inference_seconds_sum")
    t0, c0 = time.perf_counter(), time.process_time()
    while int(r.hget(keys.totals(CAM), "frames") or 0) < n:
        worker.run_once()
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    redis_cpu = redis_cpu_seconds(r) - redis_cpu0
    detect_s = metric(seen, "maskwatch_worker_detection_seconds_sum") - det0
    infer_s = metric(seen, "maskwatch_worker_inference_seconds_sum") - inf0
    if worker.executor:
        worker.executor.shutdown()
    results = sorted((decode_result(f) for _, f in r.xrange(keys.results)), key=lambda res: res.seq)
    results = [res for res in results if res.cam == CAM]
    totals = {k.decode(): int(v) for k, v in r.hgetall(keys.totals(CAM)).items()}
    return {"frames": n, "crops": sum(len(res.faces) for res in results), "seconds": wall, "cpu_s": cpu,
            "totals": totals, "results": results, "detect_s": detect_s, "infer_s": infer_s,
            "pending": r.xpending(stream, keys.group)["pending"], "redis_cpu_s": redis_cpu,
            "stream_bytes": stream_bytes}


class Naive:
    """What a first script would do: per frame decode + detect, per face one batch-1 eager torch call."""

    def __init__(self, pipeline: Pipeline, model: Path, threads: int):
        import torch

        from maskwatch.artifact import ModelArtifact
        from maskwatch.runtimes.torch import build_folded, state_from_onnx

        torch.set_num_threads(threads)
        artifact = ModelArtifact.load(model)
        self.net = build_folded(artifact.meta)
        self.net.load_state_dict(state_from_onnx(artifact, self.net))
        self.pipeline = pipeline
        self.detect_cpu_s = 0.0

    def one(self, jpg: bytes) -> int:
        import torch

        p, meta = self.pipeline, self.pipeline.meta
        c0 = time.process_time()
        image = decode_jpeg(jpg)
        faces = p.detect(image)
        self.detect_cpu_s += time.process_time() - c0
        for det in faces:
            x = to_batch([square_crop(image, det.box, p.margin)], meta.input_size, meta.mean, meta.std)
            with torch.inference_mode():
                torch.softmax(self.net(torch.from_numpy(x)), 1)
        return len(faces)

    def run(self, jpegs: list[bytes]) -> dict:
        """Frames, crops, wall seconds and the CPU seconds of decode + detection over ``jpegs``."""
        self.one(jpegs[0])  # warm-up
        self.detect_cpu_s = 0.0
        t0 = time.perf_counter()
        crops = sum(self.one(j) for j in jpegs)
        return {"frames": len(jpegs), "crops": crops, "seconds": time.perf_counter() - t0,
                "detect_cpu_s": self.detect_cpu_s}


def bare_batches(pipeline: Pipeline, jpegs: list[bytes], results: list, batch_size: int) -> list[np.ndarray]:
    """The worker's crops, cut again from its result boxes, one tensor per worker batch of frames."""
    meta = pipeline.meta
    out = []
    for start in range(0, len(jpegs), batch_size):
        crops = [square_crop(decode_jpeg(jpegs[res.seq]), f.box, pipeline.margin)
                 for res in results[start:start + batch_size] for f in res.faces]
        if crops:
            out.append(to_batch(crops, meta.input_size, meta.mean, meta.std))
    return out


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.pipeline", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", type=Path, help="classifier artifact (default: MASKWATCH_MODEL, else the shipped model)")
    p.add_argument("--frames", type=int, default=48, help="frames pre-filled on the stream per run (default 48)")
    p.add_argument("--naive-frames", type=int, default=8, help="frames the naive loop handles (default 8)")
    p.add_argument("--faces", type=int, default=6, help="faces pasted per scene (default 6)")
    p.add_argument("--size", type=parse_pair, default=(640, 360), help="frame size WxH (default 640x360)")
    p.add_argument("--face-px", type=parse_range, default=(32, 56), help="face sizes MIN,MAX in px (default 32,56)")
    p.add_argument("--distinct", type=int, default=16, help="distinct scenes, repeated to fill --frames (default 16)")
    p.add_argument("--batch-size", type=int, help="worker batch size in frames (default: the settings', 16)")
    p.add_argument("--runtime", choices=["onnx", "torch"], default="onnx",
                   help="worker classifier runtime (default onnx)")
    p.add_argument("--threads", type=int, help="worker threads (default: the settings', all cores)")
    p.add_argument("--rounds", type=int, default=2,
                   help="alternating rounds of worker, replayed worker and bare (default 2)")
    p.add_argument("--det-upscale", type=float, help="detector upscale (default: the settings', 2.0)")
    args = p.parse_args(argv)
    if args.frames < 1 or args.naive_frames < 1 or args.faces < 0 or args.distinct < 1:
        p.error("--frames, --naive-frames and --distinct must be positive, --faces at least 0")
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    t_start = time.perf_counter()
    made = scenes(min(args.distinct, args.frames), args.faces, args.size, args.face_px)
    images = [made[i % len(made)].image for i in range(args.frames)]
    jpegs = frame_jpegs(images)
    shape = images[0].shape[:2]
    runs: dict[str, list[dict]] = {"worker": [], "replayed": [], "bare": [], "naive": []}
    with private_redis() as server:
        s = worker_settings(args, server.url, "bench")
        pipeline = Pipeline.from_settings(s)
        replayed = Pipeline(ReplayDetector(pipeline.detector, [decode_jpeg(j) for j in jpegs[: len(made)]]),
                            pipeline.runtime, pipeline.meta, pipeline.margin, pipeline.min_face_px, pipeline.threshold)
        batches: list[np.ndarray] = []
        naive = Naive(pipeline, s.model or model_path(), s.threads or os.cpu_count() or 1)
        for i in tqdm(range(args.rounds), desc="rounds", leave=False):
            # Round 0 starts with the worker (its boxes define the bare batches), later rounds alternate.
            order = ("worker", "replayed", "bare", "naive")
            for what in order if i % 2 == 0 else reversed(order):
                if what == "bare":
                    runs["bare"].append(bare_run(pipeline, batches))
                    continue
                if what == "naive":
                    runs["naive"].append(naive.run(jpegs[: args.naive_frames]))
                    continue
                run = run_worker(s.override(prefix=f"bench-{what}-{i}"), pipeline if what == "worker" else replayed,
                                 jpegs, shape)
                runs[what].append(run)
                if not batches and what == "worker":
                    batches = bare_batches(pipeline, jpegs, run["results"], s.batch_size)
    figures = figures_of(args, s, pipeline, runs, jpegs)
    figures["seconds"] = round(time.perf_counter() - t_start, 1)
    report(figures, runs["naive"][0])
    emit(figures)
    return figures


def bare_run(pipeline: Pipeline, batches: list[np.ndarray], min_s: float = 0.5) -> dict:
    """The classifier alone over the worker's batches, repeated for at least ``min_s``: crops, wall and CPU time."""
    crops = sum(len(b) for b in batches)
    for b in batches[:1]:
        pipeline.runtime.predict_proba(b)
    t0, c0, reps = time.perf_counter(), time.process_time(), 0
    while crops and (reps == 0 or time.perf_counter() - t0 < min_s):
        for b in batches:
            pipeline.runtime.predict_proba(b)
        reps += 1
    return {"crops": crops * reps, "seconds": time.perf_counter() - t0, "cpu_s": time.process_time() - c0}


def median_rate(runs: list[dict], key: str) -> float:
    return float(np.median([r[key] / r["seconds"] for r in runs])) if runs else 0.0


def median_cpu_ms(runs: list[dict], per: str) -> float:
    return round(float(np.median([1000 * r["cpu_s"] / max(1, r[per]) for r in runs])), 2)


def figures_of(args: argparse.Namespace, s: Settings, pipeline: Pipeline, runs: dict[str, list[dict]],
               jpegs: list[bytes]) -> dict:
    w, first = runs["worker"], runs["worker"][0]
    worker_cps, worker_fps = median_rate(w, "crops"), median_rate(w, "frames")
    replay_cps, bare = median_rate(runs["replayed"], "crops"), median_rate(runs["bare"], "crops")
    nv = runs["naive"]
    naive_cps, naive_fps = median_rate(nv, "crops"), median_rate(nv, "frames")
    once = all(sorted(res.seq for res in r["results"]) == list(range(r["frames"]))
               and r["totals"].get("frames") == r["frames"] for r in w + runs["replayed"])
    split = {k: float(np.median([r[k] for r in w])) for k in ("detect_s", "infer_s", "seconds")}
    return {
        "bench": "pipeline", "machine": machine(), "model": str(s.model), "runtime": pipeline.runtime.name,
        "input_size": pipeline.meta.input_size, "batch_size": s.batch_size, "threads": s.threads or os.cpu_count(),
        "det_upscale": s.det_upscale, "frame_size": list(args.size), "faces_per_scene": args.faces,
        "frames": first["frames"], "crops": first["crops"], "rounds": args.rounds,
        "worker_frames_per_s": round(worker_fps, 2), "worker_crops_per_s": round(worker_cps, 1),
        "worker_replayed_detection_crops_per_s": round(replay_cps, 1),
        "bare_crops_per_s": round(bare, 1), "naive_crops_per_s": round(naive_cps, 1),
        "naive_frames_per_s": round(naive_fps, 2),
        "worker_vs_bare": ratio(worker_cps, bare), "worker_replayed_vs_bare": ratio(replay_cps, bare),
        "worker_vs_naive": ratio(worker_cps, naive_cps), "worker_frames_vs_naive": ratio(worker_fps, naive_fps),
        "cpu_ms": {"worker_per_frame": median_cpu_ms(w, "frames"),
                   "worker_replayed_per_frame": median_cpu_ms(runs["replayed"], "frames"),
                   "decode_detect_per_frame_1thread": round(float(np.median([1000 * r["detect_cpu_s"] / r["frames"]
                                                                             for r in nv])), 1),
                   "classify_per_crop": median_cpu_ms(runs["bare"], "crops"),
                   "redis_per_frame": round(float(np.median([1000 * r["redis_cpu_s"] / r["frames"] for r in w])), 3)},
        "jpeg_bytes_per_frame": round(float(np.mean([len(j) for j in jpegs]))),
        "stream_bytes_per_frame": round(first["stream_bytes"] / first["frames"]),
        "worker_split_s": {"decode_detect_crop": round(split["detect_s"], 2), "classify": round(split["infer_s"], 2),
                           "redis_commit_other": round(split["seconds"] - split["detect_s"] - split["infer_s"], 2),
                           "total": round(split["seconds"], 2)},
        "counted_once": once, "pending_after": max(r["pending"] for r in w),
        "targets": {"worker_vs_bare>=0.85": (ratio(worker_cps, bare) or 0) >= TARGET_VS_BARE,
                    "worker_replayed_vs_bare>=0.85": (ratio(replay_cps, bare) or 0) >= TARGET_VS_BARE,
                    "worker_vs_naive>=5": (ratio(worker_cps, naive_cps) or 0) >= TARGET_VS_NAIVE},
    }


def report(f: dict, nv: dict) -> None:
    show(f"pipeline (median of {f['rounds']} alternating rounds): {f['frames']} frames "
         f"{f['frame_size'][0]}x{f['frame_size'][1]}, {f['faces_per_scene']} faces pasted per scene, "
         f"{f['runtime']} @ {f['input_size']} px, worker batch {f['batch_size']} frames, {f['threads']} threads",
         ["what", "includes", "frames", "crops", "frames/s", "crops/s", "worker / this"],
         [["worker", "Redis read, decode, detect, crop, classify, events, commit", f["frames"], f["crops"],
           f["worker_frames_per_s"], f["worker_crops_per_s"], 1.0],
          ["worker, detection replayed", "the same, YuNet's boxes replayed from a table", f["frames"], f["crops"], "-",
           f["worker_replayed_detection_crops_per_s"],
           ratio(f["worker_crops_per_s"], f["worker_replayed_detection_crops_per_s"])],
          ["bare classifier", "forward pass + softmax on the worker's crops, same batches", "-", f["crops"], "-",
           f["bare_crops_per_s"], f["worker_vs_bare"]],
          ["naive", "decode, detect, then batch-1 eager torch per face", nv["frames"], nv["crops"],
           f["naive_frames_per_s"], f["naive_crops_per_s"], f["worker_vs_naive"]]])
    split, cpu = f["worker_split_s"], f["cpu_ms"]
    show("where the worker's wall time went (seconds; decode/detect/crop run on the thread pool)",
         ["decode+detect+crop", "classify (incl. preprocessing)", "Redis, commit, events, other", "total"],
         [[split["decode_detect_crop"], split["classify"], split["redis_commit_other"], split["total"]]])
    show("CPU time (ms of one core; process CPU time, all threads) and Redis cost",
         ["worker per frame", "worker per frame, detection replayed", "decode+detect per frame (1 thread)",
          "classify per crop (bare)", "redis-server per frame", "JPEG bytes/frame", "stream bytes/frame"],
         [[cpu["worker_per_frame"], cpu["worker_replayed_per_frame"], cpu["decode_detect_per_frame_1thread"],
           cpu["classify_per_crop"], cpu["redis_per_frame"], f["jpeg_bytes_per_frame"], f["stream_bytes_per_frame"]]])
    show("targets", ["target", "met"], [[k, v] for k, v in f["targets"].items()] +
         [["every frame counted once, none pending", f["counted_once"] and not f["pending_after"]]])


if __name__ == "__main__":
    main()
