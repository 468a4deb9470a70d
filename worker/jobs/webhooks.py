"""Signed webhook deliveries: one RQ job per notification and URL, retried with backoff.

Where they go: ``MASKWATCH_WEBHOOK_URL`` (or ``--webhook``) is a comma-separated list; a bare
URL receives every camera's notifications, ``CAMERA=URL`` only that camera's::

    MASKWATCH_WEBHOOK_URL="https://ops.example/hook, lobby=https://lobby.example/hook"

What they carry: the notification's JSON (``type`` violation or alert, camera, time...), plus
``delivery_id`` (one id per notification and URL, kept across retries) and ``sent_at`` (epoch
ms of this attempt), signed in ``X-MaskWatch-Signature`` (see :mod:`maskwatch.signing` for how a
receiver verifies it and rejects replays).

Failures: a connection error, a receiver that does not connect, take the body or answer within
``MASKWATCH_WEBHOOK_TIMEOUT_S``, or a non-2xx answer fails the attempt; RQ retries it after
``MASKWATCH_WEBHOOK_BACKOFF_S`` (whole seconds), then 4x longer each time, up to ``MASKWATCH_WEBHOOK_TRIES``
attempts. The last failure records the delivery in ``mw:deliveries`` (the dashboard lists it)
and counts it in the runner's metrics.

Once per attempt: a delivery id reaches a receiver once per attempt (``attempt`` in the body). An
attempt's HTTP deadlines end it well within its RQ job timeout (:func:`job_timeout_s`; that
timeout cuts off a receiver that trickles its answer), and RQ retries a job it finds abandoned only
a minute after that timeout, so no retry starts while its attempt may still reach the receiver. A
receiver that got an attempt but answered too late sees the id again with the next attempt: it
dedupes on ``delivery_id``. Deliveries run several at once (``MASKWATCH_WEBHOOK_CONCURRENCY``, see
:mod:`worker.jobs.runner`), so a receiver that hangs holds up only its own.
"""

from __future__ import annotations

import json
import logging
import math
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import redis
from rq import Retry, get_current_job
from rq.job import Job
from rq.timeouts import JobTimeoutException

from maskwatch import __version__, jobstore
from maskwatch.exceptions import MaskWatchError
from maskwatch.keys import check_camera_id
from maskwatch.redaction import mask_url
from maskwatch.settings import Settings
from maskwatch.signing import HEADER, sign
from maskwatch.utils import now_ms
from worker.jobs.queue import context

log = logging.getLogger(__name__)
DELIVER_FUNC = "worker.jobs.webhooks.deliver"
BACKOFF_FACTOR = 4
_IDS = uuid.UUID("6f1d2c1e-0a5b-4a8e-9a51-3f2b7c9d4e10")  # namespace of delivery ids


class WebhookConfigError(MaskWatchError):
    """Webhook settings that cannot be used; the message names the variable."""


class DeliveryError(RuntimeError):
    """One attempt that the receiver did not accept."""


@dataclass(frozen=True)
class Target:
    url: str
    camera: str | None = None  # None: every camera


def parse_targets(spec: str | None) -> list[Target]:
    """The targets of a ``MASKWATCH_WEBHOOK_URL`` value.

    >>> parse_targets("https://a.example/h, lobby=http://b.example/h?x=1")
    [Target(url='https://a.example/h', camera=None), Target(url='http://b.example/h?x=1', camera='lobby')]
    """
    targets = []
    for item in (spec or "").split(","):
        item = item.strip()
        if not item:
            continue
        camera, sep, rest = item.partition("=")
        if sep and "://" not in camera:
            try:
                check_camera_id(camera.strip())
            except ValueError as exc:
                raise WebhookConfigError(f"MASKWATCH_WEBHOOK_URL entry {mask_url(item)!r}: {exc}") from None
            targets.append(Target(rest.strip(), camera.strip()))
        else:
            targets.append(Target(item))
    for t in targets:
        if not t.url.startswith(("http://", "https://")):
            raise WebhookConfigError(f"MASKWATCH_WEBHOOK_URL entry {mask_url(t.url)!r} "
                                     "is not an http:// or https:// URL")
    return targets


def retry_intervals(s: Settings) -> list[int]:
    """Waits before the 2nd, 3rd... attempt: the backoff, then 4x longer each time.

    In whole seconds, rounded up: RQ's scheduler keeps retry times to the second.
    """
    return [math.ceil(s.webhook_backoff_s * BACKOFF_FACTOR**i) for i in range(s.webhook_tries - 1)]


def job_timeout_s(s: Settings) -> int:
    """RQ's limit on one attempt: past connect, send and answer deadlines (``webhook_timeout_s`` each).

    >>> job_timeout_s(Settings(webhook_timeout_s=5))
    25
    """
    return math.ceil(4 * s.webhook_timeout_s) + 5


def iso(ts_ms: int) -> str:
    return datetime.fromtimestamp(ts_ms / 1000, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Notifier:
    """Queues one delivery job per target URL of a notification; used by the dispatcher and the alerts."""

    def __init__(self, r: redis.Redis, s: Settings):
        self.targets = parse_targets(s.webhook_url)
        if self.targets and not s.webhook_secret:
            raise WebhookConfigError("MASKWATCH_WEBHOOK_URL is set but MASKWATCH_WEBHOOK_SECRET is not: every delivery "
                                     "is signed, so set a secret shared with the receivers")
        self.r, self.prefix, self.job_timeout_s = r, s.prefix, job_timeout_s(s)
        self.queue = jobstore.queue(r, s.prefix, jobstore.NOTIFY)
        intervals = retry_intervals(s)
        self.retry = Retry(max=len(intervals), interval=intervals) if intervals else None

    @property
    def enabled(self) -> bool:
        return bool(self.targets)

    def urls(self, camera: str) -> list[str]:
        return [t.url for t in self.targets if t.camera in (None, camera)]

    def send(self, kind: str, camera: str, key: str, payload: Mapping[str, Any]) -> list[str]:
        """Queue ``payload`` for every URL of ``camera``; ``key`` names the notification uniquely.

        The delivery id (also the job id) derives from ``key`` and the URL, so a notification
        queued twice (the dispatcher restarted before acknowledging its event) is delivered once.
        """
        ids = []
        for url in self.urls(camera):
            delivery_id = str(uuid.uuid5(_IDS, f"{self.prefix}|{key}|{url}"))
            if Job.exists(delivery_id, connection=self.r):
                continue
            delivery = {"id": delivery_id, "kind": kind, "camera": camera, "url": url, "payload": dict(payload)}
            self.queue.enqueue(DELIVER_FUNC, kwargs={"delivery": delivery}, job_id=delivery_id, retry=self.retry,
                               job_timeout=self.job_timeout_s, result_ttl=jobstore.JOB_RESULT_TTL_S,
                               failure_ttl=jobstore.JOB_FAILURE_TTL_S,
                               description=f"{kind} webhook for {camera} to {mask_url(url)}")
            ids.append(delivery_id)
        return ids


def deliver(delivery: dict[str, Any]) -> dict[str, Any]:
    """The job: POST one signed delivery; raise so RQ retries, and record it once the last try fails."""
    ctx = context()
    s, job = ctx.settings, get_current_job()
    retries_left = (job.retries_left or 0) if job is not None else 0
    attempt = len(job.retry_intervals or []) - retries_left + 1 if job is not None else 1
    url, kind = delivery["url"], delivery["kind"]
    body = json.dumps({**delivery["payload"], "delivery_id": delivery["id"], "sent_at": now_ms(),
                       "attempt": attempt}, separators=(",", ":")).encode()
    headers = {"Content-Type": "application/json", "User-Agent": f"MaskWatch/{__version__}",
               HEADER: sign(body, s.webhook_secret or "")}
    try:
        response = httpx.post(url, content=body, headers=headers, timeout=s.webhook_timeout_s)
        if not response.is_success:
            raise DeliveryError(f"{mask_url(url)} answered HTTP {response.status_code}")
    except (httpx.HTTPError, DeliveryError, JobTimeoutException) as exc:
        error = (str(exc) if isinstance(exc, DeliveryError) else
                 f"{mask_url(url)}: no whole answer within {job_timeout_s(s)} s" if isinstance(exc, JobTimeoutException)
                 else f"{mask_url(url)}: {type(exc).__name__}: {exc}")
        ctx.metrics.attempts_failed.labels(kind).inc()
        if retries_left == 0:
            jobstore.record_failed_delivery(ctx.r, ctx.keys, jobstore.FailedDelivery(
                id=delivery["id"], kind=kind, camera=delivery["camera"], url=mask_url(url), attempts=attempt,
                error=error, failed_ms=now_ms(), payload=delivery["payload"]))
            ctx.metrics.deliveries.labels(kind, "failed").inc()
            log.warning("webhook %s failed for good after %d attempts: %s", delivery["id"], attempt, error,
                        extra={"cam": delivery["camera"]})
        else:
            log.info("webhook %s attempt %d failed (%s); %d retries left", delivery["id"], attempt, error, retries_left,
                     extra={"cam": delivery["camera"]})
        raise DeliveryError(error) from None
    ctx.metrics.deliveries.labels(kind, "delivered").inc()
    return {"status": response.status_code, "attempt": attempt}
