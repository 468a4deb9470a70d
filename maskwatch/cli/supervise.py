"""`maskwatch up`'s child processes: started, restarted with backoff, given up on, and their state published.

Each child's stderr passes through `up` to the terminal, and its last lines are kept: when it
exits, its last line (a traceback's, or the ``error:`` line of a command) becomes its last error.
A child that exits is restarted after 1, 2, 4, 8 ... s; one that fails :data:`GIVE_UP_AFTER` times
in a row, each time within :data:`QUICK_S` of its start, cannot get better on its own (a missing
file, a wrong setting) and is not restarted again, which is said once. Every child's state
(name, pid, restarts, last error, since when) goes to Redis on every change and every
:data:`~maskwatch.processes.REFRESH_S`, for the dashboard (:mod:`maskwatch.processes`).
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO

import redis

from maskwatch.cli.children import LINUX, die_with_parent
from maskwatch.keys import Keys
from maskwatch.processes import (
    FAILING,
    REFRESH_S,
    RUNNING,
    STARTING,
    STOPPED,
    ProcessState,
    remove_process_states,
    write_process_states,
)
from maskwatch.service import StopSignal
from maskwatch.utils import now_ms

log = logging.getLogger("maskwatch.up")

QUICK_S = 60.0  # a child that exits sooner than this after its start failed quickly; later, a new streak begins
GIVE_UP_AFTER = 5  # quick failures in a row after which a child is not restarted
RUNNING_AFTER_S = 5.0  # a child alive this long after its start is running (its models loaded, its port open)
MAX_DELAY_S = 30.0  # longest wait before a restart
TAIL_LINES = 20  # stderr lines kept per child, for its last error


@dataclass
class Child:
    """One child process and what its supervisor knows of it."""

    name: str
    args: list[str]  # after `python -m maskwatch`
    env: dict[str, str]
    proc: subprocess.Popen[bytes] | None = None
    state: str = STARTING
    since_ms: int = 0  # when it entered its state; for FAILING, the first failure of the streak
    restarts: int = 0  # since `up` started
    streak: int = 0  # quick failures in a row
    last_error: str | None = None
    started_at: float = 0.0  # monotonic
    restart_at: float | None = None  # monotonic time of a pending restart
    _tail: deque[str] = field(default_factory=lambda: deque(maxlen=TAIL_LINES))
    _pump: threading.Thread | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "maskwatch", *self.args], env=self.env,
                                     stderr=subprocess.PIPE, preexec_fn=die_with_parent if LINUX else None)
        self.started_at = time.monotonic()
        self._tail.clear()
        assert self.proc.stderr is not None
        self._pump = threading.Thread(target=_forward, args=(self.proc.stderr, self._tail), daemon=True,
                                      name=f"{self.name}-stderr")
        self._pump.start()
        log.info("started %s (pid %d)", self.name, self.proc.pid)

    def exit_reason(self) -> str:
        """How it ended and its last line on stderr, e.g. ``exit code 2: maskwatch worker: error: ...``."""
        assert self.proc is not None and self.proc.returncode is not None
        if self._pump is not None:
            self._pump.join(2.0)  # its last lines are still in the pipe
        code = self.proc.returncode
        how = f"killed by {signal.Signals(-code).name}" if code < 0 else f"exit code {code}"
        last = next((line for line in reversed(self._tail) if line.strip()), "")
        return f"{how}: {last.strip()}" if last else how

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

    def enter(self, state: str) -> None:
        self.state, self.since_ms = state, now_ms()

    def as_state(self, supervisor: str) -> ProcessState:
        alive = self.proc is not None and self.proc.poll() is None
        return ProcessState(self.name, self.state, pid=self.proc.pid if alive and self.proc else None,
                            restarts=self.restarts, last_error=self.last_error, since_ms=self.since_ms,
                            supervisor=supervisor)


def _forward(stream: IO[bytes], tail: deque[str]) -> None:
    """Copy a child's stderr to ours line by line, keeping the last lines (a progress bar's last state)."""
    out = getattr(sys.stderr, "buffer", None)
    for raw in iter(stream.readline, b""):
        if out is not None:
            out.write(raw)
            out.flush()
        tail.append(raw.decode(errors="replace").rstrip("\r\n").rsplit("\r", 1)[-1])
    stream.close()


class Supervisor:
    """Runs the children until stopped; their states go to ``r`` (None: not published)."""

    def __init__(self, children: list[Child], r: redis.Redis | None, keys: Keys):
        self.children, self.r, self.keys = children, r, keys
        self.id = f"up@{socket.gethostname()}:{os.getpid()}"
        self._published = 0.0
        self._publish_failed = False

    def start(self) -> None:
        for child in self.children:
            child.start()
            child.enter(STARTING)
        self.publish()

    def run(self, stop: StopSignal, every_tick: Callable[[], None] | None = None) -> bool:
        """Until ``stop``; False when every child was given up on (nothing left running)."""
        while not stop.wait(0.5):
            now = time.monotonic()
            changed = [self._step(child, now) for child in self.children if not stop.stopping]
            if any(changed) or now - self._published >= REFRESH_S:
                self.publish()
            if every_tick is not None:
                every_tick()
            if all(child.state == STOPPED for child in self.children):
                log.error("every process failed and none is restarted; stopping")
                return False
        return True

    def _step(self, child: Child, now: float) -> bool:
        """Move ``child`` on; whether its state changed."""
        if child.state == STOPPED or child.proc is None:
            return False
        if child.restart_at is not None:
            if now < child.restart_at:
                return False
            child.restart_at = None
            child.restarts += 1
            child.start()  # still FAILING, until it has run QUICK_S
            return True
        ran = now - child.started_at
        if child.proc.poll() is None:
            if (child.state == STARTING and ran >= RUNNING_AFTER_S) or (child.state == FAILING and ran >= QUICK_S):
                if child.state == FAILING:
                    log.info("%s has run for %.0f s since its restart: running again", child.name, ran)
                child.streak = 0
                child.enter(RUNNING)
                return True
            return False
        child.last_error = child.exit_reason()
        child.streak = child.streak + 1 if ran < QUICK_S else 1
        if child.state != FAILING:
            child.enter(FAILING)
        if child.streak >= GIVE_UP_AFTER:
            child.enter(STOPPED)
            log.error("%s failed %d times in a row, each within %.0f s of its start; not restarting it "
                      "(last: %s). Fix the cause, then restart `maskwatch up`",
                      child.name, child.streak, QUICK_S, child.last_error)
            return True
        delay = min(MAX_DELAY_S, 2.0 ** (child.streak - 1))
        child.restart_at = now + delay
        log.error("%s exited (%s); restarting in %.0f s", child.name, child.last_error, delay)
        return True

    def publish(self) -> None:
        self._published = time.monotonic()
        if self.r is None:
            return
        try:
            write_process_states(self.r, self.keys, [child.as_state(self.id) for child in self.children])
        except redis.RedisError as exc:
            if not self._publish_failed:
                log.warning("cannot write the processes' states to Redis (%s); the dashboard shows them "
                            "once it can", exc)
            self._publish_failed = True
        else:
            self._publish_failed = False

    def stop(self, timeout: float) -> None:
        """Stop the children in order, then take their states out of Redis."""
        for child in self.children:
            child.restart_at = None
            child.stop(timeout)
        if self.r is not None:
            try:
                remove_process_states(self.r, self.keys, [child.name for child in self.children])
            except redis.RedisError as exc:
                log.warning("cannot remove the processes' states from Redis (%s); they go stale", exc)
