"""Person records read back: a camera's people newest first, and the site's merged across cameras.

When a face track ends, the worker's commit writes one person record (docs/architecture.md,
"Keyed by camera"): ``mw:{cam}:person:{n}``, JSON, expiring after the retention, and the track
number ``n`` in the camera's sorted set ``mw:{cam}:people`` scored by the person's last-seen time.
A record can expire before the commit trims its member from the set; such members are skipped.

Lists run newest first in one total order, (last seen, person id) descending, so a page cursor is
exact even when several people left in the same frame: :class:`Cursor` is the last person of a page,
and the next page starts strictly after it. ``unmasked_first`` puts the unmasked people of a page
before the masked ones (each group still newest first); pages still follow each other by time.

>>> Cursor.parse("1700000000000:lobby-12"), Cursor.parse("1700000000000")
(Cursor(ts=1700000000000, person='lobby-12'), Cursor(ts=1700000000000, person=None))
>>> str(Cursor(1700000000000, "lobby-12"))
'1700000000000:lobby-12'
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import redis

from maskwatch.codec import LABELS
from maskwatch.exceptions import MessageError
from maskwatch.keys import Keys
from maskwatch.utils import json_object

log = logging.getLogger(__name__)
UNMASKED = "without_mask"
_KIND = "person"


@dataclass(frozen=True)
class Person:
    """One tracked person: when they were seen, how often, and how the vote over their looks labelled them."""

    id: str  # "{cam}-{n}"
    cam: str
    first_ts: int  # epoch ms
    last_ts: int
    duration_ms: int
    frames: int  # frames in which their face was detected
    looks: int  # of those, classifications
    label: str  # with_mask | without_mask
    confidence: float  # the vote's probability of that label, 0.5..1
    best_ts: int  # capture time of the best look
    best_box: tuple[int, int, int, int] | None  # [x, y, w, h] of the best look
    snap: str  # snapshot id ("person-{cam}-{n}"), "" when none was stored

    def to_json(self) -> dict[str, Any]:
        """The record as the worker stores it (``keys.person``)."""
        return {"id": self.id, "cam": self.cam, "first_ts": self.first_ts, "last_ts": self.last_ts,
                "duration_ms": self.duration_ms, "frames": self.frames, "looks": self.looks, "label": self.label,
                "confidence": round(self.confidence, 4), "best_ts": self.best_ts,
                "best_box": list(self.best_box) if self.best_box else None, "snap": self.snap}

    @classmethod
    def from_json(cls, raw: bytes | str) -> Person:
        """A stored record; raises :class:`MessageError` naming the field that is missing or malformed."""
        d = json_object(raw, _KIND, "(record)")
        label = d.get("label")
        if label not in LABELS:
            raise MessageError(_KIND, "label", f"must be one of {', '.join(LABELS)}, got {label!r:.40}")
        box = d.get("best_box")
        if box is not None and not (isinstance(box, list) and len(box) == 4
                                    and all(isinstance(x, (int, float)) for x in box)):
            raise MessageError(_KIND, "best_box", f"must be [x, y, w, h] or null, got {box!r:.60}")
        snap = d.get("snap", "")
        if not isinstance(snap, str):
            raise MessageError(_KIND, "snap", "must be a string")
        return cls(id=_text(d, "id"), cam=_text(d, "cam"), first_ts=_int(d, "first_ts"), last_ts=_int(d, "last_ts"),
                   duration_ms=_int(d, "duration_ms"), frames=_int(d, "frames"), looks=_int(d, "looks"), label=label,
                   confidence=_number(d, "confidence"), best_ts=_int(d, "best_ts"),
                   best_box=(int(box[0]), int(box[1]), int(box[2]), int(box[3])) if box else None, snap=snap)


def _text(d: dict[str, Any], name: str) -> str:
    value = d.get(name)
    if not isinstance(value, str) or not value:
        raise MessageError(_KIND, name, "must be a non-empty string")
    return value


def _int(d: dict[str, Any], name: str) -> int:
    value = d.get(name)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise MessageError(_KIND, name, f"must be a whole number >= 0, got {value!r:.40}")
    return value


def _number(d: dict[str, Any], name: str) -> float:
    value = d.get(name)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise MessageError(_KIND, name, f"must be a number, got {value!r:.40}")
    return float(value)


@dataclass(frozen=True)
class Cursor:
    """Where a page ended: the last-seen time and id of its last person (``None``: everyone seen before ``ts``)."""

    ts: int
    person: str | None = None

    @classmethod
    def parse(cls, text: str) -> Cursor:
        """``{epoch ms}`` or ``{epoch ms}:{person id}``; raises ValueError saying what is wrong."""
        ts, colon, person = text.partition(":")
        if not ts.isdigit() or (colon and not person):
            raise ValueError(f"{text!r} is not a cursor: give an epoch ms, or the next_before of the previous page")
        return cls(int(ts), person or None)

    def __str__(self) -> str:
        return str(self.ts) if self.person is None else f"{self.ts}:{self.person}"

    def admits(self, ts: int, person: str) -> bool:
        """Whether a person last seen at ``ts`` comes after this cursor, newest first."""
        return ts < self.ts or (ts == self.ts and self.person is not None and person < self.person)


@dataclass(frozen=True)
class Page:
    people: list[Person]
    next: Cursor | None  # where the next page starts; None when this one reached the oldest record


def _newest(r: redis.Redis, keys: Keys, cams: Sequence[str], want: int,
            cursor: Cursor | None) -> dict[str, list[tuple[int, Person]]]:
    """Per camera, up to ``want`` readable records after the cursor, newest first, with their scores.

    Sorted-set order (score, then member, descending) is the lists' order within a camera, since a
    camera's ids share the prefix ``{cam}-``. Expired or unreadable records are skipped and more
    members read in their place, in a few pipelined rounds.
    """
    found: dict[str, list[tuple[int, Person]]] = {cam: [] for cam in cams}
    offset = dict.fromkeys(cams, 0)
    chunk = want + 8  # a little over: some members' records may have expired
    todo = list(cams)
    high = "+inf" if cursor is None else str(cursor.ts)
    while todo:
        with r.pipeline(transaction=False) as p:
            for cam in todo:
                p.zrevrangebyscore(keys.people(cam), high, "-inf", start=offset[cam], num=chunk, withscores=True)
            members = dict(zip(todo, p.execute()))
        with r.pipeline(transaction=False) as p:
            for cam in todo:
                if members[cam]:
                    p.mget([keys.person(cam, m.decode()) for m, _ in members[cam]])
            records = iter(p.execute())
        more = []
        for cam in todo:
            batch = members[cam]
            if not batch:
                continue
            offset[cam] += len(batch)
            for (member, score), raw in zip(batch, next(records)):
                ts, person_id = int(score), f"{cam}-{member.decode()}"
                if raw is None or (cursor is not None and not cursor.admits(ts, person_id)):
                    continue  # expired (the set is trimmed later), or on the cursor's side of a tie
                try:
                    found[cam].append((ts, Person.from_json(raw)))
                except MessageError as exc:
                    log.warning("skipping unreadable person record %s: %s", person_id, exc, extra={"cam": cam})
            if len(found[cam]) < want and len(batch) == chunk:
                more.append(cam)
            del found[cam][want:]
        todo = more
    return found


def newest_people(r: redis.Redis, keys: Keys, cams: Sequence[str], limit: int, before: Cursor | None = None,
                  unmasked_first: bool = False) -> Page:
    """The ``limit`` people of ``cams`` last seen most recently (before the cursor), merged newest first.

    One camera is a camera's timeline; all registered cameras the site's. Reads a few pipelined round
    trips whatever the number of cameras: each camera's newest ``limit`` candidates, then the merge.
    """
    if limit < 1:
        raise ValueError(f"limit must be at least 1, got {limit}")
    per_cam = _newest(r, keys, cams, limit + 1, before)  # one more tells whether an older page exists
    merged = sorted((entry for found in per_cam.values() for entry in found),
                    key=lambda e: (e[0], e[1].id), reverse=True)
    page, rest = merged[:limit], merged[limit:]
    nxt = Cursor(page[-1][0], page[-1][1].id) if rest else None
    people = [p for _, p in page]
    if unmasked_first:
        people.sort(key=lambda p: p.label != UNMASKED)  # stable: each group stays newest first
    return Page(people, nxt)
