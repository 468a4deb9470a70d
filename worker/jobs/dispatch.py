"""Turn violation events into webhook jobs: tail ``mw:events`` through the ``notifier`` consumer group.

The group starts at the end of the stream the first time any runner creates it, so a new
installation does not flood receivers with old events; from then on the group remembers its
place, and events written while every runner was down are sent when one comes back. An event is
acknowledged after its jobs are queued; one left pending by a runner that died is claimed by
another after :data:`CLAIM_IDLE_MS`, and re-queuing it is harmless (delivery ids are fixed per
event and URL). The worker already throttles events per camera, so each one is sent.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import redis

from maskwatch.codec import Event, Fields, decode_event
from maskwatch.exceptions import MessageError
from maskwatch.keys import NOTIFIER_GROUP, Keys
from maskwatch.service import RedisOutage, StopSignal
from maskwatch.streams import create_group
from worker.jobs.queue import JobContext
from worker.jobs.webhooks import Notifier, iso

log = logging.getLogger(__name__)
READ_COUNT = 100
BLOCK_MS = 1000
CLAIM_IDLE_MS = 60_000
CLAIM_EVERY_S = 30.0


def ensure_group(r: redis.Redis, keys: Keys) -> None:
    """The notifier group on the events stream, from now on: events older than the group are never sent."""
    create_group(r, keys.events, NOTIFIER_GROUP, "$")


class Dispatcher:
    def __init__(self, ctx: JobContext, notifier: Notifier, consumer: str):
        self.ctx, self.notifier, self.consumer = ctx, notifier, consumer
        self.r, self.keys = ctx.r, ctx.keys
        self._claimed_at = float("-inf")

    def payload(self, e: Event) -> dict[str, Any]:
        """The webhook body; an unmasked person's event also says who, how long they were seen and how sure."""
        body: dict[str, Any] = {
            "type": "violation", "camera": e.cam, "event_id": e.person or e.snap, "seq": e.seq, "ts": e.ts,
            "time": iso(e.ts), "probability": round(e.score, 4), "box": list(e.box),
            # No snapshot where the privacy setting kept none.
            "snapshot_url": self.ctx.snapshot_url(e.snap) if e.snap else None}
        if e.person:
            body |= {"person": e.person, "seen_s": round(e.duration_ms / 1000, 1), "confidence": round(e.confidence, 4)}
        return body

    def _handle(self, entry_id: bytes, fields: Fields) -> None:
        eid = entry_id.decode()
        try:
            event = decode_event(fields)
        except MessageError as exc:  # a bad entry is skipped, never retried forever
            self.ctx.metrics.events_malformed.inc()
            log.warning("skipping event %s: %s", eid, exc, extra={"entry": eid})
            return
        self.notifier.send("violation", event.cam, f"event|{eid}", self.payload(event))
        self.ctx.metrics.events_dispatched.inc()

    def _entries(self, block_ms: int | None) -> list[tuple[bytes, Fields]]:
        entries: list[Any] = []
        if time.monotonic() - self._claimed_at > CLAIM_EVERY_S:  # events left pending by a runner that died
            self._claimed_at = time.monotonic()
            claimed: Any = self.r.xautoclaim(self.keys.events, NOTIFIER_GROUP, self.consumer, CLAIM_IDLE_MS, "0-0",
                                             count=READ_COUNT)
            entries += claimed[1]
        read: Any = self.r.xreadgroup(NOTIFIER_GROUP, self.consumer, {self.keys.events: ">"}, count=READ_COUNT,
                                      block=None if entries else block_ms)
        for _, got in read or []:
            entries += got
        return [(i, f) for i, f in entries if f]  # entries trimmed away while pending come back empty

    def run_once(self, block_ms: int | None = None) -> int:
        """Queue the webhooks of the next events (waiting up to ``block_ms`` for some); returns how many."""
        entries = self._entries(block_ms)
        for entry_id, fields in entries:
            self._handle(entry_id, fields)
            self.r.xack(self.keys.events, NOTIFIER_GROUP, entry_id)
        return len(entries)

    def drain(self) -> int:
        """Everything new, without waiting (burst mode)."""
        ensure_group(self.r, self.keys)
        n = 0
        while (got := self.run_once()) > 0:
            n += got
        return n

    def run(self, stop: StopSignal, outage: RedisOutage) -> None:
        """Loop until ``stop``; waits out Redis outages and survives restarts (the group is recreated)."""
        while outage.turn(stop):
            with outage.guard():
                try:
                    if outage.down:  # Redis may come back empty
                        ensure_group(self.r, self.keys)
                    self.run_once(BLOCK_MS)
                except redis.ResponseError as exc:
                    if "NOGROUP" not in str(exc):
                        raise
                    log.warning("notifier group missing (%s); recreating it", exc)
                    ensure_group(self.r, self.keys)
