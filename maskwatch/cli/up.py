"""`maskwatch up`: the whole system on one machine, as supervised child processes.

Starts an embedded ``redis-server`` when no Redis URL is configured, registers the cameras given
on the command line, then runs one producer, N workers, the side-job runner and the dashboard
as children (the same commands a multi-machine deployment runs). A child that dies is restarted
with backoff; Ctrl-C or SIGTERM stops them in order (producer first, so no new frames arrive)
and leaves no process behind: children also get SIGTERM if this process is killed outright.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field

from maskwatch.cameras import Registry
from maskwatch.cli.camera import parse_camera_arg
from maskwatch.cli.children import LINUX, die_with_parent
from maskwatch.cli.embedded_redis import EmbeddedRedis
from maskwatch.cli.runfile import RunFile, RunInfo
from maskwatch.keys import Keys
from maskwatch.redaction import mask_url
from maskwatch.redis_conn import connect
from maskwatch.service import StopSignal
from maskwatch.settings import Settings

log = logging.getLogger("maskwatch.up")


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


@dataclass
class Child:
    name: str
    args: list[str]
    env: dict[str, str]
    proc: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    next_start: float = 0.0
    started_at: float = field(default=0.0)

    def start(self) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "maskwatch", *self.args], env=self.env,
                                     preexec_fn=die_with_parent if LINUX else None)
        self.started_at = time.monotonic()
        log.info("started %s (pid %d)", self.name, self.proc.pid)

    def stop(self, timeout: float) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            log.warning("%s did not stop within %.0f s; killing it", self.name, timeout)
            self.proc.kill()
            self.proc.wait()


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
    children = [Child("producer", ["producer"], child_env(s))]
    for i in range(workers):
        port = s.worker_metrics_port + 10 * i if s.worker_metrics_port else 0
        children.append(Child(f"worker-{i + 1}", ["worker", "--name", f"{os.uname().nodename}-w{i + 1}"],
                              child_env(s.override(worker_metrics_port=port, threads=threads))))
    if opts.jobs:
        children.append(Child("jobs", ["jobs"], child_env(s)))
    if opts.dashboard:
        children.append(Child("dashboard", ["dashboard", "--host", opts.host, "--port", str(opts.port)], child_env(s)))
    return children


def run_up(s: Settings, opts: UpOptions) -> int:
    run_file = RunFile(s.state_dir).acquire()  # first: a second `up` here must not open the same Redis files
    redis_server: EmbeddedRedis | None = None
    children: list[Child] = []
    try:
        if not s.redis_url:
            redis_server = EmbeddedRedis(s.state_dir / "redis").start()
            s = s.override(redis_url=redis_server.url)
            log.info("embedded redis-server on %s (files in %s)", redis_server.url, redis_server.state_dir)
        stop = StopSignal().install()
        dashboard_url = f"http://{opts.host}:{opts.port}" if opts.dashboard else None
        run_file.publish(RunInfo(os.getpid(), s.redis_url or "", dashboard_url))
        registry = Registry(connect(s), Keys(s.prefix))
        for spec in opts.cameras:
            cam = parse_camera_arg(spec, s, fps=opts.fps, loop=opts.loop)
            registry.put(cam)
            log.info("camera %s -> %s", cam.id, mask_url(cam.url))
        if not registry.all()[0]:
            log.warning("no cameras registered yet: add one with `maskwatch camera add NAME URL` or --camera NAME=URL")
        children = plan(s, opts)
        for child in children:
            child.start()
        if opts.dashboard:
            log.info("dashboard: http://%s:%d  (Ctrl-C stops everything)", opts.host, opts.port)
        supervise(children, stop)
    finally:
        for child in children:  # producer first: no new frames while the workers finish their batches
            child.stop(timeout=15)
        if redis_server is not None:
            redis_server.stop()
        run_file.release()
        log.info("stopped")
    return 0


def supervise(children: list[Child], stop: StopSignal) -> None:
    """Restart children that exit, with exponential backoff, until asked to stop."""
    while not stop.wait(0.5):
        now = time.monotonic()
        for child in children:
            if child.proc is None or child.proc.poll() is None:
                continue
            if child.next_start == 0.0:
                ran = now - child.started_at
                if ran > 60:
                    child.restarts = 0  # it ran fine for a while: this is a new failure, not a crash loop
                delay = min(30.0, 1.0 * 2 ** child.restarts)
                child.next_start = now + delay
                log.error("%s exited with code %s; restarting in %.0f s", child.name, child.proc.returncode, delay)
            elif now >= child.next_start:
                child.restarts += 1
                child.next_start = 0.0
                child.start()
