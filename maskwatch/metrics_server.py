"""A tiny HTTP server for each process's Prometheus metrics and probes.

Producers, workers and the jobs runner each serve their own port (the dashboard serves the same
paths inside its FastAPI app):

* ``/metrics``: the process's Prometheus registry;
* ``/livez`` (and ``/healthz``, its older name): the process is alive, its threads running. A
  Redis outage does not fail it: every process waits Redis out (:mod:`maskwatch.service`), so
  restarting one would not help. Kubernetes' liveness probe reads it;
* ``/readyz``: the process has started and Redis answers. Kubernetes' readiness probe reads it.

It listens on ``MASKWATCH_METRICS_HOST``, 127.0.0.1 unless a container sets 0.0.0.0, so a laptop
does not serve its metrics to the network.
"""

from __future__ import annotations

import errno
import logging
import socket
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest

from maskwatch.exceptions import MaskWatchError

log = logging.getLogger(__name__)
LIVE_PATHS = ("/livez", "/healthz")
READY_PATH = "/readyz"


class _Server6(ThreadingHTTPServer):
    address_family = socket.AF_INET6  # for an IPv6 MASKWATCH_METRICS_HOST such as ::


class MetricsPortError(MaskWatchError):
    """The metrics server cannot listen where it was told; the message names the setting to change."""


def serve_metrics(host: str, port: int, *, setting: str, alive: Callable[[], bool] = lambda: True,
                  ready: Callable[[], bool] = lambda: True,
                  registry: CollectorRegistry = REGISTRY) -> ThreadingHTTPServer | None:
    """Serve metrics and probes on ``host:port`` in a daemon thread (``port`` 0: nothing).

    ``setting`` names the port's setting (``producer_metrics_port``...) for the error raised when
    the port is taken.
    """
    if not port:
        return None

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                body, ctype, code = generate_latest(registry), CONTENT_TYPE_LATEST, 200
            elif path in LIVE_PATHS or path == READY_PATH:
                ok = alive() if path in LIVE_PATHS else ready()
                text = ("ok" if ok else "not alive") if path in LIVE_PATHS else ("ready" if ok else "not ready")
                body, ctype, code = f"{text}\n".encode(), "text/plain", 200 if ok else 503
            else:
                body, ctype, code = b"not found: try /metrics, /livez or /readyz\n", "text/plain", 404
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:  # scrapes every few seconds would flood the log
            pass

    try:
        server = (_Server6 if ":" in host else ThreadingHTTPServer)((host, port), Handler)
    except OSError as exc:
        var = f"MASKWATCH_{setting.upper()}"
        if exc.errno == errno.EADDRINUSE:
            raise MetricsPortError(f"metrics port {port} on {host} is in use (another MaskWatch process?); set "
                                   f"{var} (or --metrics-port) to a free port, or 0 for no metrics server") from None
        raise MetricsPortError(f"the metrics server cannot listen on {host}:{port} ({exc.strerror or exc}); set "
                               "MASKWATCH_METRICS_HOST to an address of this machine, e.g. 127.0.0.1") from None
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name=f"metrics:{port}", daemon=True).start()
    log.info("metrics on http://%s:%d/metrics, probes /livez and /readyz", host, port)
    return server
