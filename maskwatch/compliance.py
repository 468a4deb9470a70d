"""Compliance arithmetic over the workers' per-minute statistics (DESIGN.md: ``mw:stats``, ``mw:totals``).

The worker counts every frame into the minute of its capture time (UTC): hash
``mw:stats:{cam}:{yyyymmdd}``, field ``{minute of the day}:{counter}``. This module reads those
buckets back, sums them over a window or into a time series, and turns counts into compliance
(the share of detected faces wearing a mask). The dashboard and the side-job alerts both call it,
so a figure on a page and the figure an alert fires on are the same number.

A window of ``W`` seconds ending at ``now`` is every minute bucket that overlaps ``(now - W, now]``:
buckets are whole minutes, so it spans at least ``W`` and less than ``W`` + 1 minute, and the
"last minute" never reads as empty just after the clock turns a minute.

>>> bucket_of(1_700_000_000_000)
('20231114', 1333)
>>> Counts(faces=4, with_mask=3, without_mask=1).compliance
0.75
>>> Counts().compliance is None
True
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from datetime import datetime, timezone

import redis

from maskwatch.keys import Keys

COUNTERS = ("frames", "faces", "with_mask", "without_mask")
MINUTE_MS = 60_000
DAY_MINUTES = 1440
STATS_RETENTION_DAYS = 8  # the worker lets each day's hash expire after this; nothing older can be read


@dataclass(frozen=True)
class Counts:
    """Frames seen, faces found, and how those faces were labelled."""

    frames: int = 0
    faces: int = 0
    with_mask: int = 0
    without_mask: int = 0

    def __add__(self, other: "Counts") -> "Counts":
        return Counts(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(self)))

    @property
    def compliance(self) -> float | None:
        """``with_mask / faces``, or None when no face was seen (no face is no evidence either way)."""
        return self.with_mask / self.faces if self.faces else None

    @classmethod
    def from_hash(cls, raw: dict[bytes, bytes]) -> "Counts":
        """Counts from a hash keyed by counter name, e.g. ``mw:totals:{cam}``."""
        return cls(*(int(raw.get(name.encode(), 0)) for name in COUNTERS))


def total(counts: Iterable[Counts]) -> Counts:
    return sum(counts, Counts())


@dataclass(frozen=True)
class Point:
    """One step of a time series: the counts of the minutes in ``[start_ms, start_ms + step)``."""

    start_ms: int
    counts: Counts


def bucket_of(ts_ms: int) -> tuple[str, int]:
    """The stats day (``yyyymmdd``, UTC) and minute of that day (0..1439) of a capture time."""
    return _day(ts_ms // MINUTE_MS // DAY_MINUTES), ts_ms // MINUTE_MS % DAY_MINUTES


def stat_field(minute_of_day: int, counter: str) -> str:
    """The hash field of one counter in one minute: ``{minute}:{counter}``."""
    return f"{minute_of_day}:{counter}"


def _day(epoch_day: int) -> str:
    return datetime.fromtimestamp(epoch_day * 86_400, tz=timezone.utc).strftime("%Y%m%d")


def _minute_span(window_s: int, now_ms: int) -> tuple[int, int]:
    """First and last epoch minute of the buckets overlapping ``(now - window, now]``."""
    if window_s <= 0:
        raise ValueError(f"window must be positive, got {window_s} s")
    return (now_ms - window_s * 1000) // MINUTE_MS, now_ms // MINUTE_MS


def read_minutes(r: redis.Redis, keys: Keys, cams: Sequence[str], first: int, last: int) -> dict[str, dict[int, Counts]]:
    """Per camera, the counts of each epoch minute in ``[first, last]`` that holds any (one round trip)."""
    oldest = last - STATS_RETENTION_DAYS * DAY_MINUTES
    minutes_by_day: dict[int, list[int]] = defaultdict(list)
    for minute in range(max(first, oldest), last + 1):
        minutes_by_day[minute // DAY_MINUTES].append(minute)
    plan = [(cam, day, minutes) for cam in cams for day, minutes in sorted(minutes_by_day.items())]
    with r.pipeline(transaction=False) as p:
        for cam, day, minutes in plan:
            p.hmget(keys.stats(cam, _day(day)), [stat_field(m % DAY_MINUTES, c) for m in minutes for c in COUNTERS])
        replies = p.execute()
    out: dict[str, dict[int, Counts]] = {cam: {} for cam in cams}
    n = len(COUNTERS)
    for (cam, _, minutes), values in zip(plan, replies):
        for i, minute in enumerate(minutes):
            raw = values[i * n:(i + 1) * n]
            if any(v is not None for v in raw):
                out[cam][minute] = Counts(*(int(v or 0) for v in raw))
    return out


def windows(r: redis.Redis, keys: Keys, cams: Sequence[str], windows_s: Sequence[int], now_ms: int) -> dict[str, dict[int, Counts]]:
    """Per camera, the counts over each window (seconds) ending at ``now_ms``, read in one round trip."""
    spans = {w: _minute_span(w, now_ms) for w in windows_s}
    first = min(s[0] for s in spans.values())
    minutes = read_minutes(r, keys, cams, first, now_ms // MINUTE_MS)
    return {
        cam: {w: total(c for m, c in by_minute.items() if m >= lo) for w, (lo, _) in spans.items()}
        for cam, by_minute in minutes.items()
    }


def window(r: redis.Redis, keys: Keys, cam: str, window_s: int, now_ms: int) -> Counts:
    """The counts of one camera over the last ``window_s`` seconds (what an alert compares)."""
    return windows(r, keys, [cam], [window_s], now_ms)[cam][window_s]


def series(r: redis.Redis, keys: Keys, cam: str, window_s: int, step_s: int, now_ms: int) -> list[Point]:
    """The window cut into steps aligned to multiples of ``step_s`` since the epoch, oldest first.

    Every step is present, empty ones with zero counts, so a chart shows gaps where nothing was seen.
    """
    if step_s <= 0 or step_s % 60:
        raise ValueError(f"step must be a positive whole number of minutes, got {step_s} s")
    first, last = _minute_span(window_s, now_ms)
    step_min = step_s // 60
    first -= first % step_min
    by_minute = read_minutes(r, keys, [cam], first, last)[cam]
    sums: dict[int, Counts] = defaultdict(Counts)
    for minute, counts in by_minute.items():
        start = minute - minute % step_min
        sums[start] = sums[start] + counts
    return [Point(m * MINUTE_MS, sums.get(m, Counts())) for m in range(first, last + 1, step_min)]


def totals(r: redis.Redis, keys: Keys, cams: Sequence[str]) -> dict[str, Counts]:
    """Per camera, the counters since the camera was added (``mw:totals:{cam}``)."""
    with r.pipeline(transaction=False) as p:
        for cam in cams:
            p.hgetall(keys.totals(cam))
        return {cam: Counts.from_hash(raw) for cam, raw in zip(cams, p.execute())}
