"""The producer in-process against a real redis-server: file cameras, dead cameras, registry changes, backpressure."""

from __future__ import annotations

import doctest
import importlib
import logging
from collections.abc import Iterator
from pathlib import Path

import cv2
import httpx
import numpy as np
import pytest
import redis

from maskwatch.cameras import CameraConfig, Registry
from maskwatch.cli.embedded_redis import free_port
from maskwatch.keys import Keys
from maskwatch.settings import Settings
from producer.backpressure import Backpressure
from producer.metrics import ProducerMetrics
from tests.test_producer_support import StartProducer, frames, lease_owners, make_video, producers, status, wait_for


@pytest.fixture
def start_producer(settings: Settings) -> Iterator[StartProducer]:
    with producers(settings) as start:
        yield start


@pytest.mark.parametrize("module", ["pacing", "backoff", "leases", "sources"])
def test_doctests(module: str) -> None:
    result = doctest.testmod(importlib.import_module(f"producer.{module}"))
    assert result.attempted > 0 and result.failed == 0


def test_file_camera_sends_frames_at_target_fps(start_producer: StartProducer, r: redis.Redis, keys: Keys,
                                                tmp_path: Path) -> None:
    # 3 s of 320x240 video at 25 fps, sent on at 5 fps and at most 160 px wide, without loop.
    video = make_video(tmp_path / "lobby.avi", seconds=3, fps=25)
    Registry(r, keys).put(CameraConfig("lobby", str(video), fps=5, max_width=160))
    port = free_port()
    producer = start_producer(producer_metrics_port=port)

    wait_for("the file camera to end", lambda: status(r, keys, "lobby").get("detail") == "ended", timeout=12)
    got = frames(r, keys, "lobby")
    assert 12 <= len(got) <= 16, f"{len(got)} frames from 3 s at 5 fps"
    seqs = [f.seq for f in got]
    assert seqs == sorted(set(seqs)), "seq must rise strictly"
    span_s = (got[-1].ts - got[0].ts) / 1000
    assert 2.0 <= span_s <= 3.8, f"frames span {span_s} s: the file must play in real time"
    for f in got:
        assert (f.w, f.h) == (160, 120)
        image = cv2.imdecode(np.frombuffer(f.jpg, np.uint8), cv2.IMREAD_COLOR)
        assert image.shape == (120, 160, 3)

    st = status(r, keys, "lobby")
    assert st["state"] == "offline" and int(st["sent"]) == len(got) and st["producer"] == producer.id
    metrics = httpx.get(f"http://127.0.0.1:{port}/metrics").text
    assert f'maskwatch_producer_frames_sent_total{{camera="lobby"}} {float(len(got))}' in metrics
    health = httpx.get(f"http://127.0.0.1:{port}/healthz")
    assert health.status_code == 200 and health.text.strip() == "ok"


def test_dead_cameras_reconnect_while_others_flow(start_producer: StartProducer, r: redis.Redis, keys: Keys,
                                                  tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    reg = Registry(r, keys)
    reg.put(CameraConfig("good", str(make_video(tmp_path / "good.avi", seconds=1)), loop=True))
    reg.put(CameraConfig("dead-rtsp", f"rtsp://admin:hunter2@127.0.0.1:{free_port()}/stream1"))
    reg.put(CameraConfig("missing", str(tmp_path / "nope.mp4")))
    producer = start_producer(reconnect_max_s=1.0)

    wait_for("the good camera's frames", lambda: len(frames(r, keys, "good")) >= 15, timeout=12)
    dead = wait_for("retries of the dead RTSP camera",
                    lambda: (s := status(r, keys, "dead-rtsp")) and int(s.get("reconnects", 0)) >= 2 and s)
    assert dead["state"] == "reconnecting"
    assert "rtsp://admin:***@127.0.0.1" in dead["last_error"] and "hunter2" not in dead["last_error"]
    missing = wait_for("status of the missing file", lambda: status(r, keys, "missing").get("last_error"))
    assert "does not exist" in missing and status(r, keys, "missing")["state"] == "reconnecting"
    assert status(r, keys, "good")["state"] == "online"
    assert frames(r, keys, "dead-rtsp") == [] and frames(r, keys, "missing") == []

    up = producer.metrics.registry.get_sample_value
    assert up("maskwatch_camera_up", {"camera": "good"}) == 1
    assert up("maskwatch_camera_up", {"camera": "dead-rtsp"}) == 0
    assert up("maskwatch_camera_reconnects_total", {"camera": "dead-rtsp"}) >= 2
    assert not [rec for rec in caplog.records if "hunter2" in rec.getMessage()]
    assert any(getattr(rec, "cam", None) == "dead-rtsp" and rec.levelno == logging.WARNING for rec in caplog.records)


def test_registry_changes_are_picked_up_without_restart(start_producer: StartProducer, r: redis.Redis, keys: Keys,
                                                        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    video = str(make_video(tmp_path / "v.avi", seconds=1))
    reg = Registry(r, keys)
    producer = start_producer()

    reg.put(CameraConfig("a", video, loop=True))
    wait_for("frames of camera a, added while running", lambda: frames(r, keys, "a"))
    reg.put(CameraConfig("b", video, loop=True))
    wait_for("frames of camera b", lambda: frames(r, keys, "b"))

    reg.remove("a")
    wait_for("camera a to stop", lambda: producer.supervisor.cameras == ["b"])
    assert r.get(keys.lease("a")) is None and not r.exists(keys.cam_status("a"))
    sent_a = len(frames(r, keys, "a"))

    reg.put(CameraConfig("b", video, loop=True, enabled=False))
    wait_for("camera b to be disabled", lambda: status(r, keys, "b").get("detail") == "disabled")
    assert status(r, keys, "b")["state"] == "offline" and producer.supervisor.cameras == []

    # An invalid config is logged and skipped; a valid camera added next to it still runs.
    r.hset(keys.cameras, "broken", '{"url": "", "fps": 5}')
    reg.put(CameraConfig("c", video, loop=True, max_width=100))
    wait_for("frames of camera c", lambda: frames(r, keys, "c"))
    assert frames(r, keys, "c")[-1].w == 100
    assert any(getattr(rec, "cam", None) == "broken" and "url" in rec.getMessage() for rec in caplog.records)

    # A changed config restarts the capture with it.
    reg.put(CameraConfig("c", video, loop=True, max_width=64))
    wait_for("camera c at its new width", lambda: frames(r, keys, "c")[-1].w == 64)
    assert len(frames(r, keys, "a")) == sent_a, "a removed camera sends no more frames"
    assert lease_owners(r, keys, ["b", "c"]) == {"b": None, "c": producer.id}


def test_backpressure_skips_at_the_source_and_counts(start_producer: StartProducer, r: redis.Redis, keys: Keys,
                                                     tmp_path: Path) -> None:
    Registry(r, keys).put(CameraConfig("busy", str(make_video(tmp_path / "v.avi", seconds=1)), fps=10, loop=True))
    producer = start_producer(lag_threshold=10)

    # No worker reads: the lag passes 10 and the producer stops sending and counts what it skips.
    wait_for("frames skipped under backpressure", lambda: int(status(r, keys, "busy").get("skipped", 0)) >= 5)
    sent = int(status(r, keys, "busy")["sent"])
    assert 10 <= sent <= 20, f"{sent} frames sent with a lag threshold of 10"
    skipped_metric = producer.metrics.registry.get_sample_value(
        "maskwatch_frames_skipped_total", {"camera": "busy", "reason": "backpressure"})
    assert skipped_metric and skipped_metric >= 5

    # The producer made the group at the start of the stream: a first worker gets every frame sent.
    delivered = r.xreadgroup(keys.group, "w1", {keys.frames: ">"}, count=1000)[0][1]
    assert len(delivered) == r.xlen(keys.frames) >= sent
    r.xack(keys.frames, keys.group, *[entry_id for entry_id, _ in delivered])
    wait_for("frames sent again once the workers caught up", lambda: int(status(r, keys, "busy")["sent"]) > sent + 2)


def test_lag_is_estimated_when_redis_cannot_compute_it(r: redis.Redis, keys: Keys) -> None:
    pressure = Backpressure(r, keys, threshold=100, metrics=ProducerMetrics())
    assert pressure.lag_now() == 0 and r.xinfo_groups(keys.frames)[0]["name"] == keys.group.encode(), \
        "a missing group is created"
    ids = [r.xadd(keys.frames, {"n": i}) for i in range(30)]
    r.xreadgroup(keys.group, "w1", {keys.frames: ">"}, count=5)
    r.xdel(keys.frames, ids[10])  # a deletion past the group's position: XINFO's lag becomes nil
    assert r.xinfo_groups(keys.frames)[0]["lag"] is None
    assert pressure.lag_now() == 5 + 24, "pending plus undelivered"
