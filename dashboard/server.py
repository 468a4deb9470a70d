"""``maskwatch dashboard``: serve the app with uvicorn until Ctrl-C or SIGTERM."""

from __future__ import annotations

import logging
import signal
import socket
import threading
from types import FrameType

import redis
import uvicorn
from fastapi import FastAPI

from dashboard.app import create_app
from maskwatch.settings import Settings

log = logging.getLogger(__name__)
# Live streams end within a tick of shutdown starting; anything still open after this is cut.
GRACEFUL_SHUTDOWN_S = 3


class DashboardServer(uvicorn.Server):
    """uvicorn's server that tells open live streams to end when shutdown starts, so they never hold it up."""

    def __init__(self, config: uvicorn.Config, stopping: threading.Event):
        super().__init__(config)
        self.stopping = stopping
        self.interrupted = False  # SIGINT (Ctrl-C) asked it to stop

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self.interrupted = self.interrupted or sig == signal.SIGINT
        super().handle_exit(sig, frame)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self.stopping.set()
        await super().shutdown(sockets)


def server_for(app: FastAPI, host: str, port: int) -> DashboardServer:
    """The uvicorn server of the dashboard, not started (tests run it in a thread)."""
    config = uvicorn.Config(app, host=host, port=port, log_config=None, access_log=False,
                            timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S, lifespan="on")
    return DashboardServer(config, app.state.dashboard.stopping)


def main(settings: Settings, host: str = "127.0.0.1", port: int = 8000) -> int:
    """Serve until SIGINT or SIGTERM (uvicorn's own handlers); logging is set up by the command line."""
    app = create_app(settings)
    state = app.state.dashboard
    try:
        state.r.ping()
    except redis.RedisError as exc:  # served all the same: the outage is said once, and once when it ends
        state.redis_error(exc, "dashboard start")
    server = server_for(app, host, port)
    log.info("dashboard on http://%s:%d (API reference at /api-docs, metrics at /metrics)", host, port)
    try:
        server.run()
    except SystemExit:  # uvicorn exits when it cannot listen; it has logged why
        log.error("cannot serve on %s:%d; is another dashboard running there? choose another with --port", host, port)
        return 1
    if server.interrupted:
        # uvicorn raises a SIGINT it caught again once shut down, which normally ends the run here as
        # KeyboardInterrupt (exit 130, as a shell reports Ctrl-C); CI once saw the run return instead, exit 0
        raise KeyboardInterrupt
    return 0 if server.started else 1
