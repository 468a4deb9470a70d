"""What a safety manager reads from the API over real HTTP: violations filtered and paged, firing alerts, latency,
the processes of `maskwatch up`, and charts that fit their data and mark the minute still filling."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest
import redis

from maskwatch.compliance import MINUTE_MS
from maskwatch.keys import Keys
from maskwatch.processes import FAILING, RUNNING, STOPPED, ProcessState, remove_process_states, write_process_states
from maskwatch.settings import Settings
from tests.support.dashboard import Seen, Shot, add_camera, record, record_people, serve
from worker.jobs.runner import Runner

MIN = MINUTE_MS
HOUR = 60 * MIN
# violations by camera: minutes ago of each, oldest first (as they were committed)
LOBBY_AGES = list(range(170, 0, -10))  # 17 violations, every 10 minutes over the last 3 hours
GATE_AGES = list(range(115, 0, -12))  # 10 violations


@pytest.fixture
def now(r: redis.Redis, keys: Keys, settings: Settings) -> int:
    now = int(time.time() * 1000)
    for cam in ("lobby", "gate", "yard"):
        add_camera(r, keys, cam)
    shots = sorted([Shot("lobby", now - age * MIN, ["without_mask", "with_mask"], event=True) for age in LOBBY_AGES]
                   + [Shot("gate", now - age * MIN, ["without_mask"], event=True) for age in GATE_AGES],
                   key=lambda s: s.ts)
    for shot in shots:  # one at a time: the events stream is in capture order, as on a site without backlog
        record(r, keys, settings.override(event_throttle_s=0.001), [shot])
    return now


@pytest.fixture
def api(settings: Settings, now: int) -> Iterator[httpx.Client]:
    with serve(settings) as url, httpx.Client(base_url=url, timeout=10) as client:
        yield client


def _violations(api: httpx.Client, **params: object) -> dict:
    response = api.get("/api/violations", params=params)
    assert response.status_code == 200, response.text
    return response.json()


def test_violations_filter_by_camera_and_capture_time(api: httpx.Client, now: int) -> None:
    everything = _violations(api, limit=200)
    assert len(everything["violations"]) == 27 and everything["next_before"] is None
    times = [v["ts"] for v in everything["violations"]]
    assert times == sorted(times, reverse=True), "newest first"
    lobby = _violations(api, camera="lobby", limit=200)["violations"]
    assert {v["camera"] for v in lobby} == {"lobby"} and [v["ts"] for v in lobby] == [now - a * MIN for a in
                                                                                       reversed(LOBBY_AGES)]
    both = _violations(api, camera=["lobby", "gate"], limit=200)["violations"]
    assert len(both) == 27
    hour = _violations(api, last="1h", limit=200)["violations"]
    assert sorted(v["ts"] for v in hour) == sorted(now - a * MIN for a in LOBBY_AGES + GATE_AGES if a < 60)
    between = _violations(api, camera="gate", since=now - 100 * MIN, until=now - 40 * MIN)["violations"]
    assert [v["ts"] for v in between] == [now - a * MIN for a in (43, 55, 67, 79, 91)]
    assert _violations(api, camera="yard") == {"violations": [], "next_before": None}
    v = lobby[0]
    assert v["snapshot_url"] == f"/api/events/{v['id']}/snapshot.jpg" and api.get(v["snapshot_url"]).status_code == 200


def test_violations_page_exactly_even_while_new_ones_arrive(api: httpx.Client, r: redis.Redis, keys: Keys,
                                                             settings: Settings, now: int) -> None:
    first = _violations(api, limit=7)
    ids = [v["id"] for v in first["violations"]]
    record(r, keys, settings.override(event_throttle_s=0.001), [Shot("gate", now, ["without_mask"], event=True)])
    cursor, pages = first["next_before"], [len(ids)]
    while cursor:
        page = _violations(api, limit=7, before=cursor)
        ids += [v["id"] for v in page["violations"]]
        pages.append(len(page["violations"]))
        cursor = page["next_before"]
    assert pages == [7, 7, 7, 6] and len(set(ids)) == 27, "every violation once, the new one not among older pages"
    assert ids == [v["id"] for v in _violations(api, limit=200)["violations"]][1:]
    lobby_pages = [_violations(api, camera="lobby", limit=10)]
    lobby_pages.append(_violations(api, camera="lobby", limit=10, before=lobby_pages[0]["next_before"]))
    assert [len(p["violations"]) for p in lobby_pages] == [10, 7] and lobby_pages[1]["next_before"] is None


@pytest.mark.parametrize(("params", "field", "says"), [
    ({"cam": "lobby"}, "cam", "not a filter"),
    ({"camera": "lobby", "from": "1"}, "from", "not a filter"),
    ({"camera": "no/such camera"}, "camera", "not valid"),
    ({"since": "yesterday"}, "since", ""),
    ({"since": "2000", "until": "1000"}, "until", "before since"),
    ({"last": "1h", "since": "1000"}, "last", "either last or since"),
    ({"last": "a while"}, "last", "not a duration"),
    ({"before": "page-2"}, "before", "next_before"),
    ({"limit": "0"}, "limit", ""),
])
def test_unknown_or_malformed_filters_are_422_naming_the_field(api: httpx.Client, params: dict, field: str,
                                                                says: str) -> None:
    response = api.get("/api/violations", params=params)
    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert error["loc"] == ["query", field] and says in error["msg"]


def test_openapi_describes_the_new_endpoint_and_models(api: httpx.Client) -> None:
    spec = api.get("/openapi.json").json()
    operation = spec["paths"]["/api/violations"]["get"]
    params = {p["name"]: p for p in operation["parameters"]}
    assert set(params) == {"camera", "last", "since", "until", "before", "limit"}
    assert all(p.get("description") for p in params.values())
    assert operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith("/ViolationsPage")
    schemas = spec["components"]["schemas"]
    for name in ("ViolationsPage", "FiringAlert", "Latency", "ProcessInfo"):
        assert all(f.get("description") for f in schemas[name]["properties"].values()), name
    assert {"latency", "processes", "supervised"} <= set(schemas["System"]["properties"])
    assert {"alerts", "failing"} <= set(schemas["Overview"]["properties"])
    assert {"partial"} <= set(schemas["SeriesPoint"]["properties"]) and "data_since" in schemas["Series"]["properties"]


def test_a_firing_alert_is_on_the_overview(r: redis.Redis, keys: Keys, settings: Settings, now: int) -> None:
    s = settings.override(alert_window_s=300, alert_threshold=0.8, alert_min_faces=3)
    record_people(r, keys, [Seen("yard", n, now - MIN, "without_mask" if n < 4 else "with_mask") for n in range(5)])
    Runner(s, r).alerts.evaluate(now)  # the side jobs' own evaluation: yard's 1 of 5 people masked fires
    with serve(s) as url:
        overview = httpx.get(url + "/api/overview", timeout=10).json()
    [alert] = overview["alerts"]
    assert (alert["camera"], alert["basis"], alert["people"], alert["compliance"]) == ("yard", "people", 5, 0.2)
    assert (alert["threshold"], alert["window_s"], alert["since"]) == (0.8, 300, now)


def test_latency_from_capture_to_result(api: httpx.Client, r: redis.Redis, keys: Keys, settings: Settings) -> None:
    t = int(time.time() * 1000) - 30_000
    record(r, keys, settings, [Shot("yard", t + i, ["with_mask"], latency_ms=100 * (i + 1)) for i in range(20)])
    system = api.get("/api/system").json()
    # the fixture's 27 frames took 50 ms each; yard's 20 took 100, 200, ... 2000 ms (nearest-rank percentiles)
    assert system["latency"] == {"p50_ms": 50, "p95_ms": 1800, "samples": 47, "window_s": 300}
    flows = {c["id"]: c for c in system["cameras"]}
    assert flows["yard"]["latency"] == {"p50_ms": 1000, "p95_ms": 1900, "samples": 20, "window_s": 300}
    assert flows["lobby"]["latency"]["p95_ms"] == 50


def test_processes_of_up_failing_and_gone(api: httpx.Client, r: redis.Redis, keys: Keys) -> None:
    assert api.get("/api/system").json()["supervised"] is False
    t = int(time.time() * 1000)
    write_process_states(r, keys, [
        ProcessState("producer", RUNNING, pid=101, since_ms=t - 60_000, supervisor="up@site:100"),
        ProcessState("worker-1", FAILING, restarts=4, since_ms=t - 20_000, supervisor="up@site:100",
                     last_error="exit code 1: redis.exceptions.ConnectionError: redis://:s3cret@db:6379/0 refused"),
        ProcessState("jobs", STOPPED, restarts=5, since_ms=t - 5_000, supervisor="up@site:100",
                     last_error="exit code 2: error: MASKWATCH_WEBHOOK_URL is not a URL")])
    system = api.get("/api/system").json()
    procs = {p["name"]: p for p in system["processes"]}
    assert system["supervised"] is True and procs["producer"]["state"] == "running"
    failing = procs["worker-1"]
    assert (failing["state"], failing["pid"], failing["restarts"], failing["since"]) == ("failing", None, 4, t - 20_000)
    assert failing["last_error"] == "exit code 1: redis.exceptions.ConnectionError: redis://:***@db:6379/0 refused"
    assert procs["jobs"]["state"] == "stopped"  # given up on: it failed each time it started
    assert [p["name"] for p in api.get("/api/overview").json()["failing"]] == ["jobs", "worker-1"]
    # `up` killed outright: its reports go stale, and the site no longer counts as running under it
    write_process_states(r, keys, [ProcessState("producer", RUNNING, pid=101)], now=t - 60_000)
    write_process_states(r, keys, [ProcessState("worker-1", RUNNING, pid=102)], now=t - 60_000)
    remove_process_states(r, keys, ["jobs"])
    system = api.get("/api/system").json()
    assert {p["state"] for p in system["processes"]} == {"unknown"} and system["supervised"] is False
    remove_process_states(r, keys, ["producer", "worker-1"])
    assert api.get("/api/system").json()["processes"] == []


def test_series_marks_the_step_still_filling_and_where_data_begins(api: httpx.Client, r: redis.Redis, keys: Keys,
                                                                   settings: Settings, now: int) -> None:
    t = int(time.time() * 1000)
    add_camera(r, keys, "fresh")
    record(r, keys, settings, [Shot("fresh", t - 4 * MIN, ["with_mask"]), Shot("fresh", t, ["without_mask"])])
    series = api.get("/api/cameras/fresh/compliance", params={"window": "1h", "step": "1m"}).json()
    points = series["points"]
    assert series["data_since"] == (t - 4 * MIN) // MIN * MIN
    assert [p["partial"] for p in points] == [False] * (len(points) - 1) + [True]
    assert points[-1]["start"] >= t // MIN * MIN  # the minute of now
    # gate's violations go back 115 minutes: inside 7 days, outside the hour
    assert api.get("/api/cameras/gate/compliance", params={"window": "1h"}).json()["data_since"] is None
    week = api.get("/api/cameras/gate/compliance", params={"window": "7d"}).json()
    assert week["data_since"] == (now - 115 * MIN) // MIN * MIN
    assert api.get("/api/cameras/yard/compliance").json()["data_since"] is None  # nothing counted
