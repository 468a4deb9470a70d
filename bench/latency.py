"""Capture-to-result latency of the whole system under ``maskwatch up``, and how many cameras it holds.

Each trial writes one looping video file per camera (composed scenes with faces, at the camera
rate, so the producer decodes no frame it then throws away), starts ``maskwatch up --camera
camK=FILE ... --loop --fps F --workers W --no-dashboard --no-jobs`` as a child process on a
private Redis, waits for results from every camera and for the start-up backlog to drain (or
at most ``--warmup`` seconds), then takes every frame the
producer sent during the measuring window (from ``mw:frames``) and its result (from ``mw:results``):
latency is ``done_ts - ts``, result written minus capture time. Frames of the window without a
result after a grace period count as infinitely late, so a backlog can never flatter the
percentiles. A camera count is *held* when p95 < 500 ms, every frame of the window has its
result, and the producer sent at least 95% of the frames due (it skips frames at the source
when the workers lag).

After the fixed trials (1, 4, 8 cameras) a capacity search doubles the camera count from the
largest held one and bisects between held and not held.

The machine may be shared, so each trial also takes the whole system's CPU time per frame (every
process of ``maskwatch up`` and the redis-server, over the window) and turns it into an estimate of
the cameras the same machine carries when idle (75% of every core): a figure other load does not
move, unlike the latency.

    python -m bench.latency                        # about 5 minutes on 2 cores
    python -m bench.latency --cameras 1,2 --no-search --duration 5 --warmup 3
"""

from __future__ import annotations

import argparse
import math
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import redis

from bench.common import (
    BenchError,
    child_env,
    emit,
    machine,
    model_for_children,
    model_path,
    parse_pair,
    percentiles,
    private_redis,
    ratio,
    redis_cpu_seconds,
    scenes,
    session_cpu_seconds,
    show,
    spawn,
    stop,
    tail,
)
from maskwatch.codec import decode_result
from maskwatch.keys import Keys
from bench.scenes.compose import write_video

P95_LIMIT_MS = 500.0
HELD_SHARE = 0.95


def camera_videos(folder: Path, cameras: int, frames: int, fps: float, faces: int, size: tuple[int, int]) -> list[Path]:
    """One looping MJPG file per camera, each from its own scenes, made once and reused across trials."""
    paths = []
    for i in range(cameras):
        path = folder / f"cam{i}.avi"
        if not path.exists():
            write_video(path, [s.image for s in scenes(frames, faces, size, seed=1000 + i)], fps=fps)
        paths.append(path)
    return paths


def frames_in(r: redis.Redis, keys: Keys, start_ms: int, end_ms: int) -> list[tuple[str, int, int]]:
    """(camera, seq, capture ts) of every frame added to the stream within [start_ms, end_ms)."""
    out: list[tuple[str, int, int]] = []
    cursor = f"{start_ms}-0"
    while True:
        chunk = r.xrange(keys.frames, min=cursor, max=f"{end_ms - 1}-18446744073709551615", count=500)
        for entry_id, fields in chunk:
            out.append((fields[b"cam"].decode(), int(fields[b"seq"]), int(fields[b"ts"])))
        if len(chunk) < 500:
            return out
        ms, seq = chunk[-1][0].decode().split("-")
        cursor = f"{ms}-{int(seq) + 1}"


def latencies(r: redis.Redis, keys: Keys, frames: list[tuple[str, int, int]], since_ms: int) -> list[float]:
    """Result latency (ms) of each frame; ``inf`` for a frame without a result."""
    done: dict[tuple[str, int], float] = {}
    for _, fields in r.xrange(keys.results, min=f"{since_ms}-0"):
        res = decode_result(fields)
        done[(res.cam, res.seq)] = res.done_ts - res.ts
    return [done.get((cam, seq), math.inf) for cam, seq, _ in frames]


def settle(r: redis.Redis, keys: Keys, timeout: float, quiet_s: float = 2.0) -> None:
    """Wait (at most ``timeout``) until the start-up backlog is gone: the newest results are under the limit for ``quiet_s``."""
    deadline, since = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        newest = [decode_result(f) for _, f in r.xrevrange(keys.results, count=10)]
        if newest and max(res.done_ts - res.ts for res in newest) < P95_LIMIT_MS:
            since = since or time.monotonic()
            if time.monotonic() - since >= quiet_s:
                return
        else:
            since = None
        time.sleep(0.2)


def skipped(r: redis.Redis, keys: Keys, cams: list[str]) -> int:
    return sum(int(r.hget(keys.cam_status(c), "skipped") or 0) for c in cams)


def trial(url: str, prefix: str, videos: list[Path], args: argparse.Namespace, logdir: Path) -> dict:
    """One ``maskwatch up`` run with ``len(videos)`` cameras; latency percentiles and whether it held."""
    r, keys = redis.Redis.from_url(url), Keys(prefix)
    cams = [f"cam{i}" for i in range(len(videos))]
    env = child_env(MASKWATCH_REDIS_URL=url, MASKWATCH_PREFIX=prefix, MASKWATCH_MODEL=str(model_path()),
                    MASKWATCH_PRODUCER_METRICS_PORT="0", MASKWATCH_WORKER_METRICS_PORT="0",
                    MASKWATCH_JOBS_METRICS_PORT="0", MASKWATCH_LOG_LEVEL="WARNING",
                    MASKWATCH_STATE_DIR=str(logdir / prefix))
    cmd = ["-m", "maskwatch", "up", "--loop", "--fps", str(args.fps), "--workers", str(args.workers),
           "--no-dashboard", "--no-jobs"] + [a for cam, v in zip(cams, videos) for a in ("--camera", f"{cam}={v}")]
    if args.batch_size:
        cmd += ["--batch-size", str(args.batch_size)]
    log = logdir / f"{prefix}.log"
    proc = spawn(cmd, env, log)
    try:
        deadline = time.monotonic() + args.start_timeout
        while {res.cam for _, f in r.xrevrange(keys.results, count=200) for res in [decode_result(f)]} < set(cams):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise BenchError(f"{len(cams)} camera(s): no results from every camera within {args.start_timeout:.0f} s; "
                                 f"log:\n{tail(log)}")
            time.sleep(0.2)
        settle(r, keys, args.warmup)
        start_ms, skipped0 = int(time.time() * 1000), skipped(r, keys, cams)
        cpu0 = session_cpu_seconds(proc.pid) + redis_cpu_seconds(r)
        time.sleep(args.duration)
        end_ms = int(time.time() * 1000)
        cpu = session_cpu_seconds(proc.pid) + redis_cpu_seconds(r) - cpu0
        processed = len(r.xrange(keys.results, min=f"{start_ms}-0", max=f"{end_ms - 1}-18446744073709551615"))
        sent = frames_in(r, keys, start_ms, end_ms)
        grace_end = time.monotonic() + args.grace
        lat = latencies(r, keys, sent, start_ms)
        while any(math.isinf(v) for v in lat) and time.monotonic() < grace_end:
            time.sleep(0.25)
            lat = latencies(r, keys, sent, start_ms)
        skipped_n = skipped(r, keys, cams) - skipped0
    finally:
        stop(proc, timeout=30)
    due = len(cams) * args.fps * (end_ms - start_ms) / 1000
    missing = sum(math.isinf(v) for v in lat)
    finite = [v for v in lat if not math.isinf(v)]
    pct = percentiles(finite)
    # With results missing, a percentile that reaches into them is unknown: report it as None (not held).
    for q in (50, 95, 99):
        if finite and missing and q / 100 * len(lat) > len(finite):
            pct[f"p{q}"] = None
    p95 = pct["p95"]
    # The whole system's CPU per frame (launcher, producer, workers, Redis) over the window: it holds
    # whatever else loads the machine, so it gives the capacity of the same machine when idle.
    cpu_ms = 1000 * cpu / processed if processed else None
    held = bool(p95 is not None and p95 < P95_LIMIT_MS and not missing and len(sent) >= HELD_SHARE * due)
    return {"cameras": len(cams), "fps_per_camera": args.fps, "workers": args.workers, "frames": len(sent),
            "frames_due": round(due), "sent_share": ratio(len(sent), due), "results_missing": missing,
            "skipped_backpressure": skipped_n, "latency_ms": pct,
            "mean_ms": round(float(np.mean(finite)), 1) if finite else None, "held": held,
            "system_cpu_ms_per_frame": round(cpu_ms, 1) if cpu_ms else None,
            "idle_estimate_cameras": idle_estimate(cpu_ms, args.fps) if cpu_ms else None}


def idle_estimate(cpu_ms_per_frame: float, fps: float, usable: float = 0.75) -> int:
    """Cameras this machine would carry when nothing else runs: ``usable`` of every core, at the measured cost."""
    return int(usable * (os.cpu_count() or 1) * 1000 / (cpu_ms_per_frame * fps))


def search(run, held_counts: list[int], failed_counts: list[int], limit: int) -> int:
    """The most cameras held: double from the largest held count, then bisect; ``run(n)`` says if n held."""
    lo = max(held_counts, default=0)
    hi = min((n for n in failed_counts if n > lo), default=None)
    while hi is None:
        nxt = min(limit, max(1, lo * 2))
        if nxt <= lo:
            return lo
        if run(nxt):
            lo = nxt
        else:
            hi = nxt
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if run(mid):
            lo = mid
        else:
            hi = mid
    return lo


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.latency", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", type=Path, help="classifier artifact (default: MASKWATCH_MODEL, else the shipped model)")
    p.add_argument("--cameras", default="1,4,8", help="camera counts of the fixed trials (default 1,4,8)")
    p.add_argument("--fps", type=float, default=5.0, help="frames per second per camera (default 5)")
    p.add_argument("--workers", type=int, default=2, help="worker processes of `maskwatch up` (default 2: one per core)")
    p.add_argument("--batch-size", type=int, help="worker batch size (default: the settings', 16)")
    p.add_argument("--faces", type=int, default=4, help="faces per scene (default 4)")
    p.add_argument("--size", type=parse_pair, default=(640, 360), help="camera frame size WxH (default 640x360)")
    p.add_argument("--clip-frames", type=int, default=20, help="frames in each camera's looping clip (default 20)")
    p.add_argument("--warmup", type=float, default=30.0,
                   help="at most this many seconds for the start-up backlog to drain once every camera has results (default 30)")
    p.add_argument("--duration", type=float, default=12.0, help="seconds of the measuring window (default 12)")
    p.add_argument("--grace", type=float, default=5.0, help="seconds the window's last frames may take (default 5)")
    p.add_argument("--start-timeout", type=float, default=90.0, help="seconds until every camera has results (default 90)")
    p.add_argument("--no-search", action="store_true", help="only the fixed trials, no capacity search")
    p.add_argument("--max-cameras", type=int, default=32, help="upper bound of the capacity search (default 32)")
    args = p.parse_args(argv)
    try:
        args.cameras = sorted({int(v) for v in args.cameras.split(",") if v.strip()})
    except ValueError:
        p.error(f"--cameras {args.cameras!r}: expected integers like 1,4,8")
    if not args.cameras or min(args.cameras) < 1 or args.fps <= 0 or args.workers < 1:
        p.error("camera counts, --fps and --workers must be positive")
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    model = model_for_children(args.model)
    t_start = time.perf_counter()
    trials: dict[int, dict] = {}
    with private_redis() as server, tempfile.TemporaryDirectory(prefix="mwbench-lat-") as tmp:
        folder = Path(tmp)

        def run(n: int) -> bool:
            if n not in trials:
                videos = camera_videos(folder, n, args.clip_frames, args.fps, args.faces, args.size)
                trials[n] = trial(server.url, f"lat{n}", videos, args, folder)
                t = trials[n]
                print(f"{n} camera(s): p95 {t['latency_ms']['p95']} ms, held {t['held']}", flush=True)
            return trials[n]["held"]

        for n in args.cameras:
            run(n)
        capacity = None
        if not args.no_search:
            capacity = search(run, [n for n, t in trials.items() if t["held"]],
                              [n for n, t in trials.items() if not t["held"]], args.max_cameras)
    rows = [trials[n] for n in sorted(trials)]
    show(f"capture-to-result latency under `maskwatch up` ({args.workers} worker processes, {args.fps:g} fps per camera, "
         f"{args.size[0]}x{args.size[1]} frames with {args.faces} faces, {args.duration:g} s window)",
         ["cameras", "frames/s due", "sent share", "skipped", "missing", "p50 ms", "p95 ms", "p99 ms", "held (p95<500)",
          "system CPU ms/frame", "cameras if idle (est.)"],
         [[t["cameras"], t["cameras"] * args.fps, t["sent_share"], t["skipped_backpressure"], t["results_missing"],
           t["latency_ms"]["p50"], t["latency_ms"]["p95"], t["latency_ms"]["p99"], t["held"],
           t["system_cpu_ms_per_frame"], t["idle_estimate_cameras"]] for t in rows])
    eight = trials.get(8)
    figures = {"bench": "latency", "machine": machine(), "model": str(model), "workers": args.workers,
               "fps_per_camera": args.fps, "frame_size": list(args.size), "faces": args.faces, "trials": rows,
               "capacity_cameras": capacity, "target_8_cameras_p95_under_500ms": eight["held"] if eight else None,
               "seconds": round(time.perf_counter() - t_start, 1)}
    if capacity is not None:
        print(f"capacity: {capacity} camera(s) at {args.fps:g} fps with p95 < {P95_LIMIT_MS:.0f} ms\n", flush=True)
    emit(figures)
    return figures


if __name__ == "__main__":
    main()
