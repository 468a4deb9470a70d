"""Read frames from the ``workers`` consumer group into batches, reclaiming frames left by dead workers.

A batch is flushed when it holds ``batch_size`` frames or ``max_wait_ms`` after its first frame
arrived, whichever comes first. Frames pending on another consumer for longer than
``claim_idle_ms`` are taken over with ``XAUTOCLAIM``; each entry carries its delivery count so
the worker can dead-letter frames that keep failing.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import redis

from maskwatch.keys import Keys

log = logging.getLogger(__name__)


@dataclass
class Entry:
    id: str
    fields: dict[bytes, bytes]
    deliveries: int = 1


class FrameSource:
    def __init__(self, r: redis.Redis, keys: Keys, consumer: str, batch_size: int, max_wait_ms: int,
                 claim_idle_ms: int, idle_block_ms: int = 1000):
        self.r, self.keys, self.consumer = r, keys, consumer
        self.batch_size, self.max_wait_ms = batch_size, max_wait_ms
        self.claim_idle_ms, self.idle_block_ms = claim_idle_ms, idle_block_ms
        self._claim_cursor = "0-0"
        self._next_claim = 0.0

    def _read(self, count: int, block_ms: int) -> list[Entry]:
        resp = self.r.xreadgroup(self.keys.group, self.consumer, {self.keys.frames: ">"}, count=count, block=block_ms)
        out = []
        for _stream, entries in resp or []:
            for entry_id, fields in entries:
                out.append(Entry(entry_id.decode(), fields or {}))
        return out

    def claim(self) -> list[Entry]:
        """Take over frames idle on other consumers; returns them with their delivery counts."""
        resp = self.r.xautoclaim(self.keys.frames, self.keys.group, self.consumer, self.claim_idle_ms,
                                 start_id=self._claim_cursor, count=self.batch_size)
        cursor, claimed = resp[0], resp[1]
        self._claim_cursor = cursor.decode() if isinstance(cursor, bytes) else str(cursor)
        entries = [Entry(eid.decode(), fields or {}) for eid, fields in claimed if fields is not None]
        if entries:
            pending = self.r.xpending_range(self.keys.frames, self.keys.group, min=entries[0].id, max=entries[-1].id,
                                            count=len(entries) * 4, consumername=self.consumer)
            counts = {p["message_id"].decode(): int(p["times_delivered"]) for p in pending}
            for e in entries:
                e.deliveries = counts.get(e.id, 2)
            log.info("claimed %d frame(s) idle for over %d ms on other workers", len(entries), self.claim_idle_ms)
        return entries

    def next_batch(self) -> list[Entry]:
        """Up to ``batch_size`` entries: reclaimed ones first, then new ones, waiting at most ``max_wait_ms`` to fill."""
        batch: list[Entry] = []
        now = time.monotonic()
        if now >= self._next_claim:
            self._next_claim = now + max(0.5, self.claim_idle_ms / 4000)
            batch.extend(self.claim())
        deadline: float | None = now + self.max_wait_ms / 1000 if batch else None
        while len(batch) < self.batch_size:
            if deadline is None:
                block = self.idle_block_ms
            else:
                block = int((deadline - time.monotonic()) * 1000)
                if block <= 0:
                    break
            got = self._read(self.batch_size - len(batch), block)
            if not got:
                break
            batch.extend(got)
            if deadline is None:
                deadline = time.monotonic() + self.max_wait_ms / 1000
        return batch
