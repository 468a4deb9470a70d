"""Read the frames of the cameras this worker holds, in order, into batches.

Every camera has a frames stream of its own with a consumer group ``workers``; only the worker
that holds the camera's worker lease reads it (docs/architecture.md, "Keyed by camera"), so a
camera's frames are analysed in capture order and in one place, as tracking needs.

When a worker takes a camera, the frames its previous holder read but never committed are pending
under that holder's name: they are claimed at once (``XCLAIM`` with no idle time: the lease says
the holder is gone), read back in order from this consumer's pending list (id ``0``), and
only then are new frames read (``>``). The same replay follows a batch that failed half-way.
Frames queued too long ago, say by a run that failed, are dropped first (:mod:`worker.stale`).

A batch takes at most ``ceil(batch_size / cameras)`` frames of each camera, so a camera with a
backlog cannot starve the others, and is flushed when full or ``max_wait_ms`` after its first
frame. Each entry carries its delivery count: a frame read again (its worker died, or its batch
broke off) is run alone (:mod:`worker.suspects`).
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import Any

import redis

from maskwatch.keys import Keys
from maskwatch.streams import ensure_group
from maskwatch.utils import text
from worker.stale import StaleFrames

log = logging.getLogger(__name__)
CLAIM_COUNT = 1000  # pending entries listed per call when a camera is taken over


@dataclass
class Entry:
    cam: str
    id: str
    fields: dict[bytes, bytes]
    deliveries: int = 1


class FrameSource:
    """The frames of the held cameras: ``add`` a camera when its lease is taken, ``remove`` it when lost."""

    def __init__(self, r: redis.Redis, keys: Keys, consumer: str, batch_size: int, max_wait_ms: int,
                 idle_block_ms: int = 500, max_age_ms: int = 0):
        self.r, self.keys, self.consumer = r, keys, consumer
        # Frames queued longer ago than max_age_ms when a camera is taken are dropped (0: none are).
        self.stale = StaleFrames(r, keys, consumer, max_age_ms) if max_age_ms else None
        self.batch_size, self.max_wait_ms, self.idle_block_ms = batch_size, max_wait_ms, idle_block_ms
        self.cams: set[str] = set()
        self._replay: set[str] = set()  # cameras whose pending frames are read back before new ones

    def add(self, cam: str) -> int:
        """Start reading ``cam``: take over the frames pending on its previous holders; returns how many."""
        ensure_group(self.r, self.keys, cam)
        stream, claimed, start = self.keys.frames(cam), 0, "-"
        while True:
            page: list[dict[str, Any]] = self.r.xpending_range(stream, self.keys.group, min=start, max="+",
                                                               count=CLAIM_COUNT)
            theirs: list[Any] = [p["message_id"] for p in page if text(p["consumer"]) != self.consumer]
            if theirs:  # JUSTID: a take-over is no delivery, so it does not bring a good frame nearer the DLQ
                self.r.xclaim(stream, self.keys.group, self.consumer, 0, theirs, justid=True)
                claimed += len(theirs)
            if len(page) < CLAIM_COUNT:
                break
            start = "(" + text(page[-1]["message_id"])
        if self.stale is not None:
            self.stale.drop(cam)
        self.cams.add(cam)
        self._replay.add(cam)
        if claimed:
            log.info("took over %d frame(s) pending on the camera's previous worker", claimed, extra={"cam": cam})
        return claimed

    def remove(self, cam: str) -> None:
        """Stop reading ``cam``; frames pending here are claimed by its next holder."""
        self.cams.discard(cam)
        self._replay.discard(cam)

    def replay(self, cams: set[str]) -> None:
        """Read the pending frames of ``cams`` again before new ones (their batch failed before its commit)."""
        self._replay |= cams & self.cams

    def next_batch(self) -> list[Entry]:
        """Up to ``batch_size`` entries, each camera's in order: replayed ones first, then new ones."""
        if not self.cams:
            time.sleep(self.idle_block_ms / 1000)  # nothing held yet: the caller's next tick may bring cameras
            return []
        per_cam = math.ceil(self.batch_size / len(self.cams))
        batch = self._read_pending(per_cam) if self._replay else []
        deadline: float | None = time.monotonic() + self.max_wait_ms / 1000 if batch else None
        while len(batch) < self.batch_size:
            if deadline is None:
                block = self.idle_block_ms
            else:
                block = int((deadline - time.monotonic()) * 1000)
                if block <= 0:
                    break
            streams: dict[Any, Any] = {self.keys.frames(c): ">" for c in sorted(self.cams - self._replay)}
            if not streams:
                break
            got = self._entries(self.r.xreadgroup(self.keys.group, self.consumer, streams, count=per_cam,
                                                  block=block))
            if not got:
                break
            batch.extend(got)
            if deadline is None:
                deadline = time.monotonic() + self.max_wait_ms / 1000
        return batch

    def _read_pending(self, per_cam: int) -> list[Entry]:
        """This consumer's pending frames of the replayed cameras, with their delivery counts."""
        streams: dict[Any, Any] = {self.keys.frames(c): "0" for c in sorted(self._replay)}
        got = self._entries(self.r.xreadgroup(self.keys.group, self.consumer, streams, count=per_cam))
        seen = {e.cam for e in got}
        self._replay &= seen  # a camera with nothing pending left reads new frames from now on
        for cam in seen:
            mine = [e for e in got if e.cam == cam]
            pending: list[dict[str, Any]] = self.r.xpending_range(
                self.keys.frames(cam), self.keys.group, min=mine[0].id, max=mine[-1].id, count=len(mine),
                consumername=self.consumer)
            counts = {text(p["message_id"]): int(p["times_delivered"]) for p in pending}
            for e in mine:
                e.deliveries = counts.get(e.id, 2)
        return got

    def _entries(self, resp: object) -> list[Entry]:
        out: list[Entry] = []
        for stream, entries in resp or []:  # type: ignore[attr-defined]
            cam = self.keys.camera_of_frames(text(stream))
            trimmed = [entry_id for entry_id, fields in entries if fields is None]
            if trimmed:  # pending entries trimmed from the stream meanwhile: nothing left to analyse
                log.warning("%d pending frame(s) were trimmed before analysis", len(trimmed), extra={"cam": cam})
                self.r.xack(self.keys.frames(cam), self.keys.group, *trimmed)
            out += [Entry(cam, text(entry_id), fields) for entry_id, fields in entries if fields is not None]
        return out
