"""maskwatch.compliance: the figures the dashboard and the alerts share, read back from what the worker wrote."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest
import redis

from dashboard.readers import window_counts
from dashboard.state import DashboardState
from maskwatch import compliance
from maskwatch.compliance import Counts
from maskwatch.keys import Keys
from maskwatch.settings import Settings
from tests.support.dashboard import Shot, record

MIN = 60_000
# 00:05:30 UTC: the last 15 minutes and the last day both reach back into the day before.
NOW = int(datetime(2026, 11, 25, 0, 5, 30, tzinfo=UTC).timestamp() * 1000)


def test_windows_sum_the_minutes_they_overlap(r: redis.Redis, keys: Keys, settings: Settings) -> None:
    record(r, keys, settings, [
        Shot("lobby", NOW - 20_000, ["with_mask", "without_mask"]),  # this minute
        Shot("lobby", NOW - 59_000, ["with_mask"]),                  # the minute before: still in "1m"
        Shot("lobby", NOW - 125_000, ["without_mask"]),              # two minutes before: out of "1m"
        Shot("lobby", NOW - 14 * MIN, ["with_mask"] * 4),            # yesterday, 23:51
        Shot("lobby", NOW - 17 * MIN, ["without_mask"] * 4),         # out of 15 min
        Shot("lobby", NOW - 23 * 60 * MIN, ["with_mask"] * 2),
        Shot("lobby", NOW - 25 * 60 * MIN, ["without_mask"] * 9),    # out of 24 h
        Shot("lobby", NOW - 30_000, []),                             # a frame without faces
    ])
    got = compliance.windows(r, keys, ["lobby", "gate"], [60, 900, 86_400], NOW)["lobby"]
    assert got[60] == Counts(frames=3, faces=3, with_mask=2, without_mask=1)
    assert got[900] == Counts(frames=5, faces=8, with_mask=6, without_mask=2)
    assert got[86_400].compliance == pytest.approx(8 / 14) and got[86_400].frames == 7
    assert compliance.window(r, keys, "lobby", 900, NOW).compliance == 0.75
    assert compliance.window(r, keys, "gate", 900, NOW) == Counts() and Counts().compliance is None
    assert compliance.totals(r, keys, ["lobby"])["lobby"] == Counts(frames=8, faces=23, with_mask=8, without_mask=15)
    assert compliance.total([got[60], got[900]]).faces == 11


def test_series_is_aligned_zero_filled_and_sums_to_the_window(r: redis.Redis, keys: Keys, settings: Settings) -> None:
    record(r, keys, settings, [Shot("lobby", NOW - m * MIN, ["with_mask"] * (m % 3) + ["without_mask"])
                               for m in range(0, 60, 7)])
    points = compliance.series(r, keys, "lobby", 3600, 600, NOW)
    starts = [p.start_ms for p in points]
    assert all(s % 600_000 == 0 for s in starts) and np.all(np.diff(starts) == 600_000)
    assert starts[0] <= NOW - 3600_000 and starts[-1] <= NOW < starts[-1] + 600_000
    assert compliance.total(p.counts for p in points) == compliance.window(r, keys, "lobby", 3600, NOW)
    assert any(p.counts == Counts() for p in compliance.series(r, keys, "lobby", 3600, 60, NOW))
    with pytest.raises(ValueError, match="whole number of minutes"):
        compliance.series(r, keys, "lobby", 3600, 90, NOW)
    with pytest.raises(ValueError, match="window must be positive"):
        compliance.window(r, keys, "lobby", 0, NOW)


def test_nothing_older_than_the_retention_is_read(r: redis.Redis, keys: Keys, settings: Settings) -> None:
    record(r, keys, settings, [Shot("lobby", NOW - 9 * 1440 * MIN, ["with_mask"])])
    assert compliance.window(r, keys, "lobby", 10 * 86_400, NOW) == Counts()


def test_dashboard_reads_old_minutes_once_a_minute(r: redis.Redis, keys: Keys, settings: Settings) -> None:
    """The overview windows: recent minutes always fresh, older ones re-read when the minute turns."""
    state = DashboardState(settings, r)
    record(r, keys, settings, [Shot("lobby", NOW - 5 * MIN, ["with_mask"]),
                               Shot("lobby", NOW - 40 * MIN, ["with_mask"])])
    first = window_counts(state, ["lobby"], NOW)["lobby"]
    assert (first[900].faces, first[3600].faces) == (1, 2)
    record(r, keys, settings, [Shot("lobby", NOW - 4 * MIN, ["without_mask"]),    # fresh: counted at once
                               Shot("lobby", NOW - 41 * MIN, ["without_mask"])])  # late for an old minute
    again = window_counts(state, ["lobby"], NOW + 1000)["lobby"]
    assert (again[900].faces, again[3600].faces) == (2, 3)
    later = window_counts(state, ["lobby"], NOW + MIN)["lobby"]
    assert later[3600] == compliance.window(r, keys, "lobby", 3600, NOW + MIN) and later[3600].faces == 4
