"""``maskwatch producer``: the producer process, built from settings and run until SIGTERM or Ctrl-C.

Threads: one capture loop per camera held, plus ``control`` (heartbeat, registry, leases; a third
of the lease TTL apart), ``status`` (every camera's status hash, every second), ``lag`` (the
workers' lag on each camera captured here, twice a second) and the metrics server when
``producer_metrics_port`` is not 0 (``/livez``: those threads run; ``/readyz``: started and Redis
answers). With ``motion`` on (the default), each capture loop gates its frames on motion with a
keyframe every ``motion_keyframe_s``.
Started while Redis is down, the producer serves its probes and waits for Redis. Redis going away
later stops none of the threads: capture goes on, frames are dropped and counted, and everything
resumes when Redis answers again.
"""

from __future__ import annotations

import logging
from http.server import ThreadingHTTPServer

import cv2
import redis

from maskwatch.camera_urls import UrlPolicy
from maskwatch.cameras import CameraConfig
from maskwatch.keys import Keys
from maskwatch.leases import Leases, new_member_id
from maskwatch.metrics_server import serve_metrics
from maskwatch.redis_conn import connect
from maskwatch.service import RedisOutage, StopSignal, redis_address, wait_for_redis
from maskwatch.settings import Settings
from producer.backpressure import Backpressure
from producer.capture import CaptureLoop
from producer.metrics import ProducerMetrics
from producer.periodic import Periodic
from producer.sink import FrameSink
from producer.status import CameraStats
from producer.supervisor import Supervisor

log = logging.getLogger(__name__)

STATUS_EVERY_S = 1.0
LAG_EVERY_S = 0.5


class ProducerService:
    """A whole producer; :meth:`start` returns at once, :meth:`stop` ends it cleanly."""

    def __init__(self, settings: Settings, r: redis.Redis | None = None, producer_id: str | None = None):
        self.settings = settings
        self.id = producer_id or new_member_id()
        self.r = r if r is not None else connect(settings, check=False)  # `main` waits for Redis
        self.keys = Keys(settings.prefix)
        self.policy = UrlPolicy.from_settings(settings)  # what cameras may open: checked again at every open
        self.outage = RedisOutage(f"producer {self.id}", redis_address(self.r),
                                  "capture goes on, frames are dropped and counted until it is back")
        self.metrics = ProducerMetrics()
        self.backpressure = Backpressure(self.r, self.keys, settings.lag_threshold, self.metrics)
        self.sink = FrameSink(self.r, self.keys, self.id, settings.frames_maxlen, self.outage)
        self.leases = Leases(self.r, self.keys, self.id, settings.lease_ttl_ms)
        self.supervisor = Supervisor(self.r, self.keys, self.leases, self.metrics, self._start_loop)
        tick_s = min(1.0, settings.lease_ttl_ms / 3000)  # three renewals per TTL: one may fail
        # Status and lag touch Redis only for cameras held: the control tick is the one that probes it.
        self._jobs = [Periodic("control", tick_s, self.supervisor.tick, self.outage),
                      Periodic("status", STATUS_EVERY_S, self.supervisor.publish_status, self.outage, probes=False),
                      Periodic("lag", LAG_EVERY_S, self._poll_lag, self.outage, probes=False)]
        self._server: ThreadingHTTPServer | None = None
        self.started = False

    def _start_loop(self, cam: CameraConfig, stats: CameraStats) -> CaptureLoop:
        keyframe_s = self.settings.motion_keyframe_s if self.settings.motion else None
        return CaptureLoop(cam, stats, self.sink, self.backpressure, self.settings.reconnect_max_s, keyframe_s,
                           self.policy).start()

    def _poll_lag(self) -> None:
        self.backpressure.poll(self.supervisor.cameras)

    def alive(self) -> bool:
        """``/livez``: the control, status and lag threads run (none yet before the start)."""
        return not self.started or all(job.alive() for job in self._jobs)

    def ready(self) -> bool:
        """``/readyz``: started, and Redis answers (capture without Redis sends nothing)."""
        return self.started and not self.outage.down

    def serve_probes(self) -> None:
        """Serve metrics and probes (at most once): ``main`` does before it waits for Redis."""
        if self._server is None:
            self._server = serve_metrics(self.settings.metrics_host, self.settings.producer_metrics_port,
                                         setting="producer_metrics_port", alive=self.alive, ready=self.ready,
                                         registry=self.metrics.registry)

    def start(self) -> ProducerService:
        self.serve_probes()
        for job in self._jobs:
            job.start()
        self.started = True
        motion = f"keyframe every {self.settings.motion_keyframe_s:g} s" if self.settings.motion else "off"
        log.info("producer %s started: Redis %s, prefix %r, lease TTL %d ms, lag threshold %d, motion gating %s",
                 self.id, self.outage.where, self.settings.prefix, self.settings.lease_ttl_ms,
                 self.settings.lag_threshold, motion)
        return self

    def stop(self) -> None:
        for job in self._jobs:
            job.stop()
        if self.started:  # stopped while waiting for Redis: nothing held, nothing to release
            self.supervisor.shutdown()
        if self._server:
            self._server.shutdown()
            self._server.server_close()
        log.info("producer %s stopped", self.id)


def configure_opencv(settings: Settings) -> None:
    """Set up OpenCV for capture, once per producer process, before the first camera opens."""
    if settings.log_level.upper() != "DEBUG":
        # OpenCV warns on every failed open of a dead camera; the producer logs those itself.
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)


def main(settings: Settings) -> int:
    """Run a producer until SIGTERM or SIGINT; exit 0 after a clean stop."""
    stop = StopSignal().install()
    configure_opencv(settings)
    service = ProducerService(settings)
    try:
        service.serve_probes()
        if wait_for_redis(service.r, f"producer {service.id}", stop):
            service.start()
            stop.wait()
    finally:
        service.stop()
    return 0
