"""The dashboard's JSON API over real HTTP against a real redis-server, fed by the worker's own commit code."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import httpx
import numpy as np
import pytest
import redis
from pydantic import BaseModel

from dashboard import models
from dashboard.server import GRACEFUL_SHUTDOWN_S
from maskwatch.cameras import Registry
from maskwatch.cli.embedded_redis import free_port
from maskwatch.codec import Frame, encode_frame
from maskwatch.keys import Keys
from maskwatch.leases import WORKER, Leases
from maskwatch.settings import Settings
from maskwatch.streams import ensure_group
from tests.support.dashboard import (
    Shot,
    add_camera,
    publish_latest,
    record,
    serve,
    set_status,
)
from tests.support.waiting import wait_for
from worker.consumer import FrameSource
from worker.deadletter import DeadLetters
from worker.heartbeat import Heartbeat, Throughput

TOKEN = "s3cret-token"
MIN = 60_000


@pytest.fixture
def api(settings: Settings) -> Iterator[httpx.Client]:
    s = settings.override(api_token=TOKEN, event_throttle_s=0.001)
    with serve(s) as url, httpx.Client(base_url=url, timeout=10) as client:
        yield client


@pytest.fixture
def seeded(r: redis.Redis, keys: Keys, settings: Settings) -> int:
    """lobby: 0 of 1 masked 30 h ago, 5 of 5 at 3 h, 0 of 2 at 30 min, 3 of 4 at 10 min (in capture order).

    gate: nothing."""
    now = int(time.time() * 1000)
    add_camera(r, keys, "lobby")
    add_camera(r, keys, "gate", url="http://gate.local/snap.jpg?user=op&password=pw123")
    s = settings.override(event_throttle_s=0.001)
    record(r, keys, s, [
        Shot("lobby", now - 1800 * MIN, ["without_mask"]),
        Shot("lobby", now - 180 * MIN, ["with_mask"] * 5),
        Shot("lobby", now - 30 * MIN, ["without_mask"]),
        Shot("lobby", now - 30 * MIN, ["without_mask"], event=True),
        Shot("lobby", now - 10 * MIN, ["with_mask", "with_mask", "with_mask", "without_mask"], event=True),
        Shot("lobby", now - 5 * MIN, []),
    ])
    set_status(r, keys, "lobby", last_frame_ts=now - 2000, skipped=7, sent=100)
    return now


def by_id(items: list[dict]) -> dict[str, dict]:
    return {item["id"]: item for item in items}


def test_cameras_show_the_compliance_the_stats_hold(api: httpx.Client, seeded: int) -> None:
    cams = by_id(api.get("/api/cameras").json())
    lobby = cams["lobby"]
    assert lobby["compliance"] == {"1m": None, "15m": 0.75, "1h": 0.5, "24h": pytest.approx(8 / 11)}
    assert lobby["faces"] == {"1m": 0, "15m": 4, "1h": 6, "24h": 11}
    assert lobby["totals"] == {"frames": 6, "faces": 12, "with_mask": 8, "without_mask": 4,
                               "people": 0, "people_with_mask": 0, "people_without_mask": 0}
    assert lobby["status"] == "online" and 1.5 < lobby["last_frame_age_s"] < 30
    gate = cams["gate"]
    assert gate["status"] == "offline" and gate["last_frame_age_s"] is None
    assert gate["compliance"] == {"1m": None, "15m": None, "1h": None, "24h": None}
    site = api.get("/api/overview").json()["site"]
    assert site["compliance"]["15m"] == 0.75 and site["cameras"] == 2 and site["online"] == 1


def test_camera_detail_masks_credentials(api: httpx.Client, seeded: int) -> None:
    lobby = api.get("/api/cameras/lobby")
    assert lobby.json()["config"]["url"] == "rtsp://admin:***@10.0.0.5/stream1"
    assert lobby.json()["status_detail"]["skipped"] == 7
    gate = api.get("/api/cameras/gate").json()
    assert gate["config"]["url"] == "http://gate.local/snap.jpg?user=op&password=***"
    for path in ("/api/cameras", "/api/cameras/lobby", "/api/cameras/gate", "/cameras/lobby", "/cameras/gate", "/"):
        body = api.get(path).text
        assert "hunter2" not in body and "pw123" not in body, path
    assert api.get("/api/cameras/nowhere").status_code == 404
    bad = api.get("/api/cameras/bad:id")
    assert bad.status_code == 422 and "camera id" in bad.json()["detail"][0]["msg"]


def test_compliance_series_buckets_by_capture_time(api: httpx.Client, seeded: int) -> None:
    series = api.get("/api/cameras/lobby/compliance", params={"window": "1h", "step": "5m"}).json()
    assert series["step_s"] == 300 and series["window_s"] == 3600
    starts = [p["start"] for p in series["points"]]
    assert all(s % 300_000 == 0 for s in starts) and starts == sorted(starts)
    assert len(starts) in (13, 14) and starts[0] <= seeded - 3600_000 < starts[0] + 300_000
    assert sum(p["faces"] for p in series["points"]) == 6
    ten_min_ago = next(p for p in series["points"] if p["start"] <= seeded - 10 * MIN < p["start"] + 300_000)
    assert ten_min_ago["compliance"] == 0.75 and ten_min_ago["faces"] == 4
    week = api.get("/api/cameras/lobby/compliance", params={"window": "7d"}).json()
    assert week["step_s"] == 7200 and sum(p["faces"] for p in week["points"]) == 12


@pytest.mark.parametrize(("params", "field", "words"), [
    ({"window": "5m"}, "window", "between 15m and 7d"),
    ({"window": "8d"}, "window", "between 15m and 7d"),
    ({"window": "soon"}, "window", "not a duration"),
    ({"window": "1h", "step": "90s"}, "step", "whole number of minutes"),
    ({"window": "7d", "step": "1m"}, "step", "more than 2000 points"),
])
def test_compliance_rejects_bad_windows(api: httpx.Client, seeded: int, params: dict, field: str, words: str) -> None:
    resp = api.get("/api/cameras/lobby/compliance", params=params)
    assert resp.status_code == 422
    assert resp.json()["detail"][0]["loc"] == ["query", field] and words in resp.json()["detail"][0]["msg"]


def test_compliance_of_unknown_camera_is_404(api: httpx.Client, seeded: int) -> None:
    assert api.get("/api/cameras/nowhere/compliance").status_code == 404


def test_events_filter_and_snapshots(api: httpx.Client, r: redis.Redis, keys: Keys, settings: Settings,
                                     seeded: int) -> None:
    record(r, keys, settings.override(event_throttle_s=0.001),
           [Shot("gate", seeded - MIN, ["without_mask"], event=True)])
    everything = api.get("/api/events").json()
    assert [e["camera"] for e in everything] == ["gate", "lobby", "lobby"]
    lobby = api.get("/api/events", params={"camera": "lobby"}).json()
    assert [e["ts"] for e in lobby] == [seeded - 10 * MIN, seeded - 30 * MIN]
    recent = api.get("/api/events", params={"camera": "lobby", "since": seeded - 20 * MIN}).json()
    assert [e["ts"] for e in recent] == [seeded - 10 * MIN]
    assert len(api.get("/api/events", params={"limit": 1}).json()) == 1
    assert api.get("/api/events", params={"limit": 0}).status_code == 422
    snap = api.get(lobby[0]["snapshot_url"])
    assert snap.status_code == 200 and snap.headers["content-type"] == "image/jpeg"
    image = cv2.imdecode(np.frombuffer(snap.content, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None and image.shape[1] == 640
    assert api.get("/api/events/nope-1/snapshot.jpg").status_code == 404
    assert api.get("/api/events/bad id/snapshot.jpg").status_code == 422


def test_latest_frame(api: httpx.Client, r: redis.Redis, keys: Keys, seeded: int) -> None:
    assert api.get("/api/cameras/lobby/latest.jpg").status_code == 404
    publish_latest(r, keys, "lobby", ["with_mask", "without_mask"])
    resp = api.get("/api/cameras/lobby/latest.jpg")
    assert resp.status_code == 200 and resp.headers["cache-control"] == "no-store"
    assert cv2.imdecode(np.frombuffer(resp.content, np.uint8), cv2.IMREAD_COLOR).shape == (360, 640, 3)


def test_system_reports_workers_lag_and_dead_letters(api: httpx.Client, r: redis.Redis, keys: Keys,
                                                      seeded: int) -> None:
    """Two cameras' frames streams: the site's lag is the sum of the cameras' lags, each camera shows its own."""
    beat = Heartbeat(r, keys, "w1", {"device": "cpu", "runtime": "onnx", "batch_size": 16}, Throughput(frames=40),
                     ttl_ms=5000, interval_s=0.05)
    beat.start()
    try:
        assert Leases(r, keys, "w1", ttl_ms=60_000, role=WORKER).acquire("lobby")
        for cam in ("lobby", "gate"):  # as the producers do before they send
            ensure_group(r, keys, cam)
        for seq in range(6):  # frames no worker has read yet
            r.xadd(keys.frames("lobby"), encode_frame(Frame("lobby", 1000 + seq, seeded, 8, 8, b"\xff\xd8")))
        for seq in range(3):
            r.xadd(keys.frames("gate"), encode_frame(Frame("gate", 2000 + seq, seeded, 8, 8, b"\xff\xd8")))
        source = FrameSource(r, keys, "w1", batch_size=1, max_wait_ms=0)
        source.add("lobby")
        bad = source.next_batch()
        DeadLetters(r, keys, "w1").send("lobby", bad[0].id, bad[0].fields, "not a JPEG", 1)
        wait_for(lambda: r.exists(keys.worker("w1")), 5, "the worker's heartbeat", every=0.02)
        system = api.get("/api/system").json()
        lobby = api.get("/api/cameras/lobby").json()
    finally:
        beat.stop()
        beat.join(2)
    cams = by_id(system["cameras"])
    assert (cams["lobby"]["lag"], cams["gate"]["lag"]) == (5, 3)
    assert system["queue"]["lag"] == cams["lobby"]["lag"] + cams["gate"]["lag"] == 8
    assert system["queue"]["pending"] == 0 and system["queue"]["cameras"] == 2
    assert system["dead_lettered"] == 1 and system["dlq_length"] == 1
    assert system["workers_alive"] == 1 and system["queue"]["consumers"] == 1
    worker = system["workers"][0]
    assert worker["id"] == "w1" and worker["device"] == "cpu" and worker["batch_size"] == 16 and worker["alive"]
    assert worker["cameras"] == ["lobby"]
    assert (cams["lobby"]["worker"], cams["gate"]["worker"]) == ("w1", None)
    assert cams["lobby"]["skipped"] == 7
    # the stream keeps the 6 frames the seeding committed beside the 6 new ones, until trimmed
    assert lobby["queue"] == {"length": 12, "lag": 5, "pending": 0, "worker": "w1"}
    assert api.get("/api/workers").json() == []  # the heartbeat key went with the stopped worker


def test_a_camera_where_nothing_moves_reads_quiet_not_offline(api: httpx.Client, r: redis.Redis, keys: Keys,
                                                               seeded: int) -> None:
    """Motion gating: a camera online with frames counted idle and no motion for minutes is quiet, and says so."""
    add_camera(r, keys, "yard")
    set_status(r, keys, "gate", idle=900, last_motion_ts=seeded - 3 * MIN, last_frame_ts=seeded - 1500)
    set_status(r, keys, "yard", idle=40)  # never saw motion since it started
    set_status(r, keys, "lobby", idle=10, last_motion_ts=seeded - 1000, last_frame_ts=seeded - 1000)
    cams = by_id(api.get("/api/cameras").json())
    assert (cams["gate"]["status"], cams["gate"]["quiet"]) == ("online", True)
    assert 3 * 60 <= cams["gate"]["last_motion_age_s"] < 4 * 60
    assert (cams["yard"]["status"], cams["yard"]["quiet"], cams["yard"]["last_motion_age_s"]) == ("online", True, None)
    assert (cams["lobby"]["status"], cams["lobby"]["quiet"]) == ("online", False)
    gate = api.get("/api/cameras/gate").json()["status_detail"]
    assert gate["idle"] == 900 and gate["last_motion_ts"] == seeded - 3 * MIN
    assert by_id(api.get("/api/system").json()["cameras"])["gate"]["quiet"] is True
    assert api.get("/api/overview").json()["site"]["online"] == 3  # quiet cameras are online

    set_status(r, keys, "gate", "reconnecting", idle=900, last_motion_ts=seeded - 3 * MIN)
    assert by_id(api.get("/api/cameras").json())["gate"]["quiet"] is False  # a camera that is down is not quiet


def test_write_endpoints_need_the_bearer_token(api: httpx.Client, r: redis.Redis, keys: Keys) -> None:
    body = {"id": "dock", "url": "rtsp://u:pw@dock/1", "fps": 2}
    missing = api.post("/api/cameras", json=body)
    assert missing.status_code == 401 and missing.headers["www-authenticate"].startswith("Bearer")
    wrong = api.post("/api/cameras", json=body, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401 and "wrong" in wrong.json()["detail"]
    assert api.patch("/api/cameras/dock", json={"fps": 1}).status_code == 401
    assert api.delete("/api/cameras/dock").status_code == 401
    assert Registry(r, keys).get("dock") is None


def test_camera_lifecycle_with_token(api: httpx.Client, r: redis.Redis, keys: Keys) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    registry = Registry(r, keys)
    created = api.post("/api/cameras", json={"id": "dock", "url": "rtsp://u:pw@dock/1", "fps": 2}, headers=auth)
    assert created.status_code == 201 and created.json()["url"] == "rtsp://u:***@dock/1"
    assert registry.get("dock").fps == 2 and registry.get("dock").url == "rtsp://u:pw@dock/1"
    version = registry.version()
    assert api.post("/api/cameras", json={"id": "dock", "url": "x"}, headers=auth).status_code == 409
    changed = api.patch("/api/cameras/dock", json={"fps": 4, "roi": [0, 0, 0.5, 0.5]}, headers=auth)
    assert changed.status_code == 200 and changed.json()["fps"] == 4
    assert registry.get("dock").roi == (0, 0, 0.5, 0.5) and registry.get("dock").url == "rtsp://u:pw@dock/1"
    assert registry.version() > version
    assert api.patch("/api/cameras/ghost", json={"fps": 4}, headers=auth).status_code == 404
    assert api.delete("/api/cameras/dock", headers=auth).status_code == 204
    assert registry.get("dock") is None
    assert api.delete("/api/cameras/dock", headers=auth).status_code == 404


@pytest.mark.parametrize(("method", "path", "body", "field", "words"), [
    ("post", "/api/cameras", {"id": "x"}, "url", "Field required"),
    ("post", "/api/cameras", {"id": "x", "url": "u", "colour": "red"}, "colour", "Extra inputs"),
    ("post", "/api/cameras", {"id": "bad id!", "url": "u"}, "id", "camera id 'bad id!' is not valid"),
    ("post", "/api/cameras", {"id": "x", "url": "u", "fps": 0}, "fps", "greater than 0"),
    ("post", "/api/cameras", {"id": "x", "url": "u", "roi": [0, 0, 2, 1]}, None, "less than or equal to 1"),
    ("post", "/api/cameras", {"id": "x", "url": "u", "roi": [0, 0, 0, 1]}, "roi", "w and h above 0"),
    ("patch", "/api/cameras/dock", {"fps": "fast"}, "fps", "valid number"),
    ("patch", "/api/cameras/dock", {"url": None}, "url", "cannot be null"),
    ("patch", "/api/cameras/dock", {"jpeg_quality": 101}, "jpeg_quality", "less than or equal to 100"),
    ("patch", "/api/cameras/dock", {"roi": [0, 0, 1, 0]}, None, "field 'roi'"),
])
def test_malformed_bodies_are_422_naming_the_field(api: httpx.Client, r: redis.Redis, keys: Keys, method: str,
                                                   path: str, body: dict, field: str | None, words: str) -> None:
    add_camera(r, keys, "dock")
    resp = api.request(method, path, json=body, headers={"Authorization": f"Bearer {TOKEN}"})
    assert resp.status_code == 422, resp.text
    detail = resp.json()["detail"][0]
    assert words in detail["msg"]
    if field:
        assert detail["loc"][-1] == field
    assert Registry(r, keys).get("x") is None


def test_body_that_is_not_json_is_422(api: httpx.Client) -> None:
    resp = api.post("/api/cameras", content=b"{not json", headers={"Authorization": f"Bearer {TOKEN}",
                                                                    "Content-Type": "application/json"})
    assert resp.status_code == 422 and "JSON" in json.dumps(resp.json())


def test_without_a_token_the_write_api_is_off_and_says_how_to_enable_it(settings: Settings, r: redis.Redis,
                                                                         keys: Keys) -> None:
    with serve(settings.override(api_token=None, allow_no_token=False)) as url:
        resp = httpx.post(f"{url}/api/cameras", json={"id": "dock", "url": "rtsp://dock/1"})
        assert resp.status_code == 403
        assert "MASKWATCH_API_TOKEN" in resp.json()["detail"] and "--allow-no-token" in resp.json()["detail"]
        assert httpx.get(f"{url}/api/cameras").status_code == 200
    assert Registry(r, keys).get("dock") is None


def test_allow_no_token_opens_the_write_api(settings: Settings, r: redis.Redis, keys: Keys) -> None:
    with serve(settings.override(api_token=None, allow_no_token=True)) as url:
        assert httpx.post(f"{url}/api/cameras", json={"id": "dock", "url": "rtsp://dock/1"}).status_code == 201
    assert Registry(r, keys).get("dock") is not None


def test_health_and_readiness(api: httpx.Client, settings: Settings) -> None:
    assert api.get("/healthz").json() == {"status": "ok", "detail": None}
    assert api.get("/readyz").json()["status"] == "ready"
    with serve(settings.override(redis_url=f"redis://127.0.0.1:{free_port()}/0")) as url:
        assert httpx.get(f"{url}/healthz").status_code == 200
        ready = httpx.get(f"{url}/readyz")
        assert ready.status_code == 503 and "Redis" in ready.json()["detail"]
        cams = httpx.get(f"{url}/api/cameras")
        assert cams.status_code == 503 and "Redis unavailable" in cams.json()["detail"]
        page = httpx.get(f"{url}/", headers={"Accept": "text/html"})
        assert page.status_code == 503 and "cannot read Redis" in page.text


def test_openapi_describes_every_field(api: httpx.Client) -> None:
    spec = api.get("/openapi.json").json()
    for path in ("/api/cameras", "/api/cameras/{camera_id}", "/api/cameras/{camera_id}/compliance", "/api/events",
                 "/api/cameras/{camera_id}/people", "/api/people", "/api/workers", "/api/system", "/healthz",
                 "/readyz", "/metrics", "/api/live"):
        assert path in spec["paths"], path
    assert {"post"} <= set(spec["paths"]["/api/cameras"])
    assert {"patch", "delete"} <= set(spec["paths"]["/api/cameras/{camera_id}"])
    assert spec["paths"]["/api/cameras"]["post"]["security"] == [{"HTTPBearer": []}]
    ours = {name for name, obj in vars(models).items() if isinstance(obj, type) and issubclass(obj, BaseModel)}
    schemas = {name: schema for name, schema in spec["components"]["schemas"].items() if name in ours}
    assert {"CameraSummary", "CameraDetail", "Series", "ViolationEvent", "System", "CameraCreate", "PeoplePage",
            "PersonRecord"} <= set(schemas)
    undocumented = [f"{name}.{prop}" for name, schema in schemas.items()
                    for prop, s in schema.get("properties", {}).items() if not s.get("description")]
    assert undocumented == []
    for op in (spec["paths"]["/api/cameras/{camera_id}/compliance"]["get"], spec["paths"]["/api/events"]["get"],
               spec["paths"]["/api/cameras/{camera_id}/people"]["get"], spec["paths"]["/api/people"]["get"]):
        assert all(p.get("description") for p in op["parameters"])
    page = api.get("/api-docs")
    assert page.status_code == 200 and "/api/cameras/{camera_id}/compliance" in page.text


def test_pages_render_and_load_nothing_from_elsewhere(api: httpx.Client, seeded: int) -> None:
    for path in ("/", "/cameras/lobby", "/system", "/api-docs"):
        page = api.get(path)
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert 'src="http' not in page.text and 'href="http' not in page.text, path
    for asset in ("/static/dashboard.css", "/static/js/common.js", "/static/js/overview.js", "/static/js/chart.js",
                  "/static/js/camera.js", "/static/js/system.js", "/static/favicon.svg"):
        resp = api.get(asset)
        assert resp.status_code == 200 and "https://" not in resp.text, asset
    missing = api.get("/cameras/nowhere")
    assert missing.status_code == 404 and "no camera" in missing.text


def test_live_stream_sends_new_results(api: httpx.Client, r: redis.Redis, keys: Keys, settings: Settings,
                                       seeded: int) -> None:
    events: list[tuple[str, dict]] = []
    with api.stream("GET", "/api/live", params={"topics": "overview,results"}, timeout=10) as stream:
        name = None
        for line in stream.iter_lines():
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                events.append((name, json.loads(line[6:])))
                if name == "overview" and len(events) == 1:
                    record(r, keys, settings, [Shot("gate", int(time.time() * 1000), ["without_mask"])])
                if name == "results":
                    break
    first = events[0][1]
    assert events[0][0] == "overview" and by_id(first["cameras"])["lobby"]["compliance"]["15m"] == 0.75
    results = events[-1][1]
    assert list(results) == ["gate"] and results["gate"]["faces"] == 1 and results["gate"]["without_mask"] == 1
    assert api.get("/api/live", params={"topics": "gossip"}).status_code == 422


def test_cli_serves_and_stops_promptly_with_live_viewers(settings: Settings, tmp_path: Path) -> None:
    """`maskwatch dashboard` as a process: serves, refuses a busy port, and Ctrl-C ends it though a page is live."""
    port = free_port()
    cmd = [sys.executable, "-m", "maskwatch", "dashboard", "--port", str(port), "--redis-url", settings.redis_url,
           "--prefix", settings.prefix]
    log = (tmp_path / "dashboard.log").open("wb")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    try:
        def ready() -> bool:
            assert proc.poll() is None, (tmp_path / "dashboard.log").read_text()
            try:
                return httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200
            except httpx.TransportError:
                return False

        wait_for(ready, 30, lambda: "the dashboard to be ready; log:\n" + (tmp_path / "dashboard.log").read_text(),
                 every=0.2)
        busy = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
        assert busy.returncode == 1 and "address already in use" in busy.stderr and "--port" in busy.stderr
        with httpx.stream("GET", f"http://127.0.0.1:{port}/api/live", timeout=10) as live:
            next(live.iter_lines())  # a viewer is connected
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=2 + GRACEFUL_SHUTDOWN_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = (tmp_path / "dashboard.log").read_text()
    assert proc.returncode == 130, text  # the shell's code for Ctrl-C, after a clean shutdown
    assert "Application shutdown complete" in text
    assert "timeout graceful shutdown exceeded" not in text
