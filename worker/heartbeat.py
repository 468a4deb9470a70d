"""The worker's heartbeat: ``mw:worker:{id}`` with its device, runtime, batch size and throughput, under a TTL.

The dashboard lists live workers from these keys; a worker that dies simply expires.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from dataclasses import dataclass, field

import redis

from maskwatch.keys import Keys
from maskwatch.service import RedisOutage, redis_address

log = logging.getLogger(__name__)


@dataclass
class Throughput:
    """Frames and crops counted, and the rates over the last interval (updated by the worker loop)."""

    frames: int = 0
    crops: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, frames: int, crops: int) -> None:
        with self.lock:
            self.frames += frames
            self.crops += crops


class Heartbeat(threading.Thread):
    def __init__(self, r: redis.Redis, keys: Keys, worker_id: str, info: dict[str, object], counts: Throughput,
                 ttl_ms: int, interval_s: float = 2.0, outage: RedisOutage | None = None):
        """``outage``: the worker's, so that one outage is said once per process."""
        super().__init__(name="heartbeat", daemon=True)
        self.r, self.key, self.worker_id, self.info, self.counts = r, keys.worker(worker_id), worker_id, info, counts
        self.ttl_ms, self.interval_s = ttl_ms, interval_s
        self.outage = outage or RedisOutage(f"heartbeat {worker_id}", redis_address(r), "the worker may look gone")
        self.stopping = threading.Event()
        self.started_at = time.time()

    def run(self) -> None:
        last_t, last_frames, last_crops = time.monotonic(), 0, 0
        refused = False  # the last write was refused (logged once until one is taken)
        while not self.stopping.wait(self.interval_s):
            now = time.monotonic()
            with self.counts.lock:
                frames, crops = self.counts.frames, self.counts.crops
            dt = max(1e-6, now - last_t)
            fields = {**self.info, "id": self.worker_id, "host": socket.gethostname(), "pid": os.getpid(),
                      "started": int(self.started_at), "last_seen": int(time.time()), "frames_total": frames,
                      "fps": round((frames - last_frames) / dt, 2), "crops_per_s": round((crops - last_crops) / dt, 2)}
            last_t, last_frames, last_crops = now, frames, crops
            if not self.outage.may_try():  # Redis is down, and the worker's loop tries it meanwhile
                continue
            try:
                with self.outage.guard(), self.r.pipeline(transaction=True) as p:
                    p.hset(self.key, mapping={k: str(v) for k, v in fields.items()})
                    p.pexpire(self.key, self.ttl_ms)
                    p.execute()
            except redis.RedisError as exc:  # refused, say out of memory: the thread (and /healthz) must live on
                if not refused:
                    log.warning("heartbeat %s refused by Redis (%s); retried every %.0f s, the dashboard may show "
                                "the worker gone meanwhile", self.worker_id, exc, self.interval_s)
                refused = True
            else:
                refused = False

    def stop(self) -> None:
        self.stopping.set()
        try:
            self.r.delete(self.key)
        except redis.RedisError:
            pass
