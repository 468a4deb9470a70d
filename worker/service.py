"""`maskwatch worker`: hold a fair share of the cameras, and read -> detect -> track -> classify -> commit.

Workers split the cameras with leases, as producers do (docs/architecture.md, "Keyed by camera"):
each reads only its cameras' streams, in order, and batches across them. A new worker takes its
fair share within a lease tick; a dead one's cameras move when its leases expire. Run one per core
(CPU) or per GPU. Survives Redis restarts (reconnects, recreates the groups) and bad frames
(dead-lettered) without a restart.
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
from maskwatch.service import RedisOutage, StopSignal, redis_address
from maskwatch.settings import Settings
from maskwatch.streams import site_queue
from maskwatch.utils import now_ms
from maskwatch.vision.annotate import annotate
from maskwatch.vision.jpeg import encode_jpeg
from maskwatch.vision.pipeline import Pipeline
from worker.commit import Committer
from worker.consumer import Entry, FrameSource
from worker.deadletter import DeadLetters
from worker.heartbeat import Heartbeat, Throughput
from worker.metrics import WorkerMetrics
from worker.processing import BatchOutput, Processor
from worker.tracks import CameraTracks

log = logging.getLogger(__name__)
LATEST_EVERY_S = 0.5  # refresh a camera's newest annotated frame at most this often


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
        self.tracks = (CameraTracks(r, self.keys, pipeline, s.track_max_age_ms, s.track_relook_ms, s.mask_threshold)
                       if s.tracking else None)
        self.processor = Processor(pipeline, self.id, s, self.executor, self.tracks)
        self.source = FrameSource(r, self.keys, self.id, s.batch_size, s.max_wait_ms)
        self.ownership = CameraOwnership(r, self.keys, Leases(r, self.keys, self.id, s.lease_ttl_ms, role=WORKER))
        self.tick_s = min(1.0, s.lease_ttl_ms / 3000)
        self._next_tick = 0.0
        self.committer = Committer(r, self.keys, s)
        self.dead = DeadLetters(r, self.keys, self.id)
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

    def run_once(self) -> int:
        """Tick when due, then read, process and commit one batch; returns the number of entries handled."""
        if time.monotonic() >= self._next_tick:
            self._next_tick = time.monotonic() + self.tick_s
            self.tick()
        entries = self.source.next_batch()
        if not entries:
            return 0
        fresh: list[Entry] = []
        failed_too_often: list[Entry] = []
        for e in entries:
            (failed_too_often if e.deliveries > self.s.max_deliveries else fresh).append(e)
        for e in failed_too_often:
            why = f"failed {e.deliveries - 1} deliveries (worker crashed or timed out on it)"
            if self.dead.send(e.cam, e.id, e.fields, why, e.deliveries):
                self.metrics.dead_lettered.labels("deliveries").inc()
        try:
            out = self.processor.process(fresh, self.ownership.held)
        except Exception:
            # Their frames stay pending here; read them again (in order, with the trackers as committed)
            # and, if they keep failing, dead-letter them after max_deliveries.
            cams = {e.cam for e in fresh}
            self.source.replay(cams)
            for cam in cams:
                if self.tracks is not None:
                    self.tracks.forget(cam)
            raise
        for entry, reason in out.failures:
            if self.dead.send(entry.cam, entry.id, entry.fields, reason, entry.deliveries):
                self.metrics.dead_lettered.labels("malformed").inc()
        self._commit(out)
        return len(entries)

    def _commit(self, out: BatchOutput) -> None:
        counted = self.committer.commit(out.outcomes)
        now = now_ms()
        n, m = 0, self.metrics
        for outcome, c in zip(out.outcomes, counted):
            if c == 0:  # another worker committed it first: this one's view of the camera is stale
                m.duplicates.inc()
                if self.tracks is not None:
                    self.tracks.forget(outcome.result.cam)
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
        """Loop until stopped; a Redis outage is logged once and waited out with backoff."""
        last_lag = 0.0
        while self.outage.turn(self.stop_signal):
            with self.outage.guard():
                try:
                    self.run_once()
                    if time.monotonic() - last_lag > 2.0:
                        last_lag = time.monotonic()
                        self._update_lag()
                except redis.ResponseError as exc:
                    if "NOGROUP" not in str(exc):
                        raise
                    # Redis restarted empty: take the cameras again, which recreates their groups.
                    log.warning("consumer group missing (%s); taking the cameras again", exc)
                    self._rejoin()
        self._leave()

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


def main(s: Settings, name: str | None = None) -> int:
    """Run a worker until SIGTERM or SIGINT (the batch in hand is finished first); exit 0."""
    stop = StopSignal().install()  # first: a signal while the models load stops the worker before it starts
    r = connect(s)
    pipeline = Pipeline.from_settings(s)
    worker = Worker(s, r, pipeline, name, stop)
    info = {"device": pipeline.runtime.device, "runtime": pipeline.runtime.name, "batch_size": s.batch_size,
            "input_size": pipeline.meta.input_size}
    heartbeat = Heartbeat(r, worker.keys, worker.id, info, worker.counts, s.heartbeat_ttl_ms,
                          outage=worker.outage)
    heartbeat.start()
    serve_metrics(s.worker_metrics_port, healthy=lambda: heartbeat.is_alive(), registry=worker.metrics.registry)
    log.info("worker %s: batch %d, max wait %d ms, tracking %s", worker.id, s.batch_size, s.max_wait_ms,
             "on" if s.tracking else "off")
    try:
        worker.run()
    finally:
        heartbeat.stop()
        if worker.executor:
            worker.executor.shutdown(wait=False)
    return 0
