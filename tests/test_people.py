"""maskwatch.people and the people counters of maskwatch.compliance, read back from what the worker's commit writes."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import pytest
import redis

from maskwatch import compliance
from maskwatch.compliance import Counts
from maskwatch.keys import Keys
from maskwatch.people import Cursor, newest_people
from maskwatch.settings import Settings
from tests.support.dashboard import Seen, Shot, record, record_people
from tests.support.waiting import wait_for

MIN = 60_000
NOW = int(datetime(2026, 11, 25, 0, 5, 30, tzinfo=UTC).timestamp() * 1000)  # 00:05:30 UTC, just after midnight


def test_windows_and_series_count_people_beside_observations(r: redis.Redis, keys: Keys, settings: Settings) -> None:
    """One unmasked person seen over many frames is many observations and one person."""
    record(r, keys, settings, [Shot("lobby", NOW - 40_000 - i * 1000, ["without_mask"]) for i in range(6)]
           + [Shot("lobby", NOW - 20 * MIN, ["with_mask", "with_mask"])])
    record_people(r, keys, [
        Seen("lobby", 1, NOW - 40_000, "without_mask"),                      # this minute
        Seen("lobby", 2, NOW - 10 * MIN, "with_mask"),                        # yesterday, 23:55
        Seen("lobby", 3, NOW - 10 * MIN - 500, "with_mask"),
        Seen("lobby", 4, NOW - 21 * MIN, "with_mask", ended_ts=NOW - 19 * MIN),  # counted when the track ended
        Seen("gate", 1, NOW - 5 * MIN, "without_mask"),
    ])
    got = compliance.windows(r, keys, ["lobby", "gate"], [60, 900, 3600], NOW)
    lobby = got["lobby"]
    assert lobby[60] == Counts(frames=6, faces=6, with_mask=0, without_mask=6, people=1, people_without_mask=1)
    assert lobby[60].compliance == 0.0 and lobby[60].people_compliance == 0.0
    assert (lobby[900].people, lobby[900].people_with_mask) == (3, 2)
    assert lobby[900].people_compliance == pytest.approx(2 / 3)
    assert lobby[3600].people == 4 and lobby[3600].people_compliance == 0.75
    assert lobby[3600].compliance == 0.25  # 2 masked faces of 8: the observations stay as they were
    assert got["gate"][900] == Counts(people=1, people_without_mask=1) and got["gate"][900].compliance is None
    assert compliance.totals(r, keys, ["lobby"])["lobby"] == Counts(frames=7, faces=8, with_mask=2, without_mask=6,
                                                                     people=4, people_with_mask=3,
                                                                     people_without_mask=1)
    points = compliance.series(r, keys, "lobby", 3600, 60, NOW)
    assert compliance.total(p.counts for p in points) == compliance.window(r, keys, "lobby", 3600, NOW)
    minute = {p.start_ms // MIN: p.counts for p in points}
    assert minute[(NOW - 19 * MIN) // MIN] == Counts(people=1, people_with_mask=1)
    assert minute[(NOW - 21 * MIN) // MIN] == Counts()


def _ids(people: list) -> list[str]:
    return [p.id for p in people]


def test_a_cameras_people_page_newest_first_exactly_across_ties(r: redis.Redis, keys: Keys) -> None:
    """People who left in the same frame share a last-seen time: paging splits them without loss or repeat."""
    record_people(r, keys, [Seen("lobby", n, NOW - 1000 * (n // 3)) for n in range(1, 12)])
    everyone = newest_people(r, keys, ["lobby"], 50)
    assert len(everyone.people) == 11 and everyone.next is None
    ts = [p.last_ts for p in everyone.people]
    assert ts == sorted(ts, reverse=True)
    for limit in (1, 2, 3, 4):
        pages, cursor = [], None
        while True:
            page = newest_people(r, keys, ["lobby"], limit, cursor)
            pages += page.people
            assert len(page.people) <= limit
            if page.next is None:
                break
            cursor = Cursor.parse(str(page.next))  # through its text, as the API hands it out
        assert _ids(pages) == _ids(everyone.people), f"limit {limit}"
    older = newest_people(r, keys, ["lobby"], 50, Cursor(NOW - 2000))  # a plain time: strictly before it
    assert {p.last_ts for p in older.people} == {NOW - 3000}


def test_expired_and_unreadable_records_are_skipped(r: redis.Redis, keys: Keys,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    record_people(r, keys, [Seen("lobby", n, NOW - n * 1000) for n in range(1, 21)])
    for n in range(1, 10):  # the newest nine expire before the commit trims their members
        r.pexpire(keys.person("lobby", n), 1)
    wait_for(lambda: not r.exists(keys.person("lobby", 9)), 5, "the records to expire", every=0.01)
    r.set(keys.person("lobby", 10), '{"id": "lobby-10", "label": "maybe"}')
    with caplog.at_level(logging.WARNING, logger="maskwatch.people"):
        page = newest_people(r, keys, ["lobby"], 3)
    assert _ids(page.people) == ["lobby-11", "lobby-12", "lobby-13"] and page.next is not None
    assert "lobby-10" in caplog.text and "'label'" in caplog.text
    rest = newest_people(r, keys, ["lobby"], 10, page.next)
    assert _ids(rest.people) == [f"lobby-{n}" for n in range(14, 21)] and rest.next is None


def test_unmasked_first_orders_within_the_page(r: redis.Redis, keys: Keys) -> None:
    labels = ["with_mask", "without_mask", "with_mask", "with_mask", "without_mask", "with_mask"]
    record_people(r, keys, [Seen("lobby", n, NOW - n * 1000, label) for n, label in enumerate(labels, 1)])
    page = newest_people(r, keys, ["lobby"], 4, unmasked_first=True)
    assert _ids(page.people) == ["lobby-2", "lobby-1", "lobby-3", "lobby-4"]  # unmasked, then masked, newest first
    assert _ids(newest_people(r, keys, ["lobby"], 4, page.next, unmasked_first=True).people) == ["lobby-5", "lobby-6"]


def test_the_sites_people_merge_cameras_by_time(r: redis.Redis, keys: Keys) -> None:
    record_people(r, keys, [Seen("lobby", 1, NOW - 1000), Seen("lobby", 2, NOW - 5000), Seen("gate", 7, NOW - 3000),
                            Seen("gate", 8, NOW - 5000), Seen("dock", 1, NOW - 9000)])
    first = newest_people(r, keys, ["dock", "gate", "lobby"], 3)
    assert _ids(first.people) == ["lobby-1", "gate-7", "lobby-2"]  # ties on time: by id, descending
    second = newest_people(r, keys, ["dock", "gate", "lobby"], 3, first.next)
    assert _ids(second.people) == ["gate-8", "dock-1"] and second.next is None
    assert newest_people(r, keys, ["yard"], 3).people == []


@pytest.mark.parametrize("text", ["soon", "-5", "17:", ":lobby-1", ""])
def test_a_cursor_that_is_not_one_says_so(text: str) -> None:
    with pytest.raises(ValueError, match="not a cursor"):
        Cursor.parse(text)
