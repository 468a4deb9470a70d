"""``/metrics``: parsed with prometheus_client's parser, and scraped by a real Prometheus when it is installed,
which then answers the queries the alert rules and the KEDA ScaledObject run on it."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis
import yaml
from prometheus_client.parser import text_string_to_metric_families

from maskwatch.cli.embedded_redis import free_port
from maskwatch.codec import Frame, encode_frame
from maskwatch.keys import Keys
from maskwatch.settings import Settings
from maskwatch.streams import ensure_group
from tests.conftest import ROOT
from tests.support.dashboard import Shot, add_camera, record, serve, set_status
from tests.support.waiting import wait_for
from worker.consumer import FrameSource
from worker.deadletter import DeadLetters

PROMETHEUS = Path("/usr/bin/prometheus")
RULES = ROOT / "deploy" / "prometheus" / "rules" / "maskwatch.yml"
SCALED_OBJECT = ROOT / "deploy" / "k8s" / "base" / "worker-scaledobject.yaml"


@pytest.fixture
def dashboard(settings: Settings, r: redis.Redis, keys: Keys) -> Iterator[str]:
    """lobby: 3 of 4 masked five minutes ago, online, 7 frames skipped, 120 idle, 2 frames waiting;
    gate: 4 frames waiting after 1 was dead-lettered."""
    now = int(time.time() * 1000)
    add_camera(r, keys, "lobby")
    add_camera(r, keys, "gate")
    record(r, keys, settings, [Shot("lobby", now - 300_000, ["with_mask"] * 3 + ["without_mask"]),
                               Shot("lobby", now - 240_000, [])])
    set_status(r, keys, "lobby", skipped=7, idle=120, last_motion_ts=now - 1000)
    ensure_group(r, keys, "gate")  # as the producers do before they send (record() made lobby's)
    for seq in range(2):
        r.xadd(keys.frames("lobby"), encode_frame(Frame("lobby", 100 + seq, now, 8, 8, b"x")))
    for seq in range(5):
        r.xadd(keys.frames("gate"), encode_frame(Frame("gate", seq, now, 8, 8, b"x")))
    source = FrameSource(r, keys, "w1", batch_size=1, max_wait_ms=0)
    source.add("gate")
    bad = source.next_batch()
    DeadLetters(r, keys, "w1").send("gate", bad[0].id, bad[0].fields, "not a JPEG", 1)
    with serve(settings) as url:
        yield url


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_metrics_hold_what_redis_holds(dashboard: str) -> None:
    resp = httpx.get(f"{dashboard}/metrics")
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/plain")
    types = {f.name: f.type for f in text_string_to_metric_families(resp.text)}
    assert types["maskwatch_faces"] == "counter" and types["maskwatch_frames"] == "counter"
    assert types["maskwatch_compliance_ratio"] == "gauge" and types["maskwatch_queue_lag_frames"] == "gauge"
    assert types["maskwatch_camera_lag_frames"] == "gauge" and types["maskwatch_camera_frames_idle"] == "counter"
    got = samples(resp.text)
    assert got[("maskwatch_faces_total", (("camera", "lobby"), ("label", "with_mask")))] == 3
    assert got[("maskwatch_faces_total", (("camera", "lobby"), ("label", "without_mask")))] == 1
    assert got[("maskwatch_frames_total", (("camera", "lobby"),))] == 2
    assert got[("maskwatch_frames_total", (("camera", "gate"),))] == 0
    for window in ("15m", "1h", "24h"):
        assert got[("maskwatch_compliance_ratio", (("camera", "lobby"), ("window", window)))] == 0.75
        assert got[("maskwatch_site_compliance_ratio", (("window", window),))] == 0.75
    # no face in the last minute, none ever at the gate: no ratio rather than a made-up one
    assert ("maskwatch_compliance_ratio", (("camera", "lobby"), ("window", "1m"))) not in got
    assert not any(k[0] == "maskwatch_compliance_ratio" and ("camera", "gate") in k[1] for k in got)
    assert got[("maskwatch_camera_up", (("camera", "lobby"),))] == 1
    assert got[("maskwatch_camera_up", (("camera", "gate"),))] == 0
    assert got[("maskwatch_frames_skipped_total", (("camera", "lobby"),))] == 7
    assert got[("maskwatch_camera_frames_idle_total", (("camera", "lobby"),))] == 120
    assert got[("maskwatch_camera_frames_idle_total", (("camera", "gate"),))] == 0
    # one stream a camera: each camera's lag, and the site's, their sum (what KEDA scales on)
    assert got[("maskwatch_camera_lag_frames", (("camera", "lobby"),))] == 2
    assert got[("maskwatch_camera_lag_frames", (("camera", "gate"),))] == 4
    assert got[("maskwatch_queue_lag_frames", ())] == 6
    assert got[("maskwatch_workers_alive", ())] == 0
    assert got[("maskwatch_frames_dead_lettered_total", ())] == 1
    assert got[("maskwatch_redis_up", ())] == 1


def test_metrics_survive_a_missing_redis(settings: Settings) -> None:
    with serve(settings.override(redis_url=f"redis://127.0.0.1:{free_port()}/0")) as url:
        resp = httpx.get(f"{url}/metrics", timeout=20)
    assert resp.status_code == 200
    assert samples(resp.text) == {("maskwatch_redis_up", ()): 0}


@pytest.mark.skipif(not PROMETHEUS.exists(), reason="Prometheus is not installed (Debian: apt-get install prometheus)")
def test_prometheus_scrapes_the_dashboard(dashboard: str, tmp_path: Path) -> None:
    target = dashboard.removeprefix("http://")
    config = tmp_path / "prometheus.yml"
    config.write_text(f"""
global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files: ["{RULES}"]
scrape_configs:
  - job_name: maskwatch-dashboard
    static_configs:
      - targets: ["{target}"]
""")
    port = free_port()
    proc = subprocess.Popen([str(PROMETHEUS), f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                             f"--web.listen-address=127.0.0.1:{port}"],
                            stdout=subprocess.DEVNULL, stderr=(tmp_path / "prometheus.log").open("wb"))
    keda_query = yaml.safe_load(SCALED_OBJECT.read_text())["spec"]["triggers"][0]["metadata"]["query"]

    def series(query: str) -> list:
        try:
            resp = httpx.get(f"http://127.0.0.1:{port}/api/v1/query", params={"query": query}, timeout=2)
        except httpx.TransportError:
            return []  # not listening yet
        return resp.json()["data"]["result"] if resp.status_code == 200 else []

    def answer(query: str) -> list:
        return wait_for(lambda: series(query), 20, lambda: f"Prometheus to return a series for {query}; log: "
                                                           f"{(tmp_path / 'prometheus.log').read_text()[-2000:]}",
                        every=0.5)

    try:
        faces = answer('maskwatch_faces_total{camera="lobby",label="with_mask"}')
        recorded = answer("maskwatch:frames_lag:sum")  # the alerts' total lag, from the rules' file
        keda = answer(keda_query)  # what KEDA scales the workers on
    finally:
        proc.terminate()
        proc.wait(10)
    assert faces[0]["metric"]["job"] == "maskwatch-dashboard" and float(faces[0]["value"][1]) == 3
    assert float(recorded[0]["value"][1]) == float(keda[0]["value"][1]) == 2 + 4  # lobby's lag and gate's
