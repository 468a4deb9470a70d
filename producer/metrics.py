"""Prometheus metrics of one producer, served with ``/healthz`` by :func:`maskwatch.metrics_server.serve_metrics`.

Each producer has a registry of its own, so several producers can live in one process (tests).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge


class ProducerMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.sent = Counter("maskwatch_producer_frames_sent", "Frames written to the camera's frames stream "
                            "(keyframes included)", ["camera"], registry=self.registry)
        self.keyframes = Counter("maskwatch_producer_keyframes_sent", "Frames sent whole (first frame, and every "
                                 "motion_keyframe_s; every frame with motion gating off)", ["camera"],
                                 registry=self.registry)
        self.idle = Counter("maskwatch_producer_frames_idle", "Frames due without motion, so not sent for analysis",
                            ["camera"], registry=self.registry)
        self.skipped = Counter("maskwatch_frames_skipped", "Frames due but not sent: backpressure (workers lag), "
                               "redis_down (Redis unreachable) or no_lease (camera handed over)",
                               ["camera", "reason"], registry=self.registry)
        self.up = Gauge("maskwatch_camera_up", "1 while the camera delivers frames, else 0",
                        ["camera"], registry=self.registry)
        self.reconnects = Counter("maskwatch_camera_reconnects", "Failed opens or dropped streams, each followed "
                                  "by a reconnect", ["camera"], registry=self.registry)
        self.lag = Gauge("maskwatch_producer_group_lag", "Frames waiting for the workers, summed over the cameras "
                         "captured here, as last read", registry=self.registry)
        self.camera_lag = Gauge("maskwatch_producer_camera_lag", "Frames of the camera waiting for the workers, "
                                "as last read", ["camera"], registry=self.registry)

    def forget(self, cam: str) -> None:
        """Stop reporting ``cam`` as up or down: another producer (or none) captures it now."""
        try:
            self.up.remove(cam)
        except KeyError:
            pass
