"""``/metrics``: parsed with prometheus_client's parser, and scraped by a real Prometheus when it is installed."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from maskwatch.codec import Frame, encode_frame
from maskwatch.cli.embedded_redis import free_port
from maskwatch.keys import Keys
from maskwatch.settings import Settings
from tests.test_dashboard_support import Shot, add_camera, record, serve, set_status
from maskwatch.streams import ensure_group
from worker.consumer import FrameSource
from worker.deadletter import DeadLetters

PROMETHEUS = Path("/usr/bin/prometheus")


@pytest.fixture
def dashboard(settings: Settings, r: redis.Redis, keys: Keys) -> Iterator[str]:
    """lobby: 3 of 4 masked five minutes ago, online, 7 frames skipped; 4 frames waiting, 1 dead-lettered."""
    now = int(time.time() * 1000)
    add_camera(r, keys, "lobby")
    add_camera(r, keys, "gate")
    record(r, keys, settings, [Shot("lobby", now - 300_000, ["with_mask"] * 3 + ["without_mask"]),
                               Shot("lobby", now - 240_000, [])])
    set_status(r, keys, "lobby", skipped=7)
    ensure_group(r, keys)
    for seq in range(5):
        r.xadd(keys.frames, encode_frame(Frame("gate", seq, now, 8, 8, b"x")))
    bad = FrameSource(r, keys, "w1", batch_size=1, max_wait_ms=0, claim_idle_ms=600_000).next_batch()
    DeadLetters(r, keys, "w1").send(bad[0].id, bad[0].fields, "not a JPEG", 1)
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
    assert got[("maskwatch_queue_lag_frames", ())] == 4
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
scrape_configs:
  - job_name: maskwatch-dashboard
    static_configs:
      - targets: ["{target}"]
""")
    port = free_port()
    proc = subprocess.Popen([str(PROMETHEUS), f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                             f"--web.listen-address=127.0.0.1:{port}"],
                            stdout=subprocess.DEVNULL, stderr=(tmp_path / "prometheus.log").open("wb"))
    query = 'maskwatch_faces_total{camera="lobby",label="with_mask"}'
    result: list = []
    try:
        deadline = time.monotonic() + 20
        while not result and time.monotonic() < deadline:
            time.sleep(0.5)
            try:
                resp = httpx.get(f"http://127.0.0.1:{port}/api/v1/query", params={"query": query}, timeout=2)
            except httpx.TransportError:
                continue  # not listening yet
            if resp.status_code == 200:
                result = resp.json()["data"]["result"]
    finally:
        proc.terminate()
        proc.wait(10)
    assert result, f"Prometheus returned no series for {query}; log: {(tmp_path / 'prometheus.log').read_text()[-2000:]}"
    assert result[0]["metric"]["job"] == "maskwatch-dashboard" and float(result[0]["value"][1]) == 3
