"""`maskwatch jobs`: the side-job runner, one process doing four things.

* An RQ worker (``SimpleWorker``) on the notify queue, then the analysis queue: jobs run in this process,
  without a fork per job, so the detector loaded by one analysis serves the next, and no fork
  copies the threads below. It runs in the main thread, where RQ's job timeouts (SIGALRM) work.
* A dispatcher thread (:mod:`worker.jobs.dispatch`): violation events -> webhook jobs. Started
  only when webhook URLs are configured.
* A ticker thread: each second it moves retries whose backoff is over back onto their queue
  (one round of RQ's scheduler, run here instead of in the process RQ would fork), and every
  :data:`~worker.jobs.alerts.EVALUATE_EVERY_S` it evaluates the compliance alerts.
* Prometheus metrics and ``/healthz`` on ``MASKWATCH_JOBS_METRICS_PORT``.

``--burst`` dispatches the new events, evaluates the alerts once, runs every queued job (retries
included, as their backoff ends), then exits: for tests, cron and scripts.

Several runners may share a Redis: events go to one of them (consumer group), an alert fires once
(compare-and-set), and RQ's lock lets one of them at a time move due retries.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from typing import Any

import redis
from rq import SimpleWorker
from rq.job import Job
from rq.scheduler import RQScheduler
from rq.serializers import JSONSerializer

from maskwatch import jobstore
from maskwatch.metrics_server import serve_metrics
from maskwatch.redis_conn import connect
from maskwatch.service import RedisOutage, StopSignal, redis_address
from maskwatch.settings import Settings
from maskwatch.utils import now_ms
from worker.jobs.alerts import EVALUATE_EVERY_S, AlertEvaluator
from worker.jobs.analysis import AnalysisError
from worker.jobs.dispatch import Dispatcher, ensure_group
from worker.jobs.queue import install
from worker.jobs.webhooks import DeliveryError, Notifier

log = logging.getLogger(__name__)
TICK_S = 1.0
BURST_POLL_S = 0.1
EXPECTED_FAILURES = (DeliveryError, AnalysisError)  # the job has said why; a traceback adds nothing


class JobsWorker(SimpleWorker):
    """RQ's worker that runs jobs in its own process; expected failures are logged in one line."""

    def handle_exception(self, job: Job, *exc_info: Any) -> None:
        if isinstance(exc_info[1], EXPECTED_FAILURES):
            self.log.warning("job %s (%s) failed: %s", job.id, job.description, exc_info[1])
            return
        super().handle_exception(job, *exc_info)


class Runner:
    def __init__(self, s: Settings, r: redis.Redis, name: str | None = None):
        self.s, self.r = s, r
        self.ctx = install(s, r)
        self.notifier = Notifier(r, s)
        self.queues = jobstore.queues(r, s.prefix)
        self.name = name or f"{socket.gethostname()}-{os.getpid()}"
        self.dispatcher = Dispatcher(self.ctx, self.notifier, self.name)
        self.alerts = AlertEvaluator(self.ctx, self.notifier)
        self.scheduler = RQScheduler(self.queues, connection=r, serializer=JSONSerializer,
                                     name=f"{s.prefix}-{self.name}")
        self.outage = RedisOutage(f"jobs {self.name}", redis_address(r),
                                  "events wait in the stream, alerts and due retries until it is back")
        self.stop_signal = StopSignal()  # the ticker's and the dispatcher's; RQ's worker has its own handlers
        self.threads: list[threading.Thread] = []

    def _worker(self) -> JobsWorker:
        return JobsWorker(self.queues, connection=self.r, serializer=JSONSerializer,
                            name=f"{self.s.prefix}-jobs-{self.name}-{time.monotonic_ns()}")

    def promote_due(self) -> None:
        """Queue the retries whose backoff is over (under RQ's per-queue scheduler lock)."""
        if self.scheduler.acquire_locks():
            self.scheduler.enqueue_scheduled_jobs()

    def _pending(self) -> bool:
        return any(q.count or q.scheduled_job_registry.count for q in self.queues)

    def burst(self) -> None:
        if self.notifier.enabled:
            n = self.dispatcher.drain()
            log.info("dispatched %d violation event(s)", n)
        self.alerts.evaluate(now_ms())
        worker = self._worker()
        try:
            while True:
                self.promote_due()
                worker.work(burst=True)
                if not self._pending():
                    break
                time.sleep(BURST_POLL_S)  # retries still waiting for their backoff
        finally:
            self.scheduler.release_locks()

    def _tick(self) -> None:
        next_alerts, last_error = 0.0, ""
        while not self.stop_signal.wait(TICK_S):
            if not self.outage.may_try():
                continue
            try:
                with self.outage.guard():
                    self.promote_due()
                    if time.monotonic() >= next_alerts:
                        next_alerts = time.monotonic() + EVALUATE_EVERY_S
                        self.alerts.evaluate(now_ms())
                last_error = ""
            except redis.RedisError as exc:  # not an outage (a command refused): said once while it repeats
                if str(exc) != last_error:
                    log.warning("ticker: %s; trying again every %.0f s", exc, TICK_S)
                last_error = str(exc)

    def _start(self, name: str, target: object) -> None:
        t = threading.Thread(target=target, name=name, daemon=True)  # type: ignore[arg-type]
        t.start()
        self.threads.append(t)

    def healthy(self) -> bool:
        return all(t.is_alive() for t in self.threads)

    def serve(self) -> None:
        """Run until SIGTERM / Ctrl-C (RQ's handlers: the job in hand finishes first)."""
        if self.notifier.enabled:
            ensure_group(self.r, self.ctx.keys)
            self._start("dispatch", lambda: self.dispatcher.run(self.stop_signal, self.outage))
        else:
            log.info("no MASKWATCH_WEBHOOK_URL: violations are not sent anywhere (alerts still show on the dashboard)")
        self._start("tick", self._tick)
        try:
            self._worker().work(burst=False, logging_level=self.s.log_level.upper())
        finally:
            self.stop_signal.stop()
            for t in self.threads:
                t.join(5)
            self.scheduler.release_locks()


def main(settings: Settings, burst: bool = False) -> int:
    r = connect(settings)
    runner = Runner(settings, r)
    names = ", ".join(q.name for q in runner.queues)
    if burst:
        log.info("burst: running the jobs queued on %s, then exiting", names)
        runner.burst()
        return 0
    serve_metrics(settings.jobs_metrics_port, healthy=runner.healthy, registry=runner.ctx.metrics.registry)
    log.info("jobs runner %s serving %s; webhooks to %d URL(s)", runner.name, names, len(runner.notifier.targets))
    runner.serve()
    return 0
