"""Compliance arithmetic over the workers' per-minute statistics (DESIGN.md: ``mw:stats``, ``mw:totals``).

The worker counts every frame into the minute of its capture time (UTC): hash
``mw:{cam}:stats:{yyyymmdd}``, field ``{minute of the day}:{counter}``. Two kinds of figure share
the buckets: *observations* (``frames``, ``faces``, ``with_mask``, ``without_mask``: every face of
every frame) and *people* (``people``, ``people_with_mask``, ``people_without_mask``: one count a
tracked person, in the minute their track ended; docs/architecture.md, "Keyed by camera"). This
module reads those buckets back, sums them over a window or into a time series, and turns counts
into compliance: by observations, the share of faces wearing a mask; by people, the share of
people whose voted label is masked. The dashboard and the side-job alerts both call it, so a
figure on a page and the figure an alert fires on are the same number.

A window of ``W`` seconds ending at ``now`` is every minute bucket that overlaps ``(now - W, now]``:
buckets are whole minutes, so it spans at least ``W`` and less than ``W`` + 1 minute, and the
"last minute" never reads as empty just after the clock turns a minute.

>>> bucket_of(1_700_000_000_000)
('20231114', 1333)
>>> Counts(faces=4, with_mask=3, without_mask=1).compliance
0.75
>>> Counts().compliance is None
True
>>> Counts(people=5, people_with_mask=4, people_without_mask=1).people_compliance
0.8
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from datetime import UTC, datetime

import redis

from maskwatch.keys import Keys

# The order of Counts' fields: the Lua script below returns the counters of a bin in this order.
COUNTERS = ("frames", "faces", "with_mask", "without_mask", "people", "people_with_mask", "people_without_mask")
MINUTE_MS = 60_000
DAY_MINUTES = 1440
STATS_RETENTION_DAYS = 8  # the worker lets each day's hash expire after this; nothing older can be read
STATS_TTL_S = STATS_RETENTION_DAYS * 86_400  # the TTL the worker's commit puts on a day's hash
MAX_TS_MS = 253_402_300_800_000  # 10000-01-01 UTC: the first epoch ms without a yyyymmdd day
# Round lengths of time (seconds) for series steps and axis ticks: every chart reads 1 min, 5 min, 1 h...
ROUND_STEPS_S = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14_400, 21_600)


def round_step(span_s: float, max_points: float, at_least_s: int = 1) -> int:
    """The shortest round step, at least ``at_least_s``, that cuts ``span_s`` into ``max_points`` or fewer.

    >>> round_step(900, 120, at_least_s=60), round_step(86_400, 120, at_least_s=60), round_step(95, 6)
    (60, 900, 30)
    """
    steps = [s for s in ROUND_STEPS_S if s >= at_least_s]
    return next((s for s in steps if span_s / s <= max_points), steps[-1])


@dataclass(frozen=True)
class Counts:
    """Observations (frames seen, faces found, how those faces were labelled) and people (tracks ended, by vote)."""

    frames: int = 0
    faces: int = 0
    with_mask: int = 0
    without_mask: int = 0
    people: int = 0
    people_with_mask: int = 0
    people_without_mask: int = 0

    def __add__(self, other: Counts) -> Counts:
        return Counts(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(self)))

    @property
    def compliance(self) -> float | None:
        """``with_mask / faces``, or None when no face was seen (no face is no evidence either way)."""
        return self.with_mask / self.faces if self.faces else None

    @property
    def people_compliance(self) -> float | None:
        """``people_with_mask / people``, or None when nobody was counted."""
        return self.people_with_mask / self.people if self.people else None

    @classmethod
    def from_hash(cls, raw: dict[bytes, bytes]) -> Counts:
        """Counts from a hash keyed by counter name, e.g. ``mw:{cam}:totals``."""
        return cls(*(int(raw.get(name.encode(), 0)) for name in COUNTERS))


def total(counts: Iterable[Counts]) -> Counts:
    return sum(counts, Counts())


@dataclass(frozen=True)
class Point:
    """One step of a time series: the counts of the minutes in ``[start_ms, start_ms + step)``."""

    start_ms: int
    counts: Counts


def bucket_of(ts_ms: int) -> tuple[str, int]:
    """The stats day (``yyyymmdd``, UTC) and minute of that day (0..1439) of a capture time.

    Raises ValueError naming the time when it has no calendar day (before 1970 or after 9999);
    frames are refused long before that (:func:`maskwatch.codec.decode_frame` keeps capture
    times within the statistics' retention).

    >>> bucket_of(2**53)
    Traceback (most recent call last):
    ...
    ValueError: capture time 9007199254740992 ms is outside 1970-9999: it has no statistics day
    """
    if not 0 <= ts_ms < MAX_TS_MS:
        raise ValueError(f"capture time {ts_ms} ms is outside 1970-9999: it has no statistics day")
    return _day(ts_ms // MINUTE_MS // DAY_MINUTES), ts_ms // MINUTE_MS % DAY_MINUTES


def stat_field(minute_of_day: int, counter: str) -> str:
    """The hash field of one counter in one minute: ``{minute}:{counter}``."""
    return f"{minute_of_day}:{counter}"


def _day(epoch_day: int) -> str:
    return datetime.fromtimestamp(epoch_day * 86_400, tz=UTC).strftime("%Y%m%d")


def _minute_span(window_s: int, now_ms: int) -> tuple[int, int]:
    """First and last epoch minute of the buckets overlapping ``(now - window, now]``."""
    if window_s <= 0:
        raise ValueError(f"window must be positive, got {window_s} s")
    return (now_ms - window_s * 1000) // MINUTE_MS, now_ms // MINUTE_MS


# Sums minute buckets into bins inside Redis, so a day of minutes per camera costs one small reply
# instead of thousands of fields (a week of one camera is 70,560 of them).
# KEYS: the stats hashes of consecutive days, oldest first; ARGV[1]: the epoch day of KEYS[1];
# ARGV[2]: n, the number of counters; ARGV[3..2+n]: their names; ARGV[3+n..]: bin boundaries in epoch
# minutes, ascending; bin i holds the minutes [b[i], b[i+1]). Returns the n counters of each bin, flattened.
_SUM_BINS = """
local first_day = tonumber(ARGV[1])
local n = tonumber(ARGV[2])
local names = {}
for j = 1, n do names[j] = ':' .. ARGV[2 + j] end
local out = {}
local f = {}
for i = 3 + n, #ARGV - 1 do
  local sums = {}
  for j = 1, n do sums[j] = 0 end
  for m = tonumber(ARGV[i]), tonumber(ARGV[i + 1]) - 1 do
    local mod = m % 1440
    for j = 1, n do f[j] = mod .. names[j] end
    local v = redis.call('HMGET', KEYS[math.floor(m / 1440) - first_day + 1], unpack(f))
    for j = 1, n do
      if v[j] then sums[j] = sums[j] + tonumber(v[j]) end
    end
  end
  for j = 1, n do out[#out + 1] = sums[j] end
end
return out
"""


def sum_bins(r: redis.Redis, keys: Keys, cams: Sequence[str], bounds: Sequence[int]) -> dict[str, list[Counts]]:
    """Per camera, the counts of the minutes between consecutive ``bounds`` (epoch minutes), in one round trip.

    Minutes older than the stats retention are left out: their hashes have expired or are about to.
    """
    oldest = bounds[-1] - 1 - STATS_RETENTION_DAYS * DAY_MINUTES
    clamped = [max(b, oldest) for b in bounds]
    first_day, last_day = clamped[0] // DAY_MINUTES, (clamped[-1] - 1) // DAY_MINUTES
    script = r.register_script(_SUM_BINS)
    with r.pipeline(transaction=False) as p:
        for cam in cams:
            day_keys = [keys.stats(cam, _day(d)) for d in range(first_day, last_day + 1)]
            script(keys=day_keys, args=[first_day, len(COUNTERS), *COUNTERS, *clamped], client=p)
        replies = p.execute()
    n = len(COUNTERS)
    return {cam: [Counts(*(int(x) for x in flat[i:i + n])) for i in range(0, len(flat), n)]
            for cam, flat in zip(cams, replies)}


def window_bounds(windows_s: Iterable[int], now_ms: int) -> list[int]:
    """Bin boundaries for :func:`sum_bins` such that each window is the sum of the bins from its start on."""
    return sorted({_minute_span(w, now_ms)[0] for w in windows_s}) + [now_ms // MINUTE_MS + 1]


def fold_windows(bounds: Sequence[int], bins: Sequence[Counts], windows_s: Iterable[int],
                 now_ms: int) -> dict[int, Counts]:
    """The counts over each window from the bins that :func:`window_bounds` laid out."""
    return {w: total(bins[bounds.index(_minute_span(w, now_ms)[0]):]) for w in windows_s}


def windows(r: redis.Redis, keys: Keys, cams: Sequence[str], windows_s: Sequence[int],
            now_ms: int) -> dict[str, dict[int, Counts]]:
    """Per camera, the counts over each window (seconds) ending at ``now_ms``, read in one round trip."""
    bounds = window_bounds(windows_s, now_ms)
    return {cam: fold_windows(bounds, bins, windows_s, now_ms) for cam, bins in sum_bins(r, keys, cams, bounds).items()}


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
    starts = list(range(first - first % step_min, last + 1, step_min))
    counts = sum_bins(r, keys, [cam], [*starts, last + 1])[cam]
    return [Point(start * MINUTE_MS, c) for start, c in zip(starts, counts)]


def totals(r: redis.Redis, keys: Keys, cams: Sequence[str]) -> dict[str, Counts]:
    """Per camera, the counters since the camera was added (``mw:{cam}:totals``)."""
    with r.pipeline(transaction=False) as p:
        for cam in cams:
            p.hgetall(keys.totals(cam))
        return {cam: Counts.from_hash(raw) for cam, raw in zip(cams, p.execute())}
