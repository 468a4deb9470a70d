"""The job runner's Prometheus metrics (served on MASKWATCH_JOBS_METRICS_PORT by maskwatch.metrics_server)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

EVENTS_DISPATCHED = Counter("maskwatch_jobs_events_dispatched_total", "Violation events turned into webhook jobs")
EVENTS_MALFORMED = Counter("maskwatch_jobs_events_malformed_total", "Violation events skipped because they could not be read")
DELIVERIES = Counter("maskwatch_jobs_webhook_deliveries_total", "Webhook deliveries that ended, by kind and outcome "
                     "(delivered, or failed after the last try)", ["kind", "outcome"])
ATTEMPTS_FAILED = Counter("maskwatch_jobs_webhook_attempts_failed_total", "Webhook attempts that failed (retried or not)",
                          ["kind"])
ALERTS = Counter("maskwatch_jobs_alert_transitions_total", "Compliance alerts that fired or resolved", ["state"])
ALERTS_FIRING = Gauge("maskwatch_jobs_alerts_firing", "Cameras whose compliance alert is firing, as of the last evaluation")
ANALYSES = Counter("maskwatch_jobs_analyses_total", "Offline video analyses that ended, by outcome", ["outcome"])
