"""Capture-to-result latency of the whole system under ``maskwatch up``, and how many cameras it holds.

Cameras are looping video files of walking people (bench/scenes/walking.py, MJPG ``.avi``): half
of them ``busy`` scenes (several people crossing at once), half ``quiet`` ones (about one person a
minute), each camera its own seeded scene. Two paths are measured in the same run:

- ``gated``: the defaults, motion gating in the producer and tracking in the workers;
- ``today``: every frame sent whole and every face classified (``MASKWATCH_MOTION=false
  MASKWATCH_TRACKING=false``).

A trial starts ``maskwatch up --camera camK=FILE ... --loop --fps F --workers W --no-dashboard
--no-jobs`` as a child process on a private Redis, waits for results from every camera and for
the start-up backlog to drain (or at most ``--warmup`` seconds), then takes every frame the
producer sent during the measuring window (from the cameras' frames streams) and its result
(from ``mw:results``): latency is ``done_ts - ts``, result written minus capture time. Frames of
the window without a result after a grace period count as infinitely late, so a backlog can
never flatter the percentiles. A camera count is *held* when p95 < 500 ms, every frame of the
window has its result, and the frames due are accounted for: at least 95% of them were either
sent (and so analysed) or counted ``idle`` by the motion gate (the cameras' status hashes, counted
between two of their once-a-second publications); what is missing was skipped at the source
because the workers lagged.

After the fixed trials (``--cameras``) a capacity search per path doubles the camera count from
the largest held one and bisects between held and not held.

CPU: each trial takes the CPU time of every process of ``maskwatch up`` and of the redis-server
over the window, per camera-second, and per frame sent. ``cpu_ms_per_camera_s_quiet`` and
``_busy`` come from extra trials with only quiet or only busy cameras (``--cpu-cameras`` of
them, a count both paths hold). The machine may be shared, so each trial also turns its CPU cost
into an estimate of the cameras the same machine carries when idle (75% of every core): a figure
other load moves less than the latency.

    python -m bench.latency                        # 15-25 minutes on 2 cores
    python -m bench.latency --paths gated --cameras 8 --no-search --cpu-cameras 0
"""

from __future__ import annotations

import argparse
import math
import os
import tempfile
import time
from collections import Counter
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
    session_cpu_seconds,
    show,
    spawn,
    stop,
    tail,
)
from bench.scenes.walking import FacePool, face_pool, preset_scene
from maskwatch.codec import decode_result
from maskwatch.keys import Keys
from maskwatch.utils import now_ms

P95_LIMIT_MS = 500.0
HELD_SHARE = 0.95
PATHS = {  # the environment that selects each path in every process of `maskwatch up`
    "gated": {"MASKWATCH_MOTION": "true", "MASKWATCH_TRACKING": "true"},
    "today": {"MASKWATCH_MOTION": "false", "MASKWATCH_TRACKING": "false"},
}
MIXES = ("mixed", "quiet", "busy")


def kinds(mix: str, cameras: int) -> list[str]:
    """The scene kind of each camera: ``mixed`` alternates busy and quiet, starting with busy.

    >>> kinds("mixed", 3), kinds("quiet", 2)
    (['busy', 'quiet', 'busy'], ['quiet', 'quiet'])
    """
    return [("busy", "quiet")[i % 2] if mix == "mixed" else mix for i in range(cameras)]


class Videos:
    """Looping walking-people videos, one per (kind, camera number), written once and reused across trials."""

    def __init__(self, folder: Path, seconds: float, fps: float, size: tuple[int, int]):
        self.folder, self.seconds, self.fps, self.size = folder, seconds, fps, size
        self._pool: FacePool | None = None

    def get(self, kind: str, i: int) -> Path:
        path = self.folder / f"{kind}{i}.avi"
        if not path.exists():
            if self._pool is None:
                self._pool = face_pool()
            scene = preset_scene(kind, seed=1000 + i, pool=self._pool, duration_s=self.seconds, fps=self.fps,
                                 size=self.size)
            scene.write_video(path)
        return path

    def for_trial(self, mix: str, cameras: int) -> list[Path]:
        return [self.get(kind, i) for i, kind in enumerate(kinds(mix, cameras))]


def frames_in(r: redis.Redis, keys: Keys, cams: list[str], start_ms: int, end_ms: int) -> list[tuple[str, int, int]]:
    """(camera, seq, capture ts) of every frame added to the cameras' streams within [start_ms, end_ms)."""
    out: list[tuple[str, int, int]] = []
    for cam in cams:
        cursor = f"{start_ms}-0"
        while True:
            chunk = r.xrange(keys.frames(cam), min=cursor, max=f"{end_ms - 1}-18446744073709551615", count=500)
            for _, fields in chunk:
                out.append((fields[b"cam"].decode(), int(fields[b"seq"]), int(fields[b"ts"])))
            if len(chunk) < 500:
                break
            ms, seq = chunk[-1][0].decode().split("-")
            cursor = f"{ms}-{int(seq) + 1}"
    return out


def latencies(r: redis.Redis, keys: Keys, frames: list[tuple[str, int, int]], since_ms: int) -> list[float]:
    """Result latency (ms) of each frame; ``inf`` for a frame without a result."""
    done: dict[tuple[str, int], float] = {}
    for _, fields in r.xrange(keys.results, min=f"{since_ms}-0"):
        res = decode_result(fields)
        done[(res.cam, res.seq)] = res.done_ts - res.ts
    return [done.get((cam, seq), math.inf) for cam, seq, _ in frames]


def settle(r: redis.Redis, keys: Keys, timeout: float, quiet_s: float = 2.0) -> None:
    """Wait (at most ``timeout``) until the start-up backlog is gone.

    Gone: the newest results have been under the latency limit for ``quiet_s``.
    """
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


def status_counts(r: redis.Redis, keys: Keys, cams: list[str]) -> tuple[Counter[str], int]:
    """The producer's counters summed over the cameras' status hashes (sent, keyframes, idle, skipped,
    dropped), and when they were published (epoch ms; the newest camera's)."""
    names = ("sent", "keyframes", "idle", "skipped", "dropped")
    pipe = r.pipeline(transaction=False)
    for cam in cams:
        pipe.hmget(keys.cam_status(cam), [*names, "updated"])
    out: Counter[str] = Counter()
    updated = 0
    for values in pipe.execute():
        for name, v in zip(names, values):
            out[name] += int(v or 0)
        updated = max(updated, round(1000 * float(values[-1] or 0)))
    return out, updated


def accounting(cameras: int, before: tuple[Counter[str], int], after: tuple[Counter[str], int], fps: float) -> dict:
    """Frames due between two publications of the status hashes, and how many were sent, idle or skipped.

    The status hashes are written once a second, so every count is the difference of the same two
    publications' counters, not taken over the latency window: counting the frames sent by their
    stream ids instead could take in a frame sent while a publication was being made, one more
    than its counters say.
    """
    (c0, u0), (c1, u1) = before, after
    counts = c1 - c0
    due = cameras * fps * (u1 - u0) / 1000
    return {"due": due, **{k: counts[k] for k in ("sent", "keyframes", "idle", "skipped", "dropped")}}


def trial(url: str, path: str, mix: str, videos: list[Path], args: argparse.Namespace, logdir: Path) -> dict:
    """One ``maskwatch up`` run of ``path`` with ``len(videos)`` cameras; latency, accounting, CPU, held or not."""
    prefix = f"lat-{path}-{mix}{len(videos)}"
    r, keys = redis.Redis.from_url(url), Keys(prefix)
    cams = [f"cam{i}" for i in range(len(videos))]
    env = child_env(MASKWATCH_REDIS_URL=url, MASKWATCH_PREFIX=prefix, MASKWATCH_MODEL=str(model_path()),
                    MASKWATCH_PRODUCER_METRICS_PORT="0", MASKWATCH_WORKER_METRICS_PORT="0",
                    MASKWATCH_JOBS_METRICS_PORT="0", MASKWATCH_LOG_LEVEL="WARNING",
                    MASKWATCH_STATE_DIR=str(logdir / prefix), MASKWATCH_MEDIA_DIR=str(logdir), **PATHS[path])
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
                raise BenchError(f"{path}, {len(cams)} camera(s): no results from every camera within "
                                 f"{args.start_timeout:.0f} s; log:\n{tail(log)}")
            time.sleep(0.2)
        settle(r, keys, args.warmup)
        start_ms, status0 = now_ms(), status_counts(r, keys, cams)
        cpu0 = session_cpu_seconds(proc.pid) + redis_cpu_seconds(r)
        time.sleep(args.duration)
        end_ms = now_ms()
        cpu = session_cpu_seconds(proc.pid) + redis_cpu_seconds(r) - cpu0
        counts = accounting(len(cams), status0, status_counts(r, keys, cams), args.fps)
        sent = frames_in(r, keys, cams, start_ms, end_ms)
        grace_end = time.monotonic() + args.grace
        lat = latencies(r, keys, sent, start_ms)
        while any(math.isinf(v) for v in lat) and time.monotonic() < grace_end:
            time.sleep(0.25)
            lat = latencies(r, keys, sent, start_ms)
    finally:
        stop(proc, timeout=30)
    return figures_of(path, mix, len(cams), args.fps, args.workers, (end_ms - start_ms) / 1000, sent, lat, counts,
                      cpu)


def figures_of(path: str, mix: str, cameras: int, fps: float, workers: int, window_s: float,
               sent: list[tuple[str, int, int]], lat: list[float], counts: dict, cpu_s: float) -> dict:
    """A trial's figures; held when p95 < 500 ms, no result missing, and >= 95% of the frames due sent or idle."""
    due = cameras * fps * window_s
    missing = sum(math.isinf(v) for v in lat)
    finite = [v for v in lat if not math.isinf(v)]
    pct = percentiles(finite)
    # With results missing, a percentile that reaches into them is unknown: report it as None (not held).
    for q in (50, 95, 99):
        if finite and missing and q / 100 * len(lat) > len(finite):
            pct[f"p{q}"] = None
    p95 = pct["p95"]
    accounted = ratio(counts["sent"] + counts["idle"], counts["due"])
    held = bool(p95 is not None and p95 < P95_LIMIT_MS and not missing and (accounted or 0) >= HELD_SHARE)
    per_cam_s = 1000 * cpu_s / (cameras * window_s)
    return {"path": path, "mix": mix, "cameras": cameras, "fps_per_camera": fps, "workers": workers,
            "window_s": round(window_s, 2), "frames_due": round(due), "frames_sent": len(sent),
            "sent_share": ratio(len(sent), due),
            "status": {"frames_due": round(counts["due"], 1), "sent": counts["sent"],
                       **{k: counts[k] for k in ("keyframes", "idle", "skipped", "dropped")}},
            "accounted_share": accounted,
            "results_missing": missing, "latency_ms": pct,
            "mean_ms": round(float(np.mean(finite)), 1) if finite else None,
            "held": held, "cpu_ms_per_camera_s": round(per_cam_s, 1),
            "cpu_ms_per_frame_sent": round(1000 * cpu_s / len(sent), 1) if sent else None,
            "idle_estimate_cameras": idle_estimate(per_cam_s)}


def idle_estimate(cpu_ms_per_camera_s: float, usable: float = 0.75) -> int | None:
    """Cameras this machine would carry when nothing else runs: ``usable`` of every core, at the measured cost.

    >>> idle_estimate(0.0) is None
    True
    """
    if cpu_ms_per_camera_s <= 0:
        return None
    return int(usable * (os.cpu_count() or 1) * 1000 / cpu_ms_per_camera_s)


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
    p.add_argument("--paths", default="gated,today", help="paths to measure, of gated,today (default both)")
    p.add_argument("--cameras", default="2,8", help="camera counts of the fixed trials, busy and quiet mixed "
                                                   "(default 2,8)")
    p.add_argument("--cpu-cameras", type=int, default=2,
                   help="cameras of the quiet-only and busy-only CPU trials (default 2; 0: none)")
    p.add_argument("--fps", type=float, default=5.0, help="frames per second per camera (default 5)")
    p.add_argument("--workers", type=int, default=2,
                   help="worker processes of `maskwatch up` (default 2: one per core)")
    p.add_argument("--batch-size", type=int, help="worker batch size (default: the settings', 16)")
    p.add_argument("--size", type=parse_pair, default=(640, 360), help="camera frame size WxH (default 640x360)")
    p.add_argument("--clip-seconds", type=float, default=60.0,
                   help="length of each camera's looping walking-people video (default 60)")
    p.add_argument("--warmup", type=float, default=30.0,
                   help="at most this many seconds for the start-up backlog to drain once every camera has results "
                        "(default 30)")
    p.add_argument("--duration", type=float, default=12.0, help="seconds of the measuring window (default 12)")
    p.add_argument("--grace", type=float, default=5.0, help="seconds the window's last frames may take (default 5)")
    p.add_argument("--start-timeout", type=float, default=90.0,
                   help="seconds until every camera has results (default 90)")
    p.add_argument("--no-search", action="store_true", help="only the fixed trials, no capacity search")
    p.add_argument("--max-cameras", type=int, default=32, help="upper bound of the capacity search (default 32)")
    args = p.parse_args(argv)
    try:
        args.cameras = sorted({int(v) for v in args.cameras.split(",") if v.strip()})
    except ValueError:
        p.error(f"--cameras {args.cameras!r}: expected integers like 2,8")
    args.paths = [v.strip() for v in args.paths.split(",") if v.strip()]
    if not args.paths or set(args.paths) - set(PATHS):
        p.error(f"--paths {','.join(args.paths)!r}: choose from {', '.join(PATHS)}")
    if not args.cameras or min(args.cameras) < 1 or args.fps <= 0 or args.workers < 1 or args.cpu_cameras < 0:
        p.error("camera counts, --fps and --workers must be positive, --cpu-cameras at least 0")
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    model = model_for_children(args.model)
    t_start = time.perf_counter()
    trials: dict[tuple[str, str, int], dict] = {}
    with private_redis() as server, tempfile.TemporaryDirectory(prefix="mwbench-lat-") as tmp:
        folder = Path(tmp)
        videos = Videos(folder, args.clip_seconds, args.fps, args.size)

        def run(path: str, n: int, mix: str = "mixed") -> bool:
            if (path, mix, n) not in trials:
                trials[path, mix, n] = t = trial(server.url, path, mix, videos.for_trial(mix, n), args, folder)
                print(f"{path}, {n} {mix} camera(s): p95 {t['latency_ms']['p95']} ms, accounted "
                      f"{t['accounted_share']}, CPU {t['cpu_ms_per_camera_s']} ms/camera-s, held {t['held']}",
                      flush=True)
            return trials[path, mix, n]["held"]

        for n in args.cameras:  # the paths alternate, so a change of load falls on both
            for path in args.paths:
                run(path, n)
        capacity: dict[str, int] = {}
        for path in args.paths:
            mixed = {n: t for (p, mix, n), t in trials.items() if p == path and mix == "mixed"}
            held, failed = [n for n, t in mixed.items() if t["held"]], [n for n, t in mixed.items() if not t["held"]]
            capacity[path] = (max(held, default=0) if args.no_search else
                              search(lambda n, path=path: run(path, n), held, failed, args.max_cameras))
        if args.cpu_cameras:
            for mix in ("quiet", "busy"):
                for path in args.paths:
                    run(path, args.cpu_cameras, mix)
    figures = {"bench": "latency", "machine": machine(), "model": str(model), "workers": args.workers,
               "fps_per_camera": args.fps, "frame_size": list(args.size), "clip_seconds": args.clip_seconds,
               "capacity_searched": not args.no_search, "paths": {}}
    for path in args.paths:
        cpu = {mix: trials[path, mix, args.cpu_cameras]["cpu_ms_per_camera_s"]
               for mix in ("quiet", "busy") if (path, mix, args.cpu_cameras) in trials}
        figures["paths"][path] = {"cameras_held": capacity[path], "cpu_ms_per_camera_s_quiet": cpu.get("quiet"),
                                  "cpu_ms_per_camera_s_busy": cpu.get("busy"),
                                  "trials": [t for (p, _, _), t in sorted(trials.items()) if p == path]}
    report(figures, args)
    head = figures["paths"].get("gated") or figures["paths"][args.paths[0]]
    figures.update({k: head[k] for k in ("cameras_held", "cpu_ms_per_camera_s_quiet", "cpu_ms_per_camera_s_busy")})
    if "today" in figures["paths"] and "gated" in figures["paths"]:
        today = figures["paths"]["today"]
        figures["today"] = {k: today[k] for k in ("cameras_held", "cpu_ms_per_camera_s_quiet",
                                                  "cpu_ms_per_camera_s_busy")}
        figures["cameras_held_vs_today"] = ratio(head["cameras_held"], today["cameras_held"])
    figures["target_8_cameras_held"] = head["cameras_held"] >= 8
    figures["seconds"] = round(time.perf_counter() - t_start, 1)
    emit(figures)
    return figures


def report(figures: dict, args: argparse.Namespace) -> None:
    rows = [[t["path"], t["mix"], t["cameras"], t["frames_due"], t["frames_sent"], t["status"]["idle"],
             t["status"]["skipped"],
             t["accounted_share"], t["results_missing"], t["latency_ms"]["p50"], t["latency_ms"]["p95"],
             t["latency_ms"]["p99"], t["held"], t["cpu_ms_per_camera_s"], t["cpu_ms_per_frame_sent"],
             t["idle_estimate_cameras"]] for p in figures["paths"].values() for t in p["trials"]]
    show(f"capture-to-result latency under `maskwatch up` ({args.workers} worker processes, {args.fps:g} fps per "
         f"camera, {args.size[0]}x{args.size[1]} walking-people videos, {args.duration:g} s window)",
         ["path", "cameras", "n", "due", "sent", "idle", "skipped", "sent+idle share", "missing", "p50 ms", "p95 ms",
          "p99 ms", "held", "CPU ms/camera-s", "CPU ms/frame sent", "cameras if idle (est.)"], rows)
    show("side by side (capacity: most cameras held, busy and quiet mixed; CPU: the quiet-only and busy-only trials "
         f"of {args.cpu_cameras} cameras, all processes and Redis)",
         ["path", "cameras held", "CPU ms/camera-s quiet", "CPU ms/camera-s busy"],
         [[path, p["cameras_held"], p["cpu_ms_per_camera_s_quiet"], p["cpu_ms_per_camera_s_busy"]]
          for path, p in figures["paths"].items()])


if __name__ == "__main__":
    main()
