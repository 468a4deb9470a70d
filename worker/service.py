"""`maskwatch worker`: hold a fair share of the cameras, and read -> detect -> track -> classify -> commit.

Workers split the cameras with leases, as producers do (docs/architecture.md, "Keyed by camera"):
each reads only its cameras' streams, in order, and batches across them. A new worker takes its
fair share within a lease tick; a dead one's cameras move when its leases expire. Run one per core
(CPU) or per GPU. Survives Redis restarts (reconnects, recreates the groups), Redis refusing
writes (out of memory), a batch that raises and bad frames without a restart: a frame is
dead-lettered only when it fails, or kills the worker, on its own (docs/architecture.md,
"Poison frames").
"""

from __future__ import annotations

import logging
import os
import socket
import time
from concurrent.futures import ThreadPoolExecutor

import cv2
import redis

from maskwatch.keys import Keys
from maskwatch.leases import WORKER, Leases
from maskwatch.metrics_server import serve_metrics
from maskwatch.ownership import CameraOwnership
from maskwatch.redis_conn import connect
from maskwatch.service import OUTAGE_ERRORS, Backoff, RedisOutage, StopSignal, redis_address, wait_for_redis
from maskwatch.settings import Settings
from maskwatch.streams import site_queue
from maskwatch.utils import now_ms
from maskwatch.vision.annotate import annotate
from maskwatch.vision.jpeg import encode_jpeg
from maskwatch.vision.pipeline import Pipeline
from worker.commit import Committer
from worker.consumer import Entry, FrameSource
from worker.deadletter import DeadLetters, clip_text, describe
from worker.heartbeat import Heartbeat, Throughput
from worker.idle_consumers import IdleConsumers
from worker.metrics import WorkerMetrics
from worker.processing import BatchOutput, Processor
from worker.suspects import Suspects
from worker.tracks import CameraTracks

log = logging.getLogger(__name__)
LATEST_EVERY_S = 0.5  # refresh a camera's newest annotated frame at most this often
LOGGED_IDS = 12  # frames named in a log line about a batch


class Worker:
    def __init__(self, s: Settings, r: redis.Redis, pipeline: Pipeline, name: str | None = None,
                 stop: StopSignal | None = None):
        self.s, self.r, self.keys = s, r, Keys(s.prefix)
        self.id = name or f"{socket.gethostname()}-{os.getpid()}"
        self.pipeline = pipeline
        # Decode and detection run in threads (OpenCV releases the GIL); OpenCV's own pool would nest.
        cv2.setNumThreads(1)
        threads = s.threads or os.cpu_count() or 1
        self.executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="detect") if threads > 1 else None
        self.tracks = CameraTracks(r, self.keys, pipeline, s) if s.tracking else None
        self.processor = Processor(pipeline, self.id, s, self.executor, self.tracks)
        self.source = FrameSource(r, self.keys, self.id, s.batch_size, s.max_wait_ms,
                                  max_age_ms=round(s.frame_max_age_s * 1000))
        self.ownership = CameraOwnership(r, self.keys, Leases(r, self.keys, self.id, s.lease_ttl_ms, role=WORKER))
        self.tick_s = min(1.0, s.lease_ttl_ms / 3000)
        self._next_tick = 0.0
        self.committer = Committer(r, self.keys, s)
        self.dead = DeadLetters(r, self.keys, self.id)
        self.suspects = Suspects(r, self.keys)
        self.idle_consumers = IdleConsumers(r, self.keys, self.id, s.consumer_idle_ms)
        self.prune_every_s = min(60.0, max(self.tick_s, s.consumer_idle_ms / 2000))
        self._next_prune = 0.0
        self._in_hand: list[Entry] = []  # the frames of the batch being handled, for the log line of a failure
        self._failures = 0  # batches or ticks failed in a row
        self._retry = Backoff(base=0.2, cap=5.0)
        self.counts = Throughput()
        self.metrics = WorkerMetrics()
        self.stop_signal = stop or StopSignal()
        self.outage = RedisOutage(f"worker {self.id}", redis_address(r), "frames stay pending until it is back")
        self._latest_at: dict[str, float] = {}

    # --- cameras held: leases with a fair share, renewed every tick
    def tick(self) -> None:
        """Renew the leases and take or give up cameras; their frames and trackers follow ``held``.

        Following what is held, rather than what a tick says changed, means a tick cut short by a
        Redis error is made good by the next one.
        """
        try:
            self.ownership.tick()
        finally:
            self._follow()
        if time.monotonic() >= self._next_prune:
            self._next_prune = time.monotonic() + self.prune_every_s
            removed = self.idle_consumers.remove(sorted(self.ownership.held))
            if removed:
                self.metrics.consumers_removed.inc(removed)

    def _follow(self) -> None:
        held = set(self.ownership.held)
        dropped, taken = self.source.cams - held, held - self.source.cams
        for cam in dropped:
            self.source.remove(cam)
            if self.tracks is not None:
                self.tracks.forget(cam)
        for cam in sorted(taken):
            self.source.add(cam)
        if dropped or taken:
            self.metrics.cameras.set(len(held))
            log.info("worker %s holds %d camera(s): %s", self.id, len(held), ", ".join(sorted(held)) or "none")

    def _tick_when_due(self) -> None:
        # During an outage every try ticks: a try that holds no camera would otherwise call no Redis
        # at all, "succeed", and end the outage falsely (said again each second).
        if self.outage.down or time.monotonic() >= self._next_tick:
            self._next_tick = time.monotonic() + self.tick_s
            self.tick()

    def run_once(self) -> int:
        """Tick when due, then read, process and commit one batch; returns the number of entries handled.

        Frames read for the first time go through as one batch. Frames read again (their worker
        died, or their batch met a Redis error) are run alone, and so is every frame of a batch
        that raised: only a frame that fails on its own, or that the worker died on each of its
        ``max_deliveries`` lone attempts, is dead-lettered (docs/architecture.md, "Poison frames").
        A Redis error leaves the frames not yet committed pending, read again after the backoff.
        """
        self._tick_when_due()
        entries = self.source.next_batch()
        if not entries:
            return 0
        self._in_hand = entries
        try:
            first = [e for e in entries if e.deliveries <= 1]
            alone = [e for e in entries if e.deliveries > 1]
            failed = self._try(first) if first else None
            if failed is not None:
                log.warning("a batch of %d frame(s) raised %s; running each alone, so that only a frame that "
                            "fails on its own is dead-lettered: %s", len(first), describe(failed), frame_ids(first))
                alone = first + alone  # a camera's frames are all first reads or all read again: order holds
            for e in alone:
                self._tick_when_due()  # lone runs take a while: keep the leases
                if e.cam in self.source.cams:  # else the camera moved on: its next holder reads the frame
                    self._alone(e)
        except BaseException:
            self._drop_progress({e.cam for e in entries})
            raise
        self._in_hand = []
        return len(entries)

    def _try(self, entries: list[Entry]) -> Exception | None:
        """Process and commit ``entries`` as one batch; the exception if one was raised, Redis errors aside.

        Nothing of a batch that raised is committed (its commit scripts run last, in one pipeline);
        its cameras' trackers are reloaded from their last commit.
        """
        try:
            out = self.processor.process(entries, self.ownership.held)
            for entry, error in out.failures:
                self._dead_letter(entry, str(error), "camera" if error.field == "cam" else "malformed")
            counted = self.committer.commit(out.outcomes)
        except redis.RedisError:
            raise
        except Exception as exc:
            self.metrics.errors.labels("exception").inc()
            self._forget_trackers({e.cam for e in entries})
            return exc
        self._account(out, counted)
        return None

    def _alone(self, e: Entry) -> None:
        """Run one frame on its own; dead-letter it when it raises, or when the worker died on it alone too often."""
        attempts = self.suspects.begin(e.cam, e.id)
        if attempts > self.s.max_deliveries:
            self._dead_letter(e, f"the worker died on each of the {attempts - 1} attempts to run this frame alone "
                                 "(a frame that kills workers)", "killed")
        else:
            self.metrics.isolated.inc()
            try:
                failed = self._try([e])
            except redis.RedisError:
                self.suspects.undo(e.cam, e.id)  # Redis failed the attempt, not the frame
                raise
            if failed is not None:
                log.error("frame %s raised when run alone, a poison frame: %s", frame_ids([e]), describe(failed),
                          extra={"cam": e.cam, "entry": e.id})
                self._dead_letter(e, f"raised when run alone: {describe(failed)}", "failed")
        self.suspects.done(e.cam, e.id)

    def _dead_letter(self, e: Entry, reason: str, label: str) -> None:
        if self.dead.send(e.cam, e.id, e.fields, reason, e.deliveries):
            self.metrics.dead_lettered.labels(label).inc()

    def _forget_trackers(self, cams: set[str]) -> None:
        """Their trackers may have run ahead of what was committed: reload them from their last commit."""
        if self.tracks is not None:
            for cam in cams:
                self.tracks.forget(cam)

    def _drop_progress(self, cams: set[str]) -> None:
        """A batch broke off: its uncommitted frames are read again, with the trackers as last committed."""
        self.source.replay(cams)
        self._forget_trackers(cams)

    def _account(self, out: BatchOutput, counted: list[int]) -> None:
        """Metrics, throughput and the live view of a committed batch (``counted``: what the commit said per frame)."""
        now = now_ms()
        n, m = 0, self.metrics
        for outcome, c in zip(out.outcomes, counted):
            if c == 0:  # another worker committed it first: this one's view of the camera is stale
                m.duplicates.inc()
                self._forget_trackers({outcome.result.cam})
                continue
            n += 1
            for f in outcome.result.faces:
                m.faces.labels(f.label).inc()
            m.latency.observe(max(0.0, (now - outcome.result.ts) / 1000))
        m.frames.inc(n)
        m.batch_frames.observe(len(out.outcomes))
        m.batch_crops.observe(out.crops)
        m.detection.observe(out.detect_s)
        m.inference.observe(out.infer_s)
        self.counts.add(n, out.crops)
        self._publish_latest(out)

    def _publish_latest(self, out: BatchOutput) -> None:
        now = time.monotonic()
        pipe = self.r.pipeline(transaction=False)
        for cam, (_frame, image, faces) in out.newest.items():
            privacy = out.privacy[cam]
            if now - self._latest_at.get(cam, 0.0) < LATEST_EVERY_S or not privacy.live_frame:
                continue
            self._latest_at[cam] = now
            pipe.set(self.keys.latest(cam), encode_jpeg(annotate(privacy.live(image, faces), faces), 80),
                     ex=self.s.latest_ttl_s)
        pipe.execute()

    def _update_lag(self) -> None:
        queue = site_queue(self.r, self.keys, sorted(self.ownership.held))
        if queue.lag is not None:
            self.metrics.lag.set(queue.lag)

    def run(self) -> None:
        """Loop until stopped. A Redis outage is logged once and waited out with backoff; any other failure of
        a batch or a tick (Redis out of memory, a bug) is logged with its frames, counted and retried with
        backoff, the frames left pending."""
        last_lag = 0.0
        while self.outage.turn(self.stop_signal):
            with self.outage.guard():
                try:
                    self.run_once()
                    if time.monotonic() - last_lag > 2.0:
                        last_lag = time.monotonic()
                        self._update_lag()
                except OUTAGE_ERRORS:
                    raise  # the outage policy's
                except redis.ResponseError as exc:
                    if "NOGROUP" not in str(exc):
                        self._failed(exc)
                        continue
                    # Redis restarted empty: take the cameras again, which recreates their groups.
                    log.warning("consumer group missing (%s); taking the cameras again", exc)
                    self._rejoin()
                except Exception as exc:
                    self._failed(exc)
                    continue
                self._succeeded()
        self._leave()

    def _failed(self, exc: Exception) -> None:
        """Log (the first failure in a row, then every tenth), count, and wait the backoff; frames stay pending."""
        cause = ("redis_oom" if isinstance(exc, redis.OutOfMemoryError)
                 else "redis" if isinstance(exc, redis.RedisError) else "exception")
        self.metrics.errors.labels(cause).inc()
        frames, self._in_hand = self._in_hand, []
        self._failures += 1
        if self._failures == 1 or self._failures % 10 == 0:
            what = f"frames {frame_ids(frames)}" if frames else "no frame in hand (lease tick)"
            if cause == "redis_oom":
                log.error("worker %s: Redis is out of memory (%s); %s stay pending, retried with backoff (failure %d "
                          "in a row). Free memory in Redis or raise its maxmemory", self.id, clip_text(str(exc), 200),
                          what, self._failures)
            else:
                log.error("worker %s: %s; %s stay pending, retried with backoff (failure %d in a row)", self.id,
                          describe(exc), what, self._failures)
        self.stop_signal.wait(self._retry.next())

    def _succeeded(self) -> None:
        if self._failures:
            log.info("worker %s: going again after %d failure(s) in a row", self.id, self._failures)
            self._failures = 0
            self._retry.reset()

    def _rejoin(self) -> None:
        for cam in sorted(self.source.cams):
            self.source.add(cam)

    def _leave(self) -> None:
        """Release the leases so the cameras move at once rather than after the TTL."""
        try:
            self.ownership.release_all()
        except redis.RedisError as exc:
            log.warning("Redis unreachable at shutdown (%s): the leases expire within %d ms", exc,
                        self.s.lease_ttl_ms)

    def stop(self) -> None:
        self.stop_signal.stop()


def frame_ids(entries: list[Entry]) -> str:
    """The frames of a log line: ``cam/entry-id``, at most :data:`LOGGED_IDS` of them."""
    shown = ", ".join(f"{e.cam}/{e.id}" for e in entries[:LOGGED_IDS])
    return shown + (f" and {len(entries) - LOGGED_IDS} more" if len(entries) > LOGGED_IDS else "")


def main(s: Settings, name: str | None = None) -> int:
    """Run a worker until SIGTERM or SIGINT (the batch in hand is finished first); exit 0."""
    stop = StopSignal().install()  # first: a signal while the models load stops the worker before it starts
    r = connect(s, check=False)  # waited for below, once the models are loaded
    pipeline = Pipeline.from_settings(s)
    worker = Worker(s, r, pipeline, name, stop)
    info = {"device": pipeline.runtime.device, "runtime": pipeline.runtime.name, "batch_size": s.batch_size,
            "input_size": pipeline.meta.input_size}
    heartbeat = Heartbeat(r, worker.keys, worker.id, info, worker.counts, s.heartbeat_ttl_ms,
                          outage=worker.outage)
    # /livez: the heartbeat thread runs (or has yet to start); /readyz: it runs and Redis answers.
    serve_metrics(s.metrics_host, s.worker_metrics_port, setting="worker_metrics_port",
                  alive=lambda: heartbeat.ident is None or heartbeat.is_alive(),
                  ready=lambda: heartbeat.is_alive() and not worker.outage.down, registry=worker.metrics.registry)
    if not wait_for_redis(r, f"worker {worker.id}", stop):
        return 0
    heartbeat.start()
    log.info("worker %s: batch %d, max wait %d ms, tracking %s", worker.id, s.batch_size, s.max_wait_ms,
             "on" if s.tracking else "off")
    try:
        worker.run()
    finally:
        heartbeat.stop()
        if worker.executor:
            worker.executor.shutdown(wait=False)
    return 0
