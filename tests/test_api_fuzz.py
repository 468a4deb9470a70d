"""The dashboard's API fuzzed from its own OpenAPI schema: schemathesis sends generated requests, valid and not, over
real HTTP to the live dashboard (uvicorn on loopback, a real redis-server seeded through the worker's and producer's
own code), and every answer must be no server error and conform to the schema: a documented status code, content
type, headers and body.

Every operation is fuzzed but ``GET /api/live``, an endless Server-Sent Events stream that no request-response check
can end (tests/test_dashboard_api.py tests it). Write endpoints get the token, so their bodies are exercised rather
than refused. The run is bounded: the examples and coverage phases, then at most MAX_EXAMPLES generated cases an
operation, a fixed seed, no example database.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import httpx
import pytest
import redis
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from dashboard.app import create_app
from maskwatch.keys import Keys
from maskwatch.settings import Settings
from tests.support.dashboard import Seen, Shot, add_camera, publish_latest, record, record_people, serve, set_status

# The app's schema, to parametrize at collection (schemathesis' lazy loader from a fixture does not run on pytest 9);
# the first test checks that the live server serves this very schema.
SPEC = create_app(Settings.from_env({"MASKWATCH_REDIS_URL": "redis://127.0.0.1:1"})).openapi()  # never connected
# As the server sends it: parsed from JSON, no two parts of the schema are one object.
schema = schemathesis.openapi.from_dict(json.loads(json.dumps(SPEC))).exclude(method="GET", path="/api/live")
TOKEN = "fuzz-token"
MAX_EXAMPLES = 40
# Adding or changing a camera opens its URL once (dashboard/manage.py): generated URLs, and the schema's example
# rtsp://10.0.0.5/stream1, would send traffic off this machine. Every URL that could name a host is sent as one on a
# closed port of loopback; URLs without a scheme (webcam indexes, file paths) open nothing on the network.
LOOPBACK_URL = "rtsp://127.0.0.1:1/fuzz"
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_headers_conformance,
          response_schema_conformance]


@pytest.fixture
def live_url(settings: Settings, r: redis.Redis, keys: Keys) -> Iterator[str]:
    """The dashboard with a camera that has figures, violations, people, a status and a latest frame."""
    s = settings.override(api_token=TOKEN, event_throttle_s=0.001)
    now = int(time.time() * 1000)
    add_camera(r, keys, "lobby")
    record(r, keys, s, [Shot("lobby", now - 60_000, ["with_mask", "without_mask"], event=True),
                        Shot("lobby", now - 30_000, ["with_mask"])])
    record_people(r, keys, [Seen("lobby", 1, now - 20_000, "without_mask", snapshot=True)])
    set_status(r, keys, "lobby", last_frame_ts=now, sent=2)
    publish_latest(r, keys, "lobby", ["without_mask"])
    with serve(s) as url:
        yield url


def test_the_live_server_serves_the_schema_fuzzed(live_url: str) -> None:
    assert httpx.get(f"{live_url}/openapi.json").json() == SPEC


@schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, deadline=None, database=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                                 HealthCheck.function_scoped_fixture])
def test_api_answers_as_its_schema_says(case: schemathesis.Case, live_url: str) -> None:
    if isinstance(case.body, dict) and ":" in str(case.body.get("url", "")):
        case.body["url"] = LOOPBACK_URL
    case.call_and_validate(base_url=live_url, headers={"Authorization": f"Bearer {TOKEN}"}, checks=CHECKS,
                           timeout=30)


@pytest.mark.parametrize(("path", "loc"), [
    ("/api/events?since=18446744073709551616", ["query", "since"]),  # was a 503: Redis refused the stream id
    ("/api/events?camera=no/such", ["query", "camera"]),
    ("/api/people?before=1e99", ["query", "before"]),
    ("/api/cameras/lobby/people?before=99999999999999999999", ["query", "before"]),
    ("/api/cameras/lobby/compliance?window=soon", ["query", "window"]),
    ("/api/cameras/bad:id", ["path", "camera_id"]),
    ("/api/events/bad id/snapshot.jpg", ["path", "event_id"]),
    ("/api/jobs/no:such", ["path", "job_id"]),
    ("/api/analyses/no:such", ["path", "job_id"]),
    ("/api/deliveries/failed?limit=0", ["query", "limit"]),
])
def test_a_bad_parameter_is_422_naming_it(live_url: str, path: str, loc: list[str]) -> None:
    resp = httpx.get(f"{live_url}{path}")
    assert resp.status_code == 422, resp.text
    assert resp.json()["detail"][0]["loc"] == loc
