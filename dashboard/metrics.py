"""``/metrics`` in Prometheus format, read from Redis at scrape time by a custom collector.

The dashboard holds no counters of its own: every sample is what Redis says when Prometheus
asks, so any number of dashboard replicas report the same values. Counters come from the
workers' totals and the producers' status hashes; they reset only if those keys are removed.
If Redis cannot be read, the scrape still succeeds with ``maskwatch_redis_up 0`` alone.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import redis
from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from dashboard import readers, system_reader
from dashboard.state import DashboardState
from maskwatch.utils import now_ms

log = logging.getLogger(__name__)
router = APIRouter(tags=["metrics"])


class RedisCollector(Collector):
    def __init__(self, state: DashboardState):
        self.state = state

    def collect(self) -> Iterator[Metric]:
        try:
            metrics = list(self._read())
        except redis.RedisError as exc:
            log.warning("/metrics: cannot read Redis: %s", exc)
            metrics = []
        yield GaugeMetricFamily("maskwatch_redis_up", "1 if the dashboard could read Redis for this scrape",
                                value=1 if metrics else 0)
        yield from metrics

    def _read(self) -> Iterator[Metric]:
        state = self.state
        ov = readers.overview(state, now_ms())
        sysinfo = system_reader.system(state, now_ms())

        faces = CounterMetricFamily("maskwatch_faces", "Faces classified since the camera was added, by label",
                                    labels=["camera", "label"])
        frames = CounterMetricFamily("maskwatch_frames", "Frames analysed since the camera was added",
                                     labels=["camera"])
        ratio = GaugeMetricFamily("maskwatch_compliance_ratio", "Share of detected faces wearing a mask over the "
                                  "window (absent when no face was seen)", labels=["camera", "window"])
        site = GaugeMetricFamily("maskwatch_site_compliance_ratio", "Share of faces wearing a mask over the "
                                 "window, all cameras together (absent when no face was seen)", labels=["window"])
        up = GaugeMetricFamily("maskwatch_camera_up", "1 if the camera's producer reports it online", labels=["camera"])
        for cam in ov.cameras:
            faces.add_metric([cam.id, "with_mask"], cam.totals.with_mask)
            faces.add_metric([cam.id, "without_mask"], cam.totals.without_mask)
            frames.add_metric([cam.id], cam.totals.frames)
            up.add_metric([cam.id], 1 if cam.status == "online" else 0)
            for label, value in cam.compliance.model_dump(by_alias=True).items():
                if value is not None:
                    ratio.add_metric([cam.id, label], value)
        for label, value in ov.site.compliance.model_dump(by_alias=True).items():
            if value is not None:
                site.add_metric([label], value)

        skipped = CounterMetricFamily("maskwatch_frames_skipped", "Frames skipped at the source under backpressure, "
                                      "as the camera's producer reports them", labels=["camera"])
        idle = CounterMetricFamily("maskwatch_camera_frames_idle", "Frames not sent because nothing moved "
                                   "(motion gating), as the camera's producer reports them", labels=["camera"])
        # One stream a camera: KEDA and the alerts scale and warn on the sum of these (docs/deploy.md).
        camera_lag = GaugeMetricFamily("maskwatch_camera_lag_frames", "Frames in the camera's stream not yet read "
                                       "by its worker (absent when Redis cannot tell)", labels=["camera"])
        for flow in sysinfo.cameras:
            skipped.add_metric([flow.id], flow.skipped or 0)
            idle.add_metric([flow.id], flow.idle or 0)
            if flow.lag is not None:
                camera_lag.add_metric([flow.id], flow.lag)
        lag = GaugeMetricFamily("maskwatch_queue_lag_frames", "Frames not yet read by any worker, all cameras' streams "
                                "together (absent when Redis cannot tell it for some camera)")
        if sysinfo.queue.lag is not None:
            lag.add_metric([], sysinfo.queue.lag)
        yield from (faces, frames, ratio, site, up, skipped, idle, camera_lag, lag)
        yield GaugeMetricFamily("maskwatch_queue_pending_frames", "Frames read by a worker, not yet acknowledged",
                                value=sysinfo.queue.pending)
        yield GaugeMetricFamily("maskwatch_workers_alive", "Workers with a live heartbeat", value=sysinfo.workers_alive)
        yield CounterMetricFamily("maskwatch_frames_dead_lettered", "Frames moved to the dead-letter stream",
                                  value=sysinfo.dead_lettered)


def registry_for(state: DashboardState) -> CollectorRegistry:
    """A registry of this app's own (not the global one), so tests can run several apps in one process."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(RedisCollector(state))
    return registry


@router.get("/metrics", response_class=Response, summary="Prometheus metrics, read from Redis at scrape time",
            responses={200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Prometheus text format"}})
def metrics(request: Request) -> Response:
    return Response(generate_latest(request.app.state.metrics), media_type=CONTENT_TYPE_LATEST)
