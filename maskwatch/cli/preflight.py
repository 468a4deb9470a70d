"""What `maskwatch up` checks before it starts anything, so a system that cannot run never half-runs.

Without these checks a missing detector model made every worker exit at start and be restarted
again and again. Each check names what is wrong and how to fix it; every failing one is reported,
in one error, so one round of fixes is enough.
"""

from __future__ import annotations

import errno
import shutil
import socket
from collections.abc import Callable

from maskwatch.artifact import ModelArtifact, default_model_path
from maskwatch.cli.embedded_redis import INSTALL_HINT
from maskwatch.exceptions import MaskWatchError, RedisUnavailable
from maskwatch.modelfiles import ensure_yunet
from maskwatch.redis_conn import connect
from maskwatch.settings import Settings


class NotReady(MaskWatchError):
    """Something `maskwatch up` needs is missing; the message lists each problem with its fix."""


def check(s: Settings, dashboard: tuple[str, int] | None) -> None:
    """Raise :class:`NotReady` unless everything `up` needs is there.

    Redis: redis-server on PATH (embedded) or the configured one answering; the dashboard's
    ``(host, port)`` free when a dashboard runs; the classifier artifact loading; the YuNet file
    present or downloaded now (each worker would otherwise try on its own).
    """
    checks: list[Callable[[], None]] = [lambda: _redis(s)]
    if dashboard is not None:
        checks.append(lambda: _port_free(*dashboard))
    checks += [lambda: _classifier(s), lambda: _detector(s)]
    problems = []
    for run in checks:
        try:
            run()
        except MaskWatchError as exc:
            problems.append(str(exc))
    if len(problems) == 1:
        raise NotReady(problems[0])
    if problems:
        raise NotReady(f"{len(problems)} things to fix before anything starts:\n"
                       + "\n".join(f"  {i}. {p}" for i, p in enumerate(problems, 1)))


def _redis(s: Settings) -> None:
    if s.redis_url:
        try:
            connect(s).close()
        except RedisUnavailable as exc:
            raise NotReady(f"{exc}; start that Redis, or unset MASKWATCH_REDIS_URL and `up` runs its own") from None
    elif shutil.which("redis-server") is None:
        raise NotReady(INSTALL_HINT)


def _port_free(host: str, port: int) -> None:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn: a port in TIME_WAIT is free
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise NotReady(f"the dashboard's port {port} on {host} is in use by another program; "
                               f"stop it, or start with --port {port + 1} (or any free port)") from None
            raise NotReady(f"the dashboard cannot listen on {host}:{port} ({exc.strerror or exc}); "
                           "give --host an address of this machine, e.g. 127.0.0.1 or 0.0.0.0") from None


def _classifier(s: Settings) -> None:
    ModelArtifact.load(s.model or default_model_path())  # ArtifactError names the file and the fix


def _detector(s: Settings) -> None:
    ensure_yunet(s.model_dir)  # ModelFileError says where it looked and how to get the file
