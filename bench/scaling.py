"""1 vs 2 worker processes on one Redis: throughput of each setup, how frames spread, nothing lost or doubled.

For each setup (``PROCESSESxTHREADS``; default ``1x2`` then ``2x1``, the same two cores used either way)
a fresh key prefix on one private Redis gets a pre-filled frames stream, then that many
``python -m maskwatch worker`` processes start on it. Throughput is taken over the steady part of
the run: from the moment every worker has joined the group (it shows in ``XINFO CONSUMERS``) until
90% of the frames are counted, so model loading does not count; the workers' CPU time per frame
(all threads, from /proc) is taken over the same window. Afterwards the run is checked the way
an operator would: the totals equal the frames sent, every ``seq`` appears exactly once in
``mw:results``, nothing is pending or dead-lettered, and each worker's share (from the results'
``worker`` field and ``XINFO CONSUMERS``) is shown.

    python -m bench.scaling                    # about 2 minutes on 2 cores
    python -m bench.scaling --frames 16 --setups 1x1,2x1
"""

from __future__ import annotations

import argparse
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

CAM = "scale"


def consumers(r: redis.Redis, keys: Keys) -> list[dict]:
    try:
        return [{k: (v.decode() if isinstance(v, bytes) else v) for k, v in c.items()}
                for c in r.xinfo_consumers(keys.frames, keys.group)]
    except redis.ResponseError:  # the group does not exist yet
        return []


def counted(r: redis.Redis, keys: Keys) -> int:
    return int(r.hget(keys.totals(CAM), "frames") or 0)


def run_setup(url: str, prefix: str, procs: int, threads: int, jpegs: list[bytes], shape: tuple[int, int],
              batch_size: int | None, timeout: float, logdir: Path) -> dict:
    """Pre-fill, start the workers, time the steady part, check every frame was counted exactly once."""
    r, keys = redis.Redis.from_url(url), Keys(prefix)
    n = prefill(r, keys, CAM, jpegs, shape)
    env = child_env(MASKWATCH_REDIS_URL=url, MASKWATCH_PREFIX=prefix, MASKWATCH_MODEL=str(model_path()),
                    MASKWATCH_THREADS=str(threads), MASKWATCH_LOG_LEVEL="WARNING",
                    **({"MASKWATCH_BATCH_SIZE": str(batch_size)} if batch_size else {}))
    names = [f"{prefix}-w{i}" for i in range(procs)]
    log = logdir / f"{prefix}.log"
    workers = [spawn(["-m", "maskwatch", "worker", "--name", name, "--metrics-port", "0"], env, log) for name in names]
    try:
        deadline = time.monotonic() + timeout
        # (time, frames counted, workers' CPU seconds) when the first and the last worker joined, and at 90%
        first: tuple[float, int, float] | None = None
        start: tuple[float, int, float] | None = None
        end: tuple[float, int, float] | None = None
        while True:
            now, done, joined = time.monotonic(), counted(r, keys), len(consumers(r, keys))
            mark = lambda now=now, done=done: (now, done, sum(cpu_seconds(w.pid) for w in workers))
            first = first or (mark() if joined else None)
            start = start or (mark() if joined >= procs else None)
            end = end or (mark() if start and done >= 0.9 * n else None)
            if done >= n:  # tiny runs may end before every worker joined
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
    seqs = Counter(res.seq for res in results if res.cam == CAM)
    by_worker = Counter(res.worker for res in results if res.cam == CAM)
    totals = {k.decode(): int(v) for k, v in r.hgetall(keys.totals(CAM)).items()}
    return {
        "setup": f"{procs}x{threads}", "processes": procs, "threads": threads, "frames": n,
        "frames_per_s": round((end[1] - start[1]) / window, 2), "window_s": round(window, 2),
        "cpu_ms_per_frame": round(1000 * (end[2] - start[2]) / max(1, end[1] - start[1]), 1),
        "by_worker": {name: by_worker.get(name, 0) for name in names},
        "consumers": {c["name"]: {"pending": c["pending"], "idle_ms": c["idle"]} for c in consumers(r, keys)},
        "totals_frames": totals.get("frames", 0), "results": sum(seqs.values()),
        "lost": n - len(seqs), "counted_twice": sum(1 for c in seqs.values() if c > 1),
        "pending": r.xpending(keys.frames, keys.group)["pending"], "dead_lettered": r.xlen(keys.dlq),
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.scaling", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", type=Path, help="classifier artifact (default: MASKWATCH_MODEL, else the shipped model)")
    p.add_argument("--setups", default="1x2,2x1",
                   help="comma-separated PROCESSESxTHREADS; the first is the baseline of the ratios (default 1x2,2x1)")
    p.add_argument("--frames", type=int, default=96, help="frames pre-filled for each setup (default 96)")
    p.add_argument("--faces", type=int, default=6, help="faces pasted per scene (default 6)")
    p.add_argument("--batch-size", type=int, help="worker batch size in frames (default: the settings', 16)")
    p.add_argument("--timeout", type=float, default=300, help="seconds a setup may take (default 300)")
    args = p.parse_args(argv)
    try:
        args.setups = [parse_pair(t, "PROCESSESxTHREADS", "2x1") for t in args.setups.split(",") if t.strip()]
    except argparse.ArgumentTypeError as exc:
        p.error(str(exc))
    if args.frames < 1 or not args.setups:
        p.error("--frames must be positive and --setups name at least one setup")
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    model = model_for_children(args.model)
    t_start = time.perf_counter()
    made = scenes(min(16, args.frames), args.faces)
    images = [made[i % len(made)].image for i in range(args.frames)]
    jpegs, shape = frame_jpegs(images), images[0].shape[:2]
    runs = []
    with private_redis() as server, tempfile.TemporaryDirectory(prefix="mwbench-scale-") as logdir:
        for i, (procs, threads) in enumerate(args.setups):
            runs.append(run_setup(server.url, f"scale{i}-{procs}x{threads}", procs, threads, jpegs, shape,
                                  args.batch_size, args.timeout, Path(logdir)))
    base = runs[0]["frames_per_s"]
    for run in runs:
        run["ratio_vs_first"] = ratio(run["frames_per_s"], base)
        run["exactly_once"] = (run["totals_frames"] == run["frames"] == run["results"] and not run["lost"]
                               and not run["counted_twice"] and not run["pending"] and not run["dead_lettered"])
        run["spread"] = all(v > 0 for v in run["by_worker"].values())
    show(f"worker processes on one Redis ({args.frames} pre-filled frames each; frames/s over the steady window; "
         f"ratio: to {runs[0]['setup']})",
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
