"""People on the dashboard over real HTTP: the API's people figures and lists, person snapshots and /metrics."""

from __future__ import annotations

import time
from collections.abc import Iterator

import cv2
import httpx
import numpy as np
import pytest
import redis

from maskwatch.codec import Event, encode_event
from maskwatch.keys import Keys
from maskwatch.settings import Settings
from tests.support.dashboard import Seen, Shot, add_camera, record, record_people, serve
from tests.test_dashboard_metrics import samples

MIN = 60_000


@pytest.fixture
def now(r: redis.Redis, keys: Keys, settings: Settings) -> int:
    """lobby: 5 people in the last 15 minutes (2 unmasked, the newest with a stored best look), 3 masked 2 h ago,
    and 40 face observations of one unmasked person a minute ago; gate: 1 masked person 30 min ago; yard: nobody."""
    now = int(time.time() * 1000)
    for cam in ("lobby", "gate", "yard"):
        add_camera(r, keys, cam)
    record(r, keys, settings, [Shot("lobby", now - MIN + i * 100, ["without_mask"]) for i in range(40)])
    record_people(r, keys, [
        Seen("lobby", 11, now - 12 * MIN, "with_mask"),
        Seen("lobby", 12, now - 9 * MIN, "without_mask", duration_ms=65_000, confidence=0.97),
        Seen("lobby", 13, now - 6 * MIN, "with_mask"),
        Seen("lobby", 14, now - 3 * MIN, "with_mask"),
        Seen("lobby", 15, now - 2 * MIN, "without_mask", snapshot=True),
        *[Seen("lobby", n, now - 120 * MIN - n, "with_mask") for n in range(1, 4)],
        Seen("gate", 1, now - 30 * MIN, "with_mask"),
    ])
    return now


@pytest.fixture
def api(settings: Settings, now: int) -> Iterator[httpx.Client]:
    with serve(settings) as url, httpx.Client(base_url=url, timeout=10) as client:
        yield client


def _by_id(items: list[dict]) -> dict[str, dict]:
    return {item["id"]: item for item in items}


def test_overview_shows_people_beside_observations(api: httpx.Client) -> None:
    overview = api.get("/api/overview").json()
    lobby = _by_id(overview["cameras"])["lobby"]
    assert lobby["people"] == {"1m": 0, "15m": 5, "1h": 5, "24h": 8}
    assert lobby["people_without_mask"] == {"1m": 0, "15m": 2, "1h": 2, "24h": 2}
    assert lobby["people_compliance"] == {"1m": None, "15m": 0.6, "1h": 0.6, "24h": 0.75}
    # the same minutes by observations: one unmasked person seen in 40 frames reads as 0%
    assert lobby["compliance"]["15m"] == 0.0 and lobby["faces"]["15m"] == 40
    assert lobby["totals"] == {"frames": 40, "faces": 40, "with_mask": 0, "without_mask": 40,
                               "people": 8, "people_with_mask": 6, "people_without_mask": 2}
    site = overview["site"]
    assert site["people"]["1h"] == 6 and site["people_without_mask"]["1h"] == 2
    assert site["people_compliance"]["1h"] == pytest.approx(4 / 6) and site["compliance"]["1h"] == 0.0
    yard = _by_id(overview["cameras"])["yard"]
    assert yard["people_compliance"] == {"1m": None, "15m": None, "1h": None, "24h": None}
    detail = api.get("/api/cameras/lobby").json()
    assert detail["people_compliance"]["24h"] == 0.75 and detail["totals"]["people"] == 8


def test_series_points_carry_people(api: httpx.Client, now: int) -> None:
    points = api.get("/api/cameras/lobby/compliance", params={"window": "1h", "step": "1m"}).json()["points"]
    assert sum(p["people"] for p in points) == 5 and sum(p["people_without_mask"] for p in points) == 2
    nine = next(p for p in points if p["start"] <= now - 9 * MIN < p["start"] + MIN)
    assert (nine["people"], nine["people_compliance"], nine["faces"], nine["compliance"]) == (1, 0.0, 0, None)


def test_a_cameras_people_page_by_page(api: httpx.Client, now: int) -> None:
    first = api.get("/api/cameras/lobby/people", params={"limit": 3}).json()
    assert [p["id"] for p in first["people"]] == ["lobby-15", "lobby-14", "lobby-13"]
    newest = first["people"][0]
    assert newest["label"] == "without_mask" and newest["last_ts"] == now - 2 * MIN and newest["camera"] == "lobby"
    assert newest["duration_ms"] == 4000 and newest["first_ts"] == now - 2 * MIN - 4000 and len(newest["best_box"]) == 4
    ids = [p["id"] for p in first["people"]]
    cursor = first["next_before"]
    while cursor:
        page = api.get("/api/cameras/lobby/people", params={"limit": 3, "before": cursor}).json()
        ids += [p["id"] for p in page["people"]]
        cursor = page["next_before"]
    assert ids == [f"lobby-{n}" for n in (15, 14, 13, 12, 11, 1, 2, 3)]
    unmasked_first = api.get("/api/cameras/lobby/people", params={"limit": 4, "unmasked_first": "true"}).json()
    assert [p["id"] for p in unmasked_first["people"]] == ["lobby-15", "lobby-12", "lobby-14", "lobby-13"]
    long_stay = unmasked_first["people"][1]
    assert long_stay["duration_ms"] == 65_000 and long_stay["confidence"] == 0.97
    older = api.get("/api/cameras/lobby/people", params={"before": now - 60 * MIN}).json()
    assert [p["id"] for p in older["people"]] == ["lobby-1", "lobby-2", "lobby-3"] and older["next_before"] is None


def test_the_sites_people_and_bad_requests(api: httpx.Client) -> None:
    site = api.get("/api/people", params={"limit": 6}).json()
    assert [p["id"] for p in site["people"]] == ["lobby-15", "lobby-14", "lobby-13", "lobby-12", "lobby-11", "gate-1"]
    rest = api.get("/api/people", params={"before": site["next_before"]}).json()
    assert [p["id"] for p in rest["people"]] == ["lobby-1", "lobby-2", "lobby-3"]
    assert api.get("/api/cameras/yard/people").json() == {"people": [], "next_before": None}
    assert api.get("/api/cameras/nowhere/people").status_code == 404
    bad = api.get("/api/people", params={"before": "yesterday"})
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["query", "before"]
    assert "next_before" in bad.json()["detail"][0]["msg"]
    assert api.get("/api/people", params={"limit": 0}).status_code == 422


def test_a_persons_best_look_is_served_only_when_stored(api: httpx.Client) -> None:
    people = _by_id(api.get("/api/cameras/lobby/people").json()["people"])
    assert people["lobby-15"]["snapshot_url"] == "/api/events/person-lobby-15/snapshot.jpg"
    snap = api.get(people["lobby-15"]["snapshot_url"])
    assert snap.status_code == 200 and snap.headers["content-type"] == "image/jpeg"
    assert cv2.imdecode(np.frombuffer(snap.content, np.uint8), cv2.IMREAD_COLOR).shape == (360, 640, 3)
    assert people["lobby-14"]["snapshot_url"] is None  # the privacy setting kept no image of a masked person
    assert api.get("/api/events/person-lobby-14/snapshot.jpg").status_code == 404


def test_a_persons_violation_event_says_who_and_for_how_long(api: httpx.Client, r: redis.Redis, keys: Keys,
                                                             now: int) -> None:
    r.xadd(keys.events, encode_event(Event("lobby", 77, now - 3 * MIN, 0.97, (290, 130, 60, 60), "person-lobby-12",
                                           person="lobby-12", duration_ms=65_000, confidence=0.97)))
    r.xadd(keys.events, encode_event(Event("gate", 5, now - MIN, 0.9, (1, 2, 3, 4), "gate-5")))
    events = _by_id(api.get("/api/events").json())
    assert events["person-lobby-12"]["person"] == "lobby-12" and events["person-lobby-12"]["duration_ms"] == 65_000
    assert events["gate-5"]["person"] is None and events["gate-5"]["duration_ms"] is None


def test_metrics_count_people_by_label(api: httpx.Client) -> None:
    got = samples(api.get("/metrics").text)
    assert got[("maskwatch_people_total", (("camera", "lobby"), ("label", "with_mask")))] == 6
    assert got[("maskwatch_people_total", (("camera", "lobby"), ("label", "without_mask")))] == 2
    assert got[("maskwatch_people_total", (("camera", "yard"), ("label", "without_mask")))] == 0
    assert got[("maskwatch_people_compliance_ratio", (("camera", "lobby"), ("window", "15m")))] == 0.6
    assert got[("maskwatch_site_people_compliance_ratio", (("window", "24h"),))] == pytest.approx(7 / 9)
    assert not any(k[0] == "maskwatch_people_compliance_ratio" and ("camera", "yard") in k[1] for k in got)
    assert got[("maskwatch_faces_total", (("camera", "lobby"), ("label", "without_mask")))] == 40
