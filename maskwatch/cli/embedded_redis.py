"""Run a private ``redis-server`` on a free port: `maskwatch up` without MASKWATCH_REDIS_URL, and the tests.

>>> # with EmbeddedRedis(Path("/tmp/state")) as server: print(server.url)
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import redis

from maskwatch.cli.children import LINUX, stopped_last
from maskwatch.exceptions import RedisUnavailable

INSTALL_HINT = (
    "redis-server was not found on PATH. Install it (Debian/Ubuntu: `sudo apt-get install redis-server`; "
    "macOS: `brew install redis`) or point MaskWatch at an existing Redis with MASKWATCH_REDIS_URL=redis://HOST:6379/0"
)
LOG = "redis.log"
LOG_MAX_BYTES = 10 << 20  # redis.log is rotated past this, one old copy kept
AOF_REWRITE_MIN_MB = 64  # Redis's own floor for rewriting its append-only files
DISK_PER_MEMORY = 3  # append-only files: a base of at most the data, as much again before a rewrite, and the new base


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on at ``host`` now (the OS picks it; it does not hand it out again soon)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class EmbeddedRedis:
    """A redis-server child process whose files live under ``state_dir``; stopped on exit.

    With ``max_memory_mb``, its memory is capped and so are its files: past the cap, keys with an
    expiry are evicted, soonest to expire first (live frames, snapshots, old statistics); keys
    without one (the camera registry, totals, streams already bounded by their MAXLEN) never are,
    so the registry survives a full Redis. The append-only files are rewritten when they double,
    and stay within about :data:`DISK_PER_MEMORY` times the cap.
    """

    def __init__(self, state_dir: Path, port: int | None = None, persist: bool = True,
                 max_memory_mb: int | None = None):
        self.state_dir = Path(state_dir)
        self.port = port or free_port()
        self.persist = persist
        self.max_memory_mb = max_memory_mb
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> EmbeddedRedis:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RedisUnavailable(INSTALL_HINT)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        args = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.state_dir.resolve()),
                "--logfile", LOG, "--daemonize", "no", "--protected-mode", "yes"]
        # Persistence keeps the camera registry and counters across `maskwatch up` restarts.
        args += ["--appendonly", "yes"] if self.persist else ["--save", "", "--appendonly", "no"]
        if self.max_memory_mb:
            # The rewrite floor lowered to a smaller cap, so the files stay within DISK_PER_MEMORY x the cap.
            args += ["--maxmemory", f"{self.max_memory_mb}mb", "--maxmemory-policy", "volatile-ttl",
                     "--auto-aof-rewrite-min-size", f"{min(AOF_REWRITE_MIN_MB, self.max_memory_mb)}mb"]
        self.rotate_log()
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     preexec_fn=stopped_last if LINUX else None)
        client = redis.Redis(port=self.port, socket_connect_timeout=0.5)
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode(errors="replace") if self.proc.stderr else ""
                raise RedisUnavailable(f"redis-server exited at start (code {self.proc.returncode}): {err.strip()}; "
                                       f"see {self.state_dir}/redis.log")
            try:
                client.ping()
                return self
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RedisUnavailable(f"redis-server did not answer on port {self.port} within {timeout}s; "
                                           f"see {self.state_dir}/redis.log") from None
                time.sleep(0.05)

    @property
    def disk_bound_mb(self) -> int | None:
        """About the most its files and log take on disk; None when uncapped."""
        if not self.max_memory_mb:
            return None
        return DISK_PER_MEMORY * self.max_memory_mb + 2 * (LOG_MAX_BYTES >> 20)

    def rotate_log(self) -> None:
        """Past :data:`LOG_MAX_BYTES`, the log becomes ``redis.log.1`` (replacing the older one).

        Any time will do: redis-server opens its log file anew for every line it writes.
        """
        log = self.state_dir / LOG
        try:
            if log.stat().st_size > LOG_MAX_BYTES:
                os.replace(log, log.with_name(LOG + ".1"))
        except FileNotFoundError:
            pass

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def __enter__(self) -> EmbeddedRedis:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
