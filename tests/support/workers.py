"""Helpers of the tests that run workers as real processes: start, kill, read their metrics, logs and memory."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import redis

from maskwatch.cli.embedded_redis import free_port
from maskwatch.cli.up import child_env
from maskwatch.keys import Keys
from maskwatch.settings import Settings


@dataclass
class WorkerProcess:
    """A ``maskwatch worker`` child process, its log file and its metrics port."""

    name: str
    proc: subprocess.Popen[bytes]
    log: Path
    port: int

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def tail(self) -> str:
        """What to show when a wait fails: how it exited, if it did, and the end of its log."""
        state = "running" if self.alive else f"exited {self.proc.returncode}"
        return f"; worker {self.name} {state}, log tail:\n{self.log_text()[-3000:]}"

    def metric(self, name: str, **labels: str) -> float | None:
        """A sample of the worker's /metrics (None when absent or when the worker does not answer)."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=2) as reply:
                body = reply.read().decode()
        except OSError:
            return None
        want = name + ("{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}" if labels else "")
        for line in body.splitlines():
            if line.startswith(want + " "):
                return float(line.split()[-1])
        return None

    def peak_rss_mb(self) -> int:
        """The most memory the process has held so far (VmHWM), MiB."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) // 1024
        raise AssertionError("VmHWM missing from /proc/PID/status")

    def kill(self) -> None:
        """kill -9, as a crash or the OOM killer would."""
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> int:
        """SIGTERM and wait; its exit code."""
        if self.alive:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()
        return int(self.proc.returncode)


def start_worker(settings: Settings, name: str, logs: Path, **overrides: object) -> WorkerProcess:
    """Start ``maskwatch worker --name NAME`` with ``settings`` (and ``overrides``), its log in ``logs/NAME.log``."""
    port = free_port()
    env = child_env(settings.override(worker_metrics_port=port, **overrides))
    log = logs / f"{name}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "maskwatch", "worker", "--name", name], env=env,
                                stdout=subprocess.DEVNULL, stderr=out)
    return WorkerProcess(name, proc, log, port)


def holder(r: redis.Redis, keys: Keys, cam: str) -> str | None:
    """The worker holding the camera's worker lease."""
    value = r.get(keys.lease(cam, "worker"))
    return value.decode() if value else None


def pending_of(r: redis.Redis, keys: Keys, cam: str) -> dict[str, int]:
    """Consumer -> frames of the camera it read and has not committed (none before a worker took the camera)."""
    try:
        summary = r.xpending(keys.frames(cam), keys.group)
    except redis.ResponseError:  # NOGROUP: no worker has taken the camera yet
        return {}
    return {c["name"].decode(): int(c["pending"]) for c in summary["consumers"] or []}


def consumers(r: redis.Redis, keys: Keys, cam: str) -> set[str]:
    """The consumers in the camera's workers group."""
    return {c["name"].decode() for c in r.xinfo_consumers(keys.frames(cam), keys.group)}
