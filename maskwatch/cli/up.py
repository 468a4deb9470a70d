"""`maskwatch up`: the whole system on one machine, as supervised child processes.

Starts an embedded ``redis-server`` when no Redis URL is configured, registers the cameras given
on the command line, then runs one producer, N workers, the side-job runner and the dashboard
as children (the same commands a multi-machine deployment runs). Before it starts anything it
checks that everything they need is there (:mod:`maskwatch.cli.preflight`). A child that dies is
restarted with backoff and given up on when it keeps failing (:mod:`maskwatch.cli.supervise`);
Ctrl-C or SIGTERM stops them in order (producer first, so no new frames arrive) and leaves no
process behind: children also get SIGTERM if this process is killed outright.

State lives in the state folder (MASKWATCH_STATE_DIR, by default the platform's data folder): the
run file, and the embedded Redis's files and log, bounded by MASKWATCH_REDIS_MAX_MEMORY_MB.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from maskwatch.cameras import Registry
from maskwatch.cli import preflight
from maskwatch.cli.camera import check_cameras, up_cameras
from maskwatch.cli.embedded_redis import EmbeddedRedis, free_port
from maskwatch.cli.runfile import RunFile, RunInfo
from maskwatch.cli.supervise import Child, Supervisor
from maskwatch.keys import Keys
from maskwatch.redaction import mask_url
from maskwatch.redis_conn import connect
from maskwatch.service import StopSignal
from maskwatch.settings import ENV_PREFIX, Settings

log = logging.getLogger("maskwatch.up")
LEGACY_STATE = Path(".maskwatch")  # the state folder before it moved to the platform's data folder


@dataclass(frozen=True)
class UpOptions:
    """What `maskwatch up` was asked for besides the settings (the command line builds it from its flags)."""

    cameras: tuple[str, ...] = ()  # NAME=URL, registered (added or updated) before the children start
    fps: float | None = None  # of those cameras; None: MASKWATCH_FPS
    loop: bool = False  # restart file cameras at their end
    workers: int | None = None  # worker processes; None: one per core
    host: str = "127.0.0.1"  # the dashboard's address
    port: int = 8000
    dashboard: bool = True
    jobs: bool = True


def child_env(s: Settings) -> dict[str, str]:
    """The environment that carries these settings to a child process."""
    env = dict(os.environ)
    for name, value in s.to_env().items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    env["PYTHONUNBUFFERED"] = "1"
    return env


def plan(s: Settings, opts: UpOptions) -> list[Child]:
    """The children `up` runs, in start order."""
    cores = os.cpu_count() or 1
    # Processes scale better than threads here (bench/scaling.py: 2 x 1 thread = 1.6-1.9x 1 x 2 threads);
    # with fewer workers than cores, each gets its share of the cores rather than oversubscribing.
    workers = max(1, opts.workers or cores)
    threads = s.threads or max(1, cores // workers)

    def port(configured: int) -> int:
        # A free port of its own for each child, not the fixed default: two `up` on one host never collide.
        return free_port(s.metrics_host) if configured else 0

    children = [Child("producer", ["producer"],
                      child_env(s.override(producer_metrics_port=port(s.producer_metrics_port))))]
    for i in range(workers):
        # Named after this `up` too: two of them on one host may share a Redis, and a name is a lease holder.
        name = f"{os.uname().nodename}-{os.getpid()}-w{i + 1}"
        children.append(Child(f"worker-{i + 1}", ["worker", "--name", name],
                              child_env(s.override(worker_metrics_port=port(s.worker_metrics_port), threads=threads))))
    if opts.jobs:
        children.append(Child("jobs", ["jobs"], child_env(s.override(jobs_metrics_port=port(s.jobs_metrics_port)))))
    if opts.dashboard:
        children.append(Child("dashboard", ["dashboard", "--host", opts.host, "--port", str(opts.port)], child_env(s)))
    return children


def metrics_urls(children: list[Child], host: str) -> dict[str, str]:
    """Where each child that has a metrics server serves it (its /livez and /readyz beside it)."""
    urls = {}
    for child in children:
        port = child.env.get(f"{ENV_PREFIX}{child.args[0].upper()}_METRICS_PORT", "0")
        if int(port):
            urls[child.name] = f"http://{host}:{port}/metrics"
    return urls


def run_up(s: Settings, opts: UpOptions) -> int:
    """Run until Ctrl-C or SIGTERM (0), or until every child was given up on (1)."""
    run_file = RunFile(s.state_dir).acquire()  # first: a second `up` here must not open the same Redis files
    redis_server: EmbeddedRedis | None = None
    supervisor: Supervisor | None = None
    try:
        configured = s.media_dir
        s, cams = up_cameras(opts.cameras, s, fps=opts.fps, loop=opts.loop)  # may set the media folder
        preflight.check(s, (opts.host, opts.port) if opts.dashboard else None)  # a problem is all it says
        if s.media_dir is not None:
            log.info("file cameras read videos from %s (%s)", s.media_dir,
                     "MASKWATCH_MEDIA_DIR" if s.media_dir == configured else
                     "the folder of the --camera videos; MASKWATCH_MEDIA_DIR sets another")
        if not s.redis_url:
            redis_server = EmbeddedRedis(s.state_dir / "redis", max_memory_mb=s.redis_max_memory_mb).start()
            s = s.override(redis_url=redis_server.url)
        log.info("%s", _where_state_lives(s, redis_server))
        if LEGACY_STATE.is_dir() and LEGACY_STATE.resolve() != s.state_dir.resolve():
            log.warning("%s here holds the state of an earlier MaskWatch (its cameras and counts), not used now; "
                        "to keep using it, start with --state-dir %s", LEGACY_STATE, LEGACY_STATE.resolve())
        stop = StopSignal().install()
        dashboard_url = f"http://{opts.host}:{opts.port}" if opts.dashboard else None
        children = plan(s, opts)
        metrics = metrics_urls(children, s.metrics_host)
        run_file.publish(RunInfo(os.getpid(), s.redis_url or "", dashboard_url, s.media_dir, metrics))
        if metrics:
            log.info("metrics: %s", ", ".join(f"{name} {url}" for name, url in metrics.items()))
        r, keys = connect(s), Keys(s.prefix)
        registry = Registry(r, keys)
        for warning in check_cameras(cams, s):
            log.warning("%s", warning)
        for cam in cams:
            registry.put(cam)
            log.info("camera %s -> %s", cam.id, mask_url(cam.url))
        if not registry.all()[0]:
            log.warning("no cameras registered yet: add one with `maskwatch camera add NAME URL` or --camera NAME=URL")
        supervisor = Supervisor(children, r, keys)
        supervisor.start()
        if opts.dashboard:
            log.info("dashboard: http://%s:%d  (Ctrl-C stops everything)", opts.host, opts.port)
        ran_to_the_end = supervisor.run(stop, every_tick=redis_server.rotate_log if redis_server else None)
    finally:
        if supervisor is not None:  # producer first: no new frames while the workers finish their batches
            supervisor.stop(timeout=15)
        if redis_server is not None:
            redis_server.stop()
        run_file.release()
        if supervisor is not None:
            log.info("stopped")
    return 0 if ran_to_the_end else 1


def _where_state_lives(s: Settings, redis_server: EmbeddedRedis | None) -> str:
    """The startup line that says where state lives and how big it may grow."""
    where = f"state in {s.state_dir.resolve()}"
    if redis_server is None:
        return f"{where}: the run file only; the data lives in Redis at {mask_url(s.redis_url or '')}"
    return (f"{where}: the run file, and the embedded redis-server's files and log (redis on {redis_server.url}, "
            f"at most {redis_server.max_memory_mb} MB in memory and about {redis_server.disk_bound_mb} MB on disk; "
            "MASKWATCH_REDIS_MAX_MEMORY_MB sets the cap)")
