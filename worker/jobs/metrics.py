"""The job runner's Prometheus metrics (served on MASKWATCH_JOBS_METRICS_PORT by maskwatch.metrics_server).

One set per :class:`~worker.jobs.queue.JobContext`, in a registry of its own, so several runners
can live in one process (tests).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge


class JobsMetrics:
    def __init__(self) -> None:
        self.registry = r = CollectorRegistry()
        self.events_dispatched = Counter("maskwatch_jobs_events_dispatched_total",
                                         "Violation events turned into webhook jobs", registry=r)
        self.events_malformed = Counter("maskwatch_jobs_events_malformed_total",
                                        "Violation events skipped because they could not be read", registry=r)
        self.deliveries = Counter("maskwatch_jobs_webhook_deliveries_total", "Webhook deliveries that ended, by kind "
                                  "and outcome (delivered, or failed after the last try)", ["kind", "outcome"],
                                  registry=r)
        self.attempts_failed = Counter("maskwatch_jobs_webhook_attempts_failed_total",
                                       "Webhook attempts that failed (retried or not)", ["kind"], registry=r)
        self.alerts = Counter("maskwatch_jobs_alert_transitions_total", "Compliance alerts that fired or resolved",
                              ["state"], registry=r)
        self.alerts_firing = Gauge("maskwatch_jobs_alerts_firing",
                                   "Cameras whose compliance alert is firing, as of the last evaluation", registry=r)
        self.analyses = Counter("maskwatch_jobs_analyses_total", "Offline video analyses that ended, by outcome",
                                ["outcome"], registry=r)
