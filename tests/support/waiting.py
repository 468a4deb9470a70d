"""The one way tests wait: poll a condition until it holds, or fail with a message after a deadline.

Tests never sleep a fixed time (too short on a busy machine, wasted on an idle one) and never wait
without a deadline (a hang instead of a failure).

>>> wait_for(lambda: [1, 2], 1.0, "a list")
[1, 2]
>>> wait_for(lambda: 0, 0.05, "a number", every=0.01)
Traceback (most recent call last):
...
AssertionError: timed out after 0.05 s waiting for a number (last value: 0)
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_for(predicate: Callable[[], T], timeout: float, message: str | Callable[[], str], every: float = 0.1) -> T:
    """Call ``predicate`` every ``every`` seconds until it returns something truthy, and return that.

    After ``timeout`` seconds, raise AssertionError naming ``message`` (a callable is called then,
    e.g. to read a log's tail) and the last value seen.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            what = message() if callable(message) else message
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what} (last value: {value!r})")
        time.sleep(every)


def stop(proc: subprocess.Popen, sig: int = signal.SIGINT, timeout: float = 60) -> int:
    """Ask a process to stop with ``sig`` (Ctrl-C by default) and return its exit code; kill it and fail the test
    if it is still running ``timeout`` seconds later."""
    proc.send_signal(sig)
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise AssertionError(f"pid {proc.pid} still ran {timeout:g} s after signal {sig}; killed") from None
