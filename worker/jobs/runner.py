"""`maskwatch jobs`: the side-job runner. Webhooks and video analysis on queues of their own, in threads of their own.

What one runner does depends on the kinds it serves (``--queue webhooks|analysis``; both by default):

* webhooks: :data:`~maskwatch.settings.Settings.webhook_concurrency` RQ workers on the notify queue
  (deliveries and alerts), each in its thread, so several deliveries are in flight at once and a
  receiver that hangs holds up only its own; a dispatcher thread (:mod:`worker.jobs.dispatch`:
  violation events -> webhook jobs), started when webhook URLs are configured; and the compliance
  alerts, evaluated every :data:`~worker.jobs.alerts.EVALUATE_EVERY_S`.
* analysis: one RQ worker on the analysis queue in its own thread, so a long video never delays a
  webhook; the detector it loads stays loaded for the next video. Run more runners for more at once.
* a ticker thread: each second it moves retries whose backoff is over back onto their queue (one
  round of RQ's scheduler, run here instead of in the process RQ would fork).
* metrics and probes on ``MASKWATCH_JOBS_METRICS_PORT`` (:mod:`maskwatch.metrics_server`): ``/livez``
  while its threads run, ``/readyz`` once started and while Redis answers.

The RQ workers are :class:`~worker.jobs.pool.ThreadWorker`: jobs run in this process without a
fork, timed out in their own thread. Started while Redis is down, the runner waits for it
(:func:`maskwatch.service.wait_for_redis`); an outage later is waited out by every thread under
one :class:`~maskwatch.service.RedisOutage`, said once when it starts and once when it ends.
SIGTERM or Ctrl-C stops it: deliveries in hand finish (they are short), an analysis in hand stops
at its next batch and fails saying so.

``--burst`` dispatches the new events, evaluates the alerts once, runs every queued job of its
kinds (retries included, as their backoff ends), then exits: for tests, cron and scripts.

Several runners may share a Redis: events go to one of them (consumer group), an alert fires once
(compare-and-set), and RQ's lock lets one of them at a time move due retries.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Sequence

import redis
from rq.scheduler import RQScheduler
from rq.serializers import JSONSerializer

from maskwatch import jobstore
from maskwatch.metrics_server import serve_metrics
from maskwatch.redis_conn import connect
from maskwatch.service import RedisOutage, StopSignal, redis_address, wait_for_redis
from maskwatch.settings import Settings
from maskwatch.utils import now_ms
from worker.jobs.alerts import EVALUATE_EVERY_S, AlertEvaluator
from worker.jobs.dispatch import Dispatcher, ensure_group
from worker.jobs.pool import QueueThreads, ThreadWorker
from worker.jobs.queue import install
from worker.jobs.webhooks import Notifier, job_timeout_s

log = logging.getLogger(__name__)
WEBHOOKS, ANALYSIS = "webhooks", "analysis"
KINDS = {WEBHOOKS: jobstore.NOTIFY, ANALYSIS: jobstore.ANALYSIS}  # what --queue names -> the RQ queue it serves
TICK_S = 1.0
BURST_POLL_S = 0.1
ANALYSIS_STOP_S = 30.0  # how long a stop waits for an analysis to reach its next batch


class Runner:
    def __init__(self, s: Settings, r: redis.Redis, name: str | None = None, kinds: Sequence[str] = tuple(KINDS)):
        unknown = set(kinds) - set(KINDS)
        if unknown or not kinds:
            raise ValueError(f"kinds must be some of {sorted(KINDS)}, got {list(kinds)}")
        self.s, self.r, self.kinds = s, r, tuple(kinds)
        self.stop_signal = StopSignal()  # every thread's; `main` makes SIGINT and SIGTERM set it
        self.ctx = install(s, r)
        self.ctx.stop = self.stop_signal
        self.notifier = Notifier(r, s)
        self.queues = {kind: jobstore.queue(r, s.prefix, KINDS[kind]) for kind in self.kinds}
        self.name = name or f"{socket.gethostname()}-{os.getpid()}"
        self.dispatcher = Dispatcher(self.ctx, self.notifier, self.name)
        self.alerts = AlertEvaluator(self.ctx, self.notifier)
        self.scheduler = RQScheduler(list(self.queues.values()), connection=r, serializer=JSONSerializer,
                                     name=f"{s.prefix}-{self.name}")
        self.outage = RedisOutage(f"jobs {self.name}", redis_address(r),
                                  "events wait in the stream, jobs in their queues until it is back")
        self.pools: dict[str, QueueThreads] = {}
        self.threads: list[threading.Thread] = []
        self.started = False

    @property
    def webhooks(self) -> bool:
        return WEBHOOKS in self.kinds

    def promote_due(self) -> None:
        """Queue the retries whose backoff is over (under RQ's per-queue scheduler lock)."""
        if self.scheduler.acquire_locks():
            self.scheduler.enqueue_scheduled_jobs()

    def _pending(self) -> bool:
        return any(q.count or q.scheduled_job_registry.count for q in self.queues.values())

    def burst(self) -> None:
        if self.webhooks:
            if self.notifier.enabled:
                n = self.dispatcher.drain()
                log.info("dispatched %d violation event(s)", n)
            self.alerts.evaluate(now_ms())
        worker = ThreadWorker(list(self.queues.values()), f"{self.s.prefix}-jobs-{self.name}-{time.monotonic_ns()}",
                              self.stop_signal, self.outage)
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
                    if self.webhooks and time.monotonic() >= next_alerts:
                        next_alerts = time.monotonic() + EVALUATE_EVERY_S
                        self.alerts.evaluate(now_ms())
                last_error = ""
            except redis.RedisError as exc:  # not an outage (a command refused): said once while it repeats
                if str(exc) != last_error:
                    log.warning("ticker: %s; trying again every %.0f s", exc, TICK_S)
                last_error = str(exc)

    def _start(self, name: str, target: Callable[[], None]) -> None:
        t = threading.Thread(target=target, name=name, daemon=True)
        t.start()
        self.threads.append(t)

    def alive(self) -> bool:
        """``/livez``: every thread runs (before the start, while waiting for Redis, there are none)."""
        return all(t.is_alive() for t in self.threads) and all(p.alive() for p in self.pools.values())

    def ready(self) -> bool:
        """``/readyz``: started, and Redis answers."""
        return self.started and not self.outage.down

    def start(self) -> None:
        """Start the threads of the kinds served (once Redis has answered: the notifier group is made now)."""
        if self.webhooks:
            if self.notifier.enabled:
                with self.outage.guard():  # gone again already: the dispatcher makes the group once it is back
                    ensure_group(self.r, self.ctx.keys)
                self._start("dispatch", lambda: self.dispatcher.run(self.stop_signal, self.outage))
            else:
                log.info("no MASKWATCH_WEBHOOK_URL: violations are not sent anywhere (alerts still show on the "
                         "dashboard)")
        self._start("tick", self._tick)
        sizes = {WEBHOOKS: self.s.webhook_concurrency, ANALYSIS: 1}
        for kind, queue in self.queues.items():
            self.pools[kind] = QueueThreads(queue, sizes[kind], f"{self.s.prefix}-jobs-{self.name}", self.stop_signal,
                                            self.outage, self.s.log_level).start()
        self.started = True
        log.info("jobs runner %s serving %s; webhooks to %d URL(s)", self.name,
                 ", ".join(f"{q.name} ({sizes[k]} at once)" for k, q in self.queues.items()),
                 len(self.notifier.targets))

    def stop(self) -> None:
        """Stop every thread, each after its job in hand (an analysis stops at its next batch)."""
        self.stop_signal.stop()
        wait_s = max(job_timeout_s(self.s) if self.webhooks else 0, ANALYSIS_STOP_S if ANALYSIS in self.kinds else 0)
        deadline = time.monotonic() + wait_s
        for pool in self.pools.values():
            pool.join(deadline)
        for t in self.threads:
            t.join(max(0.0, deadline - time.monotonic()))
        try:
            self.scheduler.release_locks()
        except redis.RedisError as exc:
            log.warning("Redis unreachable at shutdown (%s): the scheduler locks expire on their own", exc)


def main(settings: Settings, burst: bool = False, kinds: Sequence[str] = tuple(KINDS)) -> int:
    r = connect(settings, check=burst)  # a burst is a command: no Redis, no run. A runner waits for it
    runner = Runner(settings, r, kinds=kinds)
    names = ", ".join(q.name for q in runner.queues.values())
    if burst:
        log.info("burst: running the jobs queued on %s, then exiting", names)
        runner.burst()
        return 0
    runner.stop_signal.install()
    serve_metrics(settings.metrics_host, settings.jobs_metrics_port, setting="jobs_metrics_port",
                  alive=runner.alive, ready=runner.ready, registry=runner.ctx.metrics.registry)
    if not wait_for_redis(r, f"jobs {runner.name}", runner.stop_signal):
        return 0
    runner.start()
    try:
        runner.stop_signal.wait()
    finally:
        runner.stop()
    return 0
