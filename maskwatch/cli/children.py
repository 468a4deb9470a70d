"""How `maskwatch up` ties its child processes to itself (Linux), so nothing outlives it."""

from __future__ import annotations

import ctypes
import os
import signal
import sys

PR_SET_PDEATHSIG = 1
LINUX = sys.platform.startswith("linux")


def die_with_parent() -> None:
    """In the child, before exec: receive SIGTERM when the launcher dies, even by SIGKILL."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:
        pass


def stopped_last() -> None:
    """In a child every other one depends on (Redis), before exec: out of the terminal's process group.

    Ctrl-C then reaches only `up` and the processes that use Redis; `up` stops Redis after them, so
    none of them meets a Redis that went away first. It still dies with the launcher.
    """
    os.setpgrp()
    die_with_parent()
