"""``/metrics`` in Prometheus format, read from Redis at scrape time by a custom collector.

The dashboard holds no counters of its own: every sample is what Redis says when Prometheus
asks, so any number of dashboard replicas report the same values. Counters come from the
workers' totals and the producers' status hashes; they reset only if those keys are removed.
If Redis cannot be read, the scrape still succeeds with ``maskwatch_redis_up 0`` alone.
"""

from __future__ import annotations

from collections.abc import Iterator

import redis
from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from dashboard import readers, system_reader
from dashboard.models import Compliance
from dashboard.state import DashboardState
from maskwatch.utils import now_ms

router = APIRouter(tags=["metrics"])


class RedisCollector(Collector):
    def __init__(self, state: DashboardState):
        self.state = state

    def collect(self) -> Iterator[Metric]:
        try:
            metrics = list(self._read())
            self.state.outage.ok()
        except redis.RedisError as exc:
            self.state.redis_error(exc, "/metrics")
            metrics = []
        yield GaugeMetricFamily("maskwatch_redis_up", "1 if the dashboard could read Redis for this scrape",
                                value=1 if metrics else 0)
        yield from metrics

    def _read(self) -> Iterator[Metric]:
        state = self.state
        ov = readers.overview(state, now_ms())
        sysinfo = system_reader.system(state, now_ms())

        people = CounterMetricFamily("maskwatch_people", "People counted since the camera was added (tracked faces "
                                     "whose track ended, each once), by voted label", labels=["camera", "label"])
        faces = CounterMetricFamily("maskwatch_faces", "Face observations (faces in frames) classified since the "
                                    "camera was added, by label", labels=["camera", "label"])
        frames = CounterMetricFamily("maskwatch_frames", "Frames analysed since the camera was added",
                                     labels=["camera"])
        people_ratio = GaugeMetricFamily("maskwatch_people_compliance_ratio", "Share of people wearing a mask over "
                                         "the window (absent when nobody was counted)", labels=["camera", "window"])
        ratio = GaugeMetricFamily("maskwatch_compliance_ratio", "Share of face observations wearing a mask over the "
                                  "window (absent when no face was seen)", labels=["camera", "window"])
        site_people = GaugeMetricFamily("maskwatch_site_people_compliance_ratio", "Share of people wearing a mask "
                                        "over the window, all cameras together (absent when nobody was counted)",
                                        labels=["window"])
        site = GaugeMetricFamily("maskwatch_site_compliance_ratio", "Share of face observations wearing a mask over "
                                 "the window, all cameras together (absent when no face was seen)", labels=["window"])
        up = GaugeMetricFamily("maskwatch_camera_up", "1 if the camera's producer reports it online", labels=["camera"])
        for cam in ov.cameras:
            t = cam.totals
            for label, n_people, n_faces in (("with_mask", t.people_with_mask, t.with_mask),
                                             ("without_mask", t.people_without_mask, t.without_mask)):
                people.add_metric([cam.id, label], n_people)
                faces.add_metric([cam.id, label], n_faces)
            frames.add_metric([cam.id], t.frames)
            up.add_metric([cam.id], 1 if cam.status == "online" else 0)
            _ratios(people_ratio, [cam.id], cam.people_compliance)
            _ratios(ratio, [cam.id], cam.compliance)
        _ratios(site_people, [], ov.site.people_compliance)
        _ratios(site, [], ov.site.compliance)

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
        yield from (people, faces, frames, people_ratio, ratio, site_people, site, up, skipped, idle, camera_lag,
                    lag)
        yield GaugeMetricFamily("maskwatch_queue_pending_frames", "Frames read by a worker, not yet acknowledged",
                                value=sysinfo.queue.pending)
        yield GaugeMetricFamily("maskwatch_workers_alive", "Workers with a live heartbeat", value=sysinfo.workers_alive)
        yield CounterMetricFamily("maskwatch_frames_dead_lettered", "Frames moved to the dead-letter stream",
                                  value=sysinfo.dead_lettered)


def _ratios(family: GaugeMetricFamily, labels: list[str], per_window: Compliance) -> None:
    """One sample a window, labelled by it; none for a window without a figure (a made-up 0 or 1 would mislead)."""
    for window, value in per_window.model_dump(by_alias=True).items():
        if value is not None:
            family.add_metric([*labels, window], value)


def registry_for(state: DashboardState) -> CollectorRegistry:
    """A registry of this app's own (not the global one), so tests can run several apps in one process."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(RedisCollector(state))
    return registry


@router.get("/metrics", response_class=Response, summary="Prometheus metrics, read from Redis at scrape time",
            responses={200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Prometheus text format"}})
def metrics(request: Request) -> Response:
    return Response(generate_latest(request.app.state.metrics), media_type=CONTENT_TYPE_LATEST)
