"""Run a private ``redis-server`` on a free port: `maskwatch up` without MASKWATCH_REDIS_URL, and the tests.

>>> # with EmbeddedRedis(Path("/tmp/state")) as server: print(server.url)
"""

from __future__ import annotations

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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class EmbeddedRedis:
    """A redis-server child process whose files live under ``state_dir``; stopped on exit."""

    def __init__(self, state_dir: Path, port: int | None = None, persist: bool = True):
        self.state_dir = Path(state_dir)
        self.port = port or free_port()
        self.persist = persist
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
                "--logfile", "redis.log", "--daemonize", "no", "--protected-mode", "yes"]
        # Persistence keeps the camera registry and counters across `maskwatch up` restarts.
        args += ["--appendonly", "yes"] if self.persist else ["--save", "", "--appendonly", "no"]
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
