"""``maskwatch producer``: the producer process, built from settings and run until SIGTERM or Ctrl-C.

Threads: one capture loop per camera held, plus ``control`` (heartbeat, registry, leases; a third
of the lease TTL apart), ``status`` (every camera's status hash, every second), ``lag`` (the
workers' lag on each camera captured here, twice a second) and the metrics server when
``producer_metrics_port`` is not 0. With ``motion`` on (the default), each capture loop gates its
frames on motion with a keyframe every ``motion_keyframe_s``.
Redis going away stops none of them: capture goes on, frames are dropped and counted, and
everything resumes when Redis answers again.
"""

from __future__ import annotations

import logging
import os
from http.server import ThreadingHTTPServer

import cv2
import redis

from maskwatch.cameras import CameraConfig
from maskwatch.keys import Keys
from maskwatch.leases import Leases, new_member_id
from maskwatch.metrics_server import serve_metrics
from maskwatch.redis_conn import connect
from maskwatch.service import RedisOutage, StopSignal, redis_address
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
        self.r = r if r is not None else connect(settings)
        self.keys = Keys(settings.prefix)
        self.outage = RedisOutage(f"producer {self.id}", redis_address(self.r),
                                  "capture goes on, frames are dropped and counted until it is back")
        self.metrics = ProducerMetrics()
        self.backpressure = Backpressure(self.r, self.keys, settings.lag_threshold, self.metrics)
        self.sink = FrameSink(self.r, self.keys, self.id, settings.frames_maxlen, self.outage)
        self.leases = Leases(self.r, self.keys, self.id, settings.lease_ttl_ms)
        self.supervisor = Supervisor(self.r, self.keys, self.leases, self.metrics, self._start_loop)
        tick_s = min(1.0, settings.lease_ttl_ms / 3000)  # three renewals per TTL: one may fail
        self._jobs = [Periodic("control", tick_s, self.supervisor.tick, self.outage),
                      Periodic("status", STATUS_EVERY_S, self.supervisor.publish_status, self.outage),
                      Periodic("lag", LAG_EVERY_S, self._poll_lag, self.outage)]
        self._server: ThreadingHTTPServer | None = None

    def _start_loop(self, cam: CameraConfig, stats: CameraStats) -> CaptureLoop:
        keyframe_s = self.settings.motion_keyframe_s if self.settings.motion else None
        return CaptureLoop(cam, stats, self.sink, self.backpressure, self.settings.reconnect_max_s, keyframe_s).start()

    def _poll_lag(self) -> None:
        self.backpressure.poll(self.supervisor.cameras)

    def healthy(self) -> bool:
        """``/healthz``: healthy while Redis answers (capture without Redis sends nothing)."""
        return not self.outage.down

    def start(self) -> ProducerService:
        self._server = serve_metrics(self.settings.producer_metrics_port, self.healthy, registry=self.metrics.registry)
        for job in self._jobs:
            job.start()
        motion = f"keyframe every {self.settings.motion_keyframe_s:g} s" if self.settings.motion else "off"
        log.info("producer %s started: Redis %s, prefix %r, lease TTL %d ms, lag threshold %d, motion gating %s",
                 self.id, self.outage.where, self.settings.prefix, self.settings.lease_ttl_ms,
                 self.settings.lag_threshold, motion)
        return self

    def stop(self) -> None:
        for job in self._jobs:
            job.stop()
        self.supervisor.shutdown()
        if self._server:
            self._server.shutdown()
            self._server.server_close()
        log.info("producer %s stopped", self.id)


def configure_opencv(settings: Settings) -> None:
    """Set up OpenCV for capture, once per producer process, before the first camera opens."""
    # RTSP over TCP as Frigate and most NVRs do: UDP loses packets (smeared frames) and rarely passes
    # NAT. FFmpeg reads this at every open; a value the user set wins.
    os.environ.setdefault("OPENCV_FFMPEG_CAPTURE_OPTIONS", "rtsp_transport;tcp")
    if settings.log_level.upper() != "DEBUG":
        # OpenCV warns on every failed open of a dead camera; the producer logs those itself.
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)


def main(settings: Settings) -> int:
    """Run a producer until SIGTERM or SIGINT; exit 0 after a clean stop."""
    stop = StopSignal().install()
    configure_opencv(settings)
    service = ProducerService(settings).start()
    try:
        stop.wait()
    finally:
        service.stop()
    return 0
