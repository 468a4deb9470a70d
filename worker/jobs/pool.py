"""RQ workers in threads of `maskwatch jobs`: several per queue, under the runner's stop signal and outage policy.

RQ's :class:`~rq.SimpleWorker` runs a job in the calling thread without forking, which keeps the
detector loaded by one analysis for the next and lets all the workers of a runner share one
process, one Redis connection pool and one metrics registry. But it assumes it owns the process's
main thread. :class:`ThreadWorker` changes exactly what that assumption touches:

* job timeouts by a timer that raises in the job's thread (:class:`~rq.timeouts.TimerDeathPenalty`),
  not SIGALRM, which only reaches the main thread;
* no SIGINT/SIGTERM handlers of its own: the runner's :class:`~maskwatch.service.StopSignal` stops
  every thread, each after the job in hand;
* no pub/sub thread for `rq`'s remote commands: it would retry every 2 s during a Redis outage and
  say so each time;
* the dequeue blocks :data:`POLL_S` at a time (a stop is seen that soon) and waits a Redis outage
  out under :class:`~maskwatch.service.RedisOutage` (one line when it starts, one when it ends),
  where RQ's own loop logs every try and quits on the first error outside the dequeue.

:class:`QueueThreads` runs ``n`` such workers on one queue, each in its thread, and starts a new
one when RQ's loop ends on an error it has logged.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from typing import Any

from rq import Queue, SimpleWorker
from rq.exceptions import DequeueTimeout
from rq.job import Job
from rq.serializers import JSONSerializer
from rq.timeouts import TimerDeathPenalty
from rq.worker import WorkerStatus

from maskwatch.service import OUTAGE_ERRORS, Backoff, RedisOutage, StopSignal
from worker.jobs.analysis import AnalysisError
from worker.jobs.webhooks import DeliveryError

log = logging.getLogger(__name__)
POLL_S = 2  # a blocking dequeue returns at least this often (whole seconds: BLMOVE's timeout)
# RQ raises the shared connection pool's socket timeout to its dequeue timeout + 10 s when that is
# longer; with this TTL that is 30 s, the timeout maskwatch.redis_conn gives every client anyway.
WORKER_TTL_S = 35
EXPECTED_FAILURES = (DeliveryError, AnalysisError)  # the job has said why; a traceback adds nothing
HEALTHY_RUN_S = 60.0  # an RQ loop that ran this long before it ended was no crash loop


class ThreadWorker(SimpleWorker):
    """RQ's in-process worker, fit to run in a thread (module docstring)."""

    death_penalty_class = TimerDeathPenalty
    log_result_lifespan = False  # "result is kept for 86400 seconds" after every job

    def __init__(self, queues: list[Queue], name: str, stop: StopSignal, outage: RedisOutage, **kw: Any):
        super().__init__(queues, name=name, connection=queues[0].connection, serializer=JSONSerializer,
                         worker_ttl=WORKER_TTL_S, **kw)
        self.stop_signal, self.outage = stop, outage

    def _install_signal_handlers(self) -> None:
        pass  # the runner's StopSignal owns SIGINT and SIGTERM

    def subscribe(self) -> None:
        pass  # no pub/sub thread (module docstring)

    def handle_exception(self, job: Job, *exc_info: Any) -> None:
        if isinstance(exc_info[1], EXPECTED_FAILURES):
            self.log.warning("job %s (%s) failed: %s", job.id, job.description, exc_info[1])
            return
        super().handle_exception(job, *exc_info)

    def check_for_suspension(self, burst: bool) -> None:
        with self.outage.guard():  # during an outage, the dequeue below waits it out
            super().check_for_suspension(burst)

    def heartbeat(self, timeout: int | None = None, pipeline: Any = None) -> None:
        if pipeline is not None:  # queued on the caller's pipeline: no call to Redis here
            super().heartbeat(timeout, pipeline)
            return
        with self.outage.guard():
            super().heartbeat(timeout)

    def dequeue_job_and_maintain_ttl(self, timeout: int | None,
                                     max_idle_time: int | None = None) -> tuple[Job, Queue] | None:
        """The next job; None once stopping or, with ``timeout`` None (burst), when the queues are empty."""
        while self.outage.turn(self.stop_signal):
            try:
                result = self._dequeue(None if timeout is None else POLL_S)
            except DequeueTimeout:
                result = None
            except OUTAGE_ERRORS as exc:
                self.outage.failed(exc)
                continue
            self.outage.ok()
            if result is not None or timeout is None:
                return result
        return None

    def _dequeue(self, timeout: int | None) -> tuple[Job, Queue] | None:
        """One try at the queues, as RQ's own dequeue makes it: heartbeat, maintenance, pop."""
        self.set_state(WorkerStatus.IDLE)
        super().heartbeat()
        if self.should_run_maintenance_tasks:
            self.run_maintenance_tasks()
        result = self.queue_class.dequeue_any(self._ordered_queues, timeout, connection=self.connection,
                                              job_class=self.job_class, serializer=self.serializer,
                                              death_penalty_class=self.death_penalty_class)
        if result is not None:
            job, queue = result
            self.reorder_queues(reference_queue=queue)
            job.redis_server_version = self.get_redis_server_version()
            self.log.info("%s: %s (%s)", queue.name, job.description, job.id)
        return result


class QueueThreads:
    """``n`` :class:`ThreadWorker` threads on ``queue``, until ``stop``."""

    def __init__(self, queue: Queue, n: int, name: str, stop: StopSignal, outage: RedisOutage, log_level: str):
        self.queue, self.n, self.name = queue, n, name
        self.stop, self.outage, self.log_level = stop, outage, log_level
        self.threads: list[threading.Thread] = []

    def start(self) -> QueueThreads:
        for i in range(self.n):
            t = threading.Thread(target=self._serve, args=(i + 1,), name=f"{self.queue.name}-{i + 1}", daemon=True)
            t.start()
            self.threads.append(t)
        return self

    def alive(self) -> bool:
        return all(t.is_alive() for t in self.threads)

    def join(self, deadline: float) -> None:
        for t in self.threads:
            t.join(max(0.0, deadline - time.monotonic()))

    def _serve(self, index: int) -> None:
        backoff = Backoff(base=1.0, cap=30.0)
        while self.outage.turn(self.stop):
            # A fresh name each time: RQ refuses a name whose worker it still believes alive.
            worker = ThreadWorker([self.queue], f"{self.name}-{self.queue.name}-{index}-{uuid.uuid4().hex[:6]}",
                                  self.stop, self.outage)
            began = time.monotonic()
            with self.outage.guard():  # RQ's loop ends with the error when Redis goes away mid-job
                worker.work(logging_level=self.log_level)
            if self.stop.stopping:
                return
            if self.outage.down:
                continue  # waited out at the top
            if time.monotonic() - began > HEALTHY_RUN_S:
                backoff.reset()
            delay = backoff.next()
            log.warning("RQ worker %s on %s ended its loop (see above); starting another in %.1f s", worker.name,
                        self.queue.name, delay)
            self.stop.wait(delay)

