"""`maskwatch worker`: the consume -> detect -> classify -> commit loop, its heartbeat and metrics.

Stateless: any frame may go to any worker; run one per core (CPU) or per GPU. Survives Redis
restarts (reconnects, recreates the group) and bad frames (dead-lettered) without a restart.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import cv2
import redis

from maskwatch.cameras import CameraConfig, Registry
from maskwatch.keys import Keys
from maskwatch.metrics_server import serve_metrics
from maskwatch.redis_conn import connect
from maskwatch.settings import Settings
from maskwatch.vision.annotate import annotate
from maskwatch.vision.pipeline import Pipeline, encode_jpeg
from worker import metrics
from worker.commit import Committer
from maskwatch.streams import ensure_group, group_info
from worker.consumer import FrameSource
from worker.deadletter import DeadLetters
from worker.heartbeat import Heartbeat, Throughput
from worker.processing import BatchOutput, Processor

log = logging.getLogger(__name__)
LATEST_EVERY_S = 0.5  # refresh a camera's newest annotated frame at most this often


class Worker:
    def __init__(self, s: Settings, r: redis.Redis, pipeline: Pipeline, name: str | None = None):
        self.s, self.r, self.keys = s, r, Keys(s.prefix)
        self.id = name or f"{socket.gethostname()}-{os.getpid()}"
        self.pipeline = pipeline
        # Decode and detection run in threads (OpenCV releases the GIL); OpenCV's own pool would nest.
        cv2.setNumThreads(1)
        threads = s.threads or os.cpu_count() or 1
        self.executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="detect") if threads > 1 else None
        self.processor = Processor(pipeline, self.id, s.event_throttle_s, self.executor)
        self.source = FrameSource(r, self.keys, self.id, s.batch_size, s.max_wait_ms, s.claim_idle_ms)
        self.committer = Committer(r, self.keys, s)
        self.dead = DeadLetters(r, self.keys, self.id)
        self.registry = Registry(r, self.keys)
        self.counts = Throughput()
        self.stopping = threading.Event()
        self._cameras: dict[str, CameraConfig] = {}
        self._cameras_version = -1
        self._cameras_checked = 0.0
        self._latest_at: dict[str, float] = {}

    # --- cameras (ROI, minimum face size), refreshed when the registry version moves
    def cameras(self) -> dict[str, CameraConfig]:
        now = time.monotonic()
        if now - self._cameras_checked > 1.0:
            self._cameras_checked = now
            version = self.registry.version()
            if version != self._cameras_version:
                self._cameras, _ = self.registry.all()
                self._cameras_version = version
        return self._cameras

    def run_once(self) -> int:
        """Read, process and commit one batch; returns the number of entries handled."""
        entries = self.source.next_batch()
        if not entries:
            return 0
        fresh, failed_too_often = [], []
        for e in entries:
            (failed_too_often if e.deliveries > self.s.max_deliveries else fresh).append(e)
        for e in failed_too_often:
            if self.dead.send(e.id, e.fields, f"failed {e.deliveries - 1} deliveries (worker crashed or timed out on it)", e.deliveries):
                metrics.DEAD_LETTERED.labels("deliveries").inc()
        out = self.processor.process(fresh, self.cameras())
        for entry, reason in out.failures:
            if self.dead.send(entry.id, entry.fields, reason, entry.deliveries):
                metrics.DEAD_LETTERED.labels("malformed").inc()
        self._commit(out)
        return len(entries)

    def _commit(self, out: BatchOutput) -> None:
        counted = self.committer.commit(out.outcomes)
        now = time.time() * 1000
        n = 0
        for outcome, c in zip(out.outcomes, counted):
            if c == 0:
                metrics.DUPLICATES.inc()
                continue
            n += 1
            for f in outcome.result.faces:
                metrics.FACES.labels(f.label).inc()
            metrics.LATENCY.observe(max(0.0, (now - outcome.result.ts) / 1000))
        metrics.FRAMES.inc(n)
        metrics.BATCH_FRAMES.observe(len(out.outcomes))
        metrics.BATCH_CROPS.observe(out.crops)
        metrics.DETECTION.observe(out.detect_s)
        metrics.INFERENCE.observe(out.infer_s)
        self.counts.add(n, out.crops)
        self._publish_latest(out)

    def _publish_latest(self, out: BatchOutput) -> None:
        now = time.monotonic()
        pipe = self.r.pipeline(transaction=False)
        for cam, (_frame, image, faces) in out.newest.items():
            if now - self._latest_at.get(cam, 0.0) < LATEST_EVERY_S:
                continue
            self._latest_at[cam] = now
            pipe.set(self.keys.latest(cam), encode_jpeg(annotate(image, faces), 80), ex=self.s.latest_ttl_s)
        pipe.execute()

    def _update_lag(self) -> None:
        info = group_info(self.r, self.keys)
        if info is not None and info.lag is not None:
            metrics.LAG.set(info.lag)

    def run(self) -> None:
        """Loop until stopped; a Redis outage is logged once and waited out with backoff."""
        down_since: float | None = None
        backoff = 0.2
        last_lag = 0.0
        need_group = True  # at start, and after an outage (Redis may have come back empty)
        while not self.stopping.is_set():
            try:
                if need_group:
                    ensure_group(self.r, self.keys)
                    need_group = False
                self.run_once()
                if time.monotonic() - last_lag > 2.0:
                    last_lag = time.monotonic()
                    self._update_lag()
                if down_since is not None:
                    log.info("Redis is back after %.1f s; consuming again", time.monotonic() - down_since)
                    down_since, backoff = None, 0.2
            except redis.ResponseError as exc:
                if "NOGROUP" in str(exc):  # Redis restarted empty, or the stream was deleted
                    log.warning("consumer group missing (%s); recreating it", exc)
                    ensure_group(self.r, self.keys)
                    continue
                raise
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                need_group = True
                if down_since is None:
                    down_since = time.monotonic()
                    log.warning("Redis unreachable (%s); retrying with backoff, frames stay pending", exc)
                self.stopping.wait(backoff)
                backoff = min(5.0, backoff * 2)

    def stop(self) -> None:
        self.stopping.set()


def main(s: Settings, name: str | None = None) -> int:
    r = connect(s)
    pipeline = Pipeline.from_settings(s)
    worker = Worker(s, r, pipeline, name)
    info = {"device": pipeline.runtime.device, "runtime": pipeline.runtime.name, "batch_size": s.batch_size,
            "input_size": pipeline.meta.input_size}
    heartbeat = Heartbeat(r, worker.keys, worker.id, info, worker.counts, s.heartbeat_ttl_ms)
    heartbeat.start()
    serve_metrics(s.worker_metrics_port, healthy=lambda: heartbeat.is_alive())

    def on_signal(signum: int, _frame: object) -> None:
        log.info("signal %d: finishing the current batch, then stopping", signum)
        worker.stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    log.info("worker %s consuming %s (group %s), batch %d, max wait %d ms", worker.id, worker.keys.frames,
             worker.keys.group, s.batch_size, s.max_wait_ms)
    try:
        worker.run()
    finally:
        heartbeat.stop()
        if worker.executor:
            worker.executor.shutdown(wait=False)
    return 0
