"""Side jobs against a real redis-server and a real HTTP receiver: signed webhooks with retries, alerts, no pickle.

Jobs run through the runner in burst mode (:meth:`worker.jobs.runner.Runner.burst`): RQ's
SimpleWorker in this process, as `maskwatch jobs --burst` runs them.
"""

from __future__ import annotations

import itertools
import json
import signal
import subprocess
import sys
import threading
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
import redis
from rq.job import Job
from rq.serializers import JSONSerializer

from maskwatch import jobstore
from maskwatch.cameras import CameraConfig, Registry
from maskwatch.cli.embedded_redis import free_port
from maskwatch.cli.up import child_env
from maskwatch.codec import Event, encode_event
from maskwatch.compliance import bucket_of, stat_field
from maskwatch.keys import Keys
from maskwatch.settings import Settings
from maskwatch.signing import HEADER, verify_signature
from maskwatch.utils import now_ms
from tests.support.dashboard import Seen, record_people
from tests.support.waiting import wait_for
from worker.jobs import dispatch
from worker.jobs.alerts import FIRING, OK
from worker.jobs.dispatch import ensure_group
from worker.jobs.runner import Runner
from worker.jobs.webhooks import Notifier, WebhookConfigError

SECRET = "shared-secret"
MIN = 60_000
_tracks = itertools.count(1)  # track numbers of recorded people, unique within a test session


@dataclass
class Receiver:
    """A webhook receiver on 127.0.0.1: answers 500 to the first ``fail`` requests (all, if negative), then 200."""

    url: str
    fail: int = 0
    requests: list[tuple[dict[str, str], bytes, int]] = field(default_factory=list)  # headers, body, status sent

    @property
    def accepted(self) -> list[dict]:
        return [json.loads(body) for _, body, status in self.requests if status == 200]


@contextmanager
def receiver(fail: int = 0) -> Iterator[Receiver]:
    port = free_port()
    rec = Receiver(f"http://127.0.0.1:{port}/hook", fail)
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            with lock:
                status = 500 if rec.fail < 0 or len(rec.requests) < rec.fail else 200
                rec.requests.append((dict(self.headers), body, status))
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield rec
    finally:
        server.shutdown()
        server.server_close()


def hook_settings(settings: Settings, url: str, tries: int = 3) -> Settings:
    return settings.override(webhook_url=url, webhook_secret=SECRET, webhook_tries=tries, webhook_backoff_s=0.2)


def violation(r: redis.Redis, keys: Keys, cam: str = "lobby", ts: int = 1_700_000_000_000) -> str:
    event = Event(cam=cam, seq=7, ts=ts, score=0.93, box=(10, 20, 30, 30), snap=f"{cam}-{ts}-7")
    return r.xadd(keys.events, encode_event(event)).decode()


def delivered_counter(runner: Runner, kind: str, outcome: str) -> float:
    """What the runner's /metrics says; each runner counts on its own."""
    labels = {"kind": kind, "outcome": outcome}
    return runner.ctx.metrics.registry.get_sample_value("maskwatch_jobs_webhook_deliveries_total", labels) or 0.0


def test_violation_webhook_is_signed_and_carries_time_and_delivery_id(settings, r, keys):
    violation(r, keys, ts=1_600_000_000_000)  # before the notifier group existed: never sent (no flood of old events)
    with receiver() as rec:
        s = hook_settings(settings, rec.url)
        runner = Runner(s, r)
        ensure_group(r, keys)
        violation(r, keys)
        runner.burst()
        runner.burst()  # a second pass finds nothing new to send
    assert len(rec.requests) == 1
    headers, body, _ = rec.requests[0]
    assert verify_signature(body, headers[HEADER], SECRET)
    assert not verify_signature(body.replace(b"lobby", b"l0bby"), headers[HEADER], SECRET), "tampered body"
    assert not verify_signature(body, headers[HEADER], "another-secret")
    payload = json.loads(body)
    assert payload["type"] == "violation" and payload["camera"] == "lobby"
    assert payload["ts"] == 1_700_000_000_000 and payload["time"] == "2023-11-14T22:13:20.000Z"
    assert payload["probability"] == 0.93 and payload["box"] == [10, 20, 30, 30]
    assert payload["snapshot_url"] == "/api/events/lobby-1700000000000-7/snapshot.jpg"
    assert len(payload["delivery_id"]) == 36 and payload["attempt"] == 1 and payload["sent_at"] > payload["ts"]
    assert r.xpending(keys.events, "notifier")["pending"] == 0, "dispatched events are acknowledged"


def test_failing_twice_then_succeeding_gives_one_delivery(settings, r, keys):
    with receiver(fail=2) as rec:
        runner = Runner(hook_settings(settings.override(dashboard_url="https://mw.example/"), rec.url, tries=3), r)
        ensure_group(r, keys)
        violation(r, keys)
        runner.burst()
    assert [status for _, _, status in rec.requests] == [500, 500, 200]
    assert len(rec.accepted) == 1
    bodies = [json.loads(body) for _, body, _ in rec.requests]
    assert len({b["delivery_id"] for b in bodies}) == 1, "retries keep the delivery id, so receivers can dedupe"
    assert [b["attempt"] for b in bodies] == [1, 2, 3]
    assert all(verify_signature(body, h[HEADER], SECRET) for h, body, _ in rec.requests)
    assert bodies[0]["snapshot_url"].startswith("https://mw.example/api/events/")
    assert jobstore.failed_deliveries(r, keys) == []
    overview = jobstore.jobs_overview(r, settings.prefix)
    assert [j.status for j in overview.finished] == ["finished"] and not overview.failed


def test_a_receiver_that_always_fails_ends_marked_failed(settings, r, keys):
    with receiver(fail=-1) as rec:
        runner = Runner(hook_settings(settings, rec.url, tries=2), r)
        ensure_group(r, keys)
        violation(r, keys, cam="door")
        runner.burst()
    assert len(rec.requests) == 2
    [failed] = jobstore.failed_deliveries(r, keys)
    assert failed.camera == "door" and failed.kind == "violation" and failed.attempts == 2
    assert "answered HTTP 500" in failed.error and failed.url == rec.url
    assert failed.payload["type"] == "violation"
    assert delivered_counter(runner, "violation", "failed") == 1
    assert delivered_counter(runner, "violation", "delivered") == 0
    [job] = jobstore.jobs_overview(r, settings.prefix).failed
    assert job.status == "failed" and "answered HTTP 500" in job.error


def test_webhooks_go_to_global_and_per_camera_urls():
    s = Settings(webhook_url="https://all.example/h, lobby=https://lobby.example/h?x=1", webhook_secret="x")
    notifier = Notifier(redis.Redis(), s)  # no command is sent: only the targets are read
    assert notifier.urls("lobby") == ["https://all.example/h", "https://lobby.example/h?x=1"]
    assert notifier.urls("door") == ["https://all.example/h"]
    with pytest.raises(WebhookConfigError, match="MASKWATCH_WEBHOOK_SECRET"):
        Notifier(redis.Redis(), Settings(webhook_url="https://all.example/h"))
    with pytest.raises(WebhookConfigError, match="not an http"):
        Notifier(redis.Redis(), Settings(webhook_url="ftp://x", webhook_secret="x"))


def test_no_job_payload_is_pickled(settings, r, keys, tmp_path):
    q = jobstore.queue(r, settings.prefix, jobstore.ANALYSIS)
    assert q.serializer is JSONSerializer
    video = {"path": str(tmp_path / "v.mp4"), "name": "v.mp4"}
    job = jobstore.enqueue_analysis(r, settings.prefix, video, "lobby", 2.0)
    s = hook_settings(settings, "http://127.0.0.1:9/hook")
    Notifier(r, s).send("violation", "lobby", "k1", {"type": "violation"})
    jobs = [job.id] + jobstore.queue(r, settings.prefix, jobstore.NOTIFY).get_job_ids()
    assert len(jobs) == 2
    for job_id in jobs:
        raw = r.hgetall(Job.key_for(job_id))
        data = zlib.decompress(raw[b"data"])
        assert not data.startswith(b"\x80"), "a pickle starts with its protocol byte 0x80"
        func, _instance, args, _kwargs = json.loads(data)
        assert func.startswith("worker.jobs.") and args == []
        assert SECRET not in data.decode(), "the webhook secret never travels in a job"
    assert json.loads(zlib.decompress(r.hget(Job.key_for(job.id), "data")))[3]["camera"] == "lobby"


# --- alerts

def put_minute(r: redis.Redis, keys: Keys, cam: str, ts: int, with_mask: int, without_mask: int) -> None:
    """One minute of statistics, as the worker's commit script writes them."""
    day, minute = bucket_of(ts)
    r.hset(keys.stats(cam, day), mapping={stat_field(minute, "frames"): 10,
                                          stat_field(minute, "faces"): with_mask + without_mask,
                                          stat_field(minute, "with_mask"): with_mask,
                                          stat_field(minute, "without_mask"): without_mask})


def test_alert_fires_once_per_episode_and_resolves_on_recovery(settings, r, keys):
    t0 = (now_ms() // MIN - 2 * 1440) * MIN + 30_000  # two days ago: burst's own evaluation (now) sees nothing
    with receiver() as rec:
        s = hook_settings(settings, rec.url).override(alert_window_s=60, alert_threshold=0.8, alert_min_faces=10,
                                                      tracking=False)  # the episodes, judged on faces
        for cam in ("lobby", "quiet"):
            Registry(r, keys).put(CameraConfig(id=cam, url="0"))
        runner = Runner(s, r)
        evaluate = runner.alerts.evaluate
        put_minute(r, keys, "lobby", t0, with_mask=5, without_mask=15)  # 25 %
        put_minute(r, keys, "quiet", t0, with_mask=0, without_mask=3)  # low, but too few faces to judge
        fired = evaluate(t0)
        assert [(t.camera, t.state) for t in fired] == [("lobby", FIRING)]
        put_minute(r, keys, "lobby", t0 + 2 * MIN, with_mask=2, without_mask=18)
        assert evaluate(t0 + 2 * MIN) == [], "still low: no second alert"
        # 82 %: above 80 % but within the margin
        put_minute(r, keys, "lobby", t0 + 4 * MIN, with_mask=82, without_mask=18)
        assert evaluate(t0 + 4 * MIN) == []
        put_minute(r, keys, "lobby", t0 + 6 * MIN, with_mask=19, without_mask=1)  # 95 %: recovered
        [resolved] = evaluate(t0 + 6 * MIN)
        assert (resolved.camera, resolved.state) == ("lobby", OK)
        states = {a.camera: a for a in jobstore.alert_states(r, keys, ["lobby", "quiet"])}
        lobby = states["lobby"]
        assert lobby.state == "ok" and lobby.episodes == 1 and lobby.since_ms == t0 + 6 * MIN
        assert states["lobby"].compliance == 0.95 and states["lobby"].faces == 20
        assert states["quiet"].state == "ok" and states["quiet"].faces == 0
        runner.burst()
    alerts = rec.accepted
    assert [(a["type"], a["camera"], a["state"]) for a in alerts] == [("alert", "lobby", "firing"),
                                                                       ("alert", "lobby", "resolved")]
    assert alerts[0]["compliance"] == 0.25 and alerts[0]["faces"] == 20 and alerts[0]["threshold"] == 0.8
    assert alerts[1]["fired_ts"] == t0 and alerts[1]["ts"] == t0 + 6 * MIN
    assert all(verify_signature(body, h[HEADER], SECRET) for h, body, _ in rec.requests)


def test_two_runners_evaluating_at_once_fire_once(settings, r, keys):
    t0 = (now_ms() // MIN - 2 * 1440) * MIN + 30_000
    s = settings.override(alert_window_s=60, alert_min_faces=10, tracking=False)
    Registry(r, keys).put(CameraConfig(id="lobby", url="0"))
    put_minute(r, keys, "lobby", t0, with_mask=0, without_mask=12)
    a, b = Runner(s, r, name="a"), Runner(s, r, name="b")
    # b read the state before a's transition landed: its compare-and-set must lose
    stale = jobstore.alert_states(r, keys, ["lobby"])
    assert len(a.alerts.evaluate(t0)) == 1
    assert b.alerts.script(keys=[keys.alert("lobby")], args=[stale[0].state, "state", FIRING]) == 0
    assert b.alerts.evaluate(t0) == []


def people_minute(r: redis.Redis, keys: Keys, cam: str, ts: int, with_mask: int, without_mask: int) -> None:
    """People whose tracks ended in one minute, as the worker's commit records them."""
    labels = ["with_mask"] * with_mask + ["without_mask"] * without_mask
    record_people(r, keys, [Seen(cam, next(_tracks), ts, label) for label in labels])


def test_alerts_judge_people_when_tracking(settings, r, keys):
    """One unmasked person standing long in front of a camera is one person: people, not face-frames, decide."""
    t0 = (now_ms() // MIN - 2 * 1440) * MIN + 30_000
    with receiver() as rec:
        s = hook_settings(settings, rec.url).override(alert_window_s=60, alert_threshold=0.8, alert_min_faces=10,
                                                      tracking=True)
        for cam in ("lobby", "hall", "dock"):
            Registry(r, keys).put(CameraConfig(id=cam, url="0"))
        runner = Runner(s, r)
        # lobby: 95% of 20 face observations, but 3 of 10 people masked
        put_minute(r, keys, "lobby", t0, with_mask=19, without_mask=1)
        people_minute(r, keys, "lobby", t0, with_mask=3, without_mask=7)
        # hall: 30 unmasked face observations of 2 people: too few people to judge, and faces do not stand in
        put_minute(r, keys, "hall", t0, with_mask=0, without_mask=30)
        people_minute(r, keys, "hall", t0, with_mask=0, without_mask=2)
        # dock: 25% of 20 observations and no person recorded yet (their tracks go on): nothing to judge
        put_minute(r, keys, "dock", t0, with_mask=5, without_mask=15)
        fired = runner.alerts.evaluate(t0)
        assert sorted((t.camera, t.state) for t in fired) == [("lobby", FIRING)]
        states = {a.camera: a for a in jobstore.alert_states(r, keys, ["hall", "dock"])}
        hall, dock = states["hall"], states["dock"]
        assert (hall.state, hall.basis, hall.people, hall.faces) == ("ok", "people", 2, 30)
        assert (dock.state, dock.basis, dock.people, dock.faces) == ("ok", "people", 0, 20)
        # with tracking off no people are counted: the dock's observations are judged, 25%
        [untracked] = Runner(s.override(tracking=False), r).alerts.evaluate(t0)
        assert (untracked.camera, untracked.state) == ("dock", FIRING)
        people_minute(r, keys, "lobby", t0 + 2 * MIN, with_mask=10, without_mask=0)
        put_minute(r, keys, "lobby", t0 + 2 * MIN, with_mask=0, without_mask=40)  # observations alone would not
        [resolved] = runner.alerts.evaluate(t0 + 2 * MIN)
        assert (resolved.camera, resolved.state) == ("lobby", OK)
        states = {a.camera: a for a in jobstore.alert_states(r, keys, ["lobby", "dock"])}
        assert (states["lobby"].basis, states["lobby"].compliance, states["lobby"].people) == ("people", 1.0, 10)
        assert (states["dock"].state, states["dock"].basis) == ("firing", "people")  # judged again, too little
        runner.burst()
    by_camera = {(a["camera"], a["state"]): a for a in rec.accepted}
    assert set(by_camera) == {("lobby", "firing"), ("dock", "firing"), ("lobby", "resolved")}
    lobby = by_camera["lobby", "firing"]
    assert (lobby["basis"], lobby["compliance"]) == ("people", 0.3)
    assert (lobby["people"], lobby["people_without_mask"]) == (10, 7)
    assert (lobby["faces"], lobby["with_mask"]) == (20, 19)  # the observations come along
    dock = by_camera["dock", "firing"]
    assert (dock["basis"], dock["compliance"], dock["people"], dock["faces"]) == ("observations", 0.25, 0, 20)


def test_jobs_process_delivers_retries_serves_metrics_and_stops_on_sigterm(settings, r, keys):
    """`maskwatch jobs` as its own process: dispatcher thread, retry ticker, RQ worker loop, /metrics, SIGTERM."""
    port = free_port()
    with receiver(fail=1) as rec:
        s = hook_settings(settings, rec.url, tries=2).override(jobs_metrics_port=port)
        ensure_group(r, keys)  # as the runner will: events from now on
        proc = subprocess.Popen([sys.executable, "-m", "maskwatch", "jobs"], env=child_env(s),
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            violation(r, keys, cam="gate")
            wait_for(lambda: len(rec.accepted) == 1, 30, lambda: "one delivered webhook; " + (
                f"jobs exited: {proc.stderr.read()}" if proc.poll() is not None else f"requests: {rec.requests}"))
            metrics = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
            assert 'maskwatch_jobs_webhook_deliveries_total{kind="violation",outcome="delivered"} 1.0' in metrics
            assert 'maskwatch_jobs_webhook_attempts_failed_total{kind="violation"} 1.0' in metrics
            assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 200
        finally:
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert [status for _, _, status in rec.requests] == [500, 200]


def test_events_left_by_a_dead_runner_are_sent_once_and_bad_ones_skipped(settings, r, keys, monkeypatch):
    with receiver() as rec:
        runner = Runner(hook_settings(settings, rec.url), r)
        ensure_group(r, keys)
        entry = violation(r, keys, cam="dock")
        r.xreadgroup("notifier", "dead-runner", {keys.events: ">"})  # read, never acknowledged
        r.xadd(keys.events, {"v": 1, "cam": "dock", "seq": "x"})  # malformed: skipped, not retried forever
        monkeypatch.setattr(dispatch, "CLAIM_IDLE_MS", 0)
        runner.burst()
        runner.notifier.send("violation", "dock", f"event|{entry}", {"type": "violation"})  # queued again: no new job
        runner.burst()
    assert [(b["camera"], b["event_id"]) for b in rec.accepted] == [("dock", "dock-1700000000000-7")]
    assert r.xpending(keys.events, "notifier")["pending"] == 0
