"""1 vs 2 worker processes on one Redis: throughput of each setup, how cameras spread, nothing lost or doubled.

Workers split the cameras (docs/architecture.md, "Keyed by camera"): each camera's frames stream is
read by the one worker holding its lease. So for each setup (``PROCESSESxTHREADS``; default ``1x2``
then ``2x1``, the same two cores used either way) a fresh key prefix on one private Redis gets
``--cameras`` registered cameras with pre-filled frames streams (the frames dealt round-robin),
then that many ``python -m maskwatch worker`` processes start on it. Throughput is taken over the
steady part of the run: from the moment every worker holds its fair share of the cameras (their
worker leases) until 90% of the frames are counted, so model loading and the hand-over do not
count; the workers' CPU time per frame (all threads, from /proc) is taken over the same window.
Afterwards the run is checked the way an operator would: the totals equal the frames sent, every
(camera, ``seq``) appears exactly once in ``mw:results``, nothing is pending or dead-lettered, and
each worker's share (from the results' ``worker`` field) is shown.

The frames are keyframes of still composed scenes and tracking is off (``MASKWATCH_TRACKING=false``):
every face of every frame is classified, today's path, so the figures compare with earlier runs.

    python -m bench.scaling                    # about 2 minutes on 2 cores
    python -m bench.scaling --frames 16 --setups 1x1,2x1
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from collections import Counter
from pathlib import Path

import redis

from bench.common import (
    BenchError,
    child_env,
    cpu_seconds,
    emit,
    frame_jpegs,
    machine,
    model_for_children,
    model_path,
    parse_pair,
    prefill,
    private_redis,
    ratio,
    scenes,
    show,
    spawn,
    stop,
    tail,
)
from maskwatch.codec import decode_result
from maskwatch.keys import Keys
from maskwatch.leases import WORKER
from maskwatch.streams import site_queue


def holders(r: redis.Redis, keys: Keys, cams: list[str]) -> Counter[str]:
    """Cameras held per worker (their worker leases)."""
    held = r.mget([keys.lease(cam, WORKER) for cam in cams])
    return Counter(h.decode() for h in held if h is not None)


def counted(r: redis.Redis, keys: Keys, cams: list[str]) -> int:
    """Frames counted over the cameras (their totals)."""
    pipe = r.pipeline(transaction=False)
    for cam in cams:
        pipe.hget(keys.totals(cam), "frames")
    return sum(int(v or 0) for v in pipe.execute())


def run_setup(url: str, prefix: str, procs: int, threads: int, cams: list[str], jpegs: list[bytes],
              shape: tuple[int, int], batch_size: int | None, timeout: float, logdir: Path) -> dict:
    """Pre-fill, start the workers, time the steady part, check every frame was counted exactly once."""
    r, keys = redis.Redis.from_url(url), Keys(prefix)
    n = sum(prefill(r, keys, cam, jpegs[i::len(cams)], shape) for i, cam in enumerate(cams))
    env = child_env(MASKWATCH_REDIS_URL=url, MASKWATCH_PREFIX=prefix, MASKWATCH_MODEL=str(model_path()),
                    MASKWATCH_THREADS=str(threads), MASKWATCH_LOG_LEVEL="WARNING", MASKWATCH_TRACKING="false",
                    **({"MASKWATCH_BATCH_SIZE": str(batch_size)} if batch_size else {}))
    names = [f"{prefix}-w{i}" for i in range(procs)]
    share = math.ceil(len(cams) / procs)
    log = logdir / f"{prefix}.log"
    workers = [spawn(["-m", "maskwatch", "worker", "--name", name, "--metrics-port", "0"], env, log) for name in names]
    try:
        deadline = time.monotonic() + timeout
        # (time, frames counted, workers' CPU seconds) when the first worker held cameras, when every
        # worker held its fair share, and at 90%
        first: tuple[float, int, float] | None = None
        start: tuple[float, int, float] | None = None
        end: tuple[float, int, float] | None = None
        while True:
            now, done, held = time.monotonic(), counted(r, keys, cams), holders(r, keys, cams)
            balanced = set(held) >= set(names) and max(held.values()) <= share

            def mark(now: float = now, done: int = done) -> tuple[float, int, float]:
                return now, done, sum(cpu_seconds(w.pid) for w in workers)

            first = first or (mark() if held else None)
            start = start or (mark() if balanced else None)
            end = end or (mark() if start and done >= 0.9 * n else None)
            if done >= n:  # tiny runs may end before every worker took its share
                start, end = start or first or mark(), end or mark()
                break
            if now > deadline or any(w.poll() is not None for w in workers):
                raise BenchError(f"setup {procs}x{threads}: {done} of {n} frames counted before "
                                 f"{'the timeout' if now > deadline else 'a worker exited'}; log:\n{tail(log)}")
            time.sleep(0.05)
    finally:
        for w in workers:
            stop(w)
    window = max(1e-6, end[0] - start[0])
    results = [decode_result(f) for _, f in r.xrange(keys.results)]
    seqs = Counter((res.cam, res.seq) for res in results if res.cam in cams)
    by_worker = Counter(res.worker for res in results if res.cam in cams)
    cams_by_worker = {name: sorted({res.cam for res in results if res.worker == name}) for name in names}
    return {
        "setup": f"{procs}x{threads}", "processes": procs, "threads": threads, "cameras": len(cams), "frames": n,
        "frames_per_s": round((end[1] - start[1]) / window, 2), "window_s": round(window, 2),
        "cpu_ms_per_frame": round(1000 * (end[2] - start[2]) / max(1, end[1] - start[1]), 1),
        "by_worker": {name: by_worker.get(name, 0) for name in names}, "cameras_by_worker": cams_by_worker,
        "totals_frames": counted(r, keys, cams), "results": sum(seqs.values()),
        "lost": n - len(seqs), "counted_twice": sum(1 for c in seqs.values() if c > 1),
        "pending": site_queue(r, keys, cams).pending, "dead_lettered": r.xlen(keys.dlq),
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.scaling", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", type=Path, help="classifier artifact (default: MASKWATCH_MODEL, else the shipped model)")
    p.add_argument("--setups", default="1x2,2x1",
                   help="comma-separated PROCESSESxTHREADS; the first is the baseline of the ratios (default 1x2,2x1)")
    p.add_argument("--frames", type=int, default=96, help="frames pre-filled for each setup (default 96)")
    p.add_argument("--cameras", type=int, default=4,
                   help="cameras the frames are dealt to; workers split the cameras (default 4)")
    p.add_argument("--faces", type=int, default=6, help="faces pasted per scene (default 6)")
    p.add_argument("--batch-size", type=int, help="worker batch size in frames (default: the settings', 16)")
    p.add_argument("--timeout", type=float, default=300, help="seconds a setup may take (default 300)")
    args = p.parse_args(argv)
    try:
        args.setups = [parse_pair(t, "PROCESSESxTHREADS", "2x1") for t in args.setups.split(",") if t.strip()]
    except argparse.ArgumentTypeError as exc:
        p.error(str(exc))
    if args.frames < 1 or args.cameras < 1 or not args.setups:
        p.error("--frames and --cameras must be positive and --setups name at least one setup")
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    model = model_for_children(args.model)
    t_start = time.perf_counter()
    made = scenes(min(16, args.frames), args.faces)
    images = [made[i % len(made)].image for i in range(args.frames)]
    jpegs, shape = frame_jpegs(images), images[0].shape[:2]
    cams = [f"scale{i}" for i in range(args.cameras)]
    runs = []
    with private_redis() as server, tempfile.TemporaryDirectory(prefix="mwbench-scale-") as logdir:
        for i, (procs, threads) in enumerate(args.setups):
            runs.append(run_setup(server.url, f"scale{i}-{procs}x{threads}", procs, threads, cams, jpegs,
                                  shape, args.batch_size, args.timeout, Path(logdir)))
    base = runs[0]["frames_per_s"]
    for run in runs:
        run["ratio_vs_first"] = ratio(run["frames_per_s"], base)
        run["exactly_once"] = (run["totals_frames"] == run["frames"] == run["results"] and not run["lost"]
                               and not run["counted_twice"] and not run["pending"] and not run["dead_lettered"])
        run["spread"] = all(v > 0 for v in run["by_worker"].values())
    show(f"worker processes on one Redis ({args.frames} pre-filled frames over {args.cameras} cameras each; "
         f"frames/s over the steady window; ratio: to {runs[0]['setup']})",
         ["setup (procs x threads)", "frames/s", "ratio", "CPU ms/frame", "frames by worker", "lost", "twice",
          "pending", "dead-lettered", "exactly once"],
         [[r["setup"], r["frames_per_s"], r["ratio_vs_first"], r["cpu_ms_per_frame"],
           " ".join(f"{k.rsplit('-', 1)[1]}={v}" for k, v in r["by_worker"].items()), r["lost"], r["counted_twice"],
           r["pending"], r["dead_lettered"], r["exactly_once"]] for r in runs])
    figures = {"bench": "scaling", "machine": machine(), "model": str(model), "setups": runs,
               "seconds": round(time.perf_counter() - t_start, 1)}
    emit(figures)
    return figures


if __name__ == "__main__":
    main()
