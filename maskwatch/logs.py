"""Logging for every process: one line per record, with the process role and, where given, camera and frame ids.

Call sites pass ``extra={"cam": ..., "seq": ...}``; the formatter prints them as ``cam=... seq=...``.
"""

from __future__ import annotations

import logging
import sys


class _ContextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        ctx = " ".join(f"{k}={getattr(record, k)}" for k in ("cam", "seq", "entry") if hasattr(record, k))
        return f"{line} [{ctx}]" if ctx else line


def setup_logging(role: str, level: str = "INFO") -> None:
    """Configure the root logger once for a process named ``role`` (producer, worker, ...)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_ContextFormatter(f"%(asctime)s {role}[%(process)d] %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
