"""The producer in-process against a real redis-server: file cameras, dead cameras, registry changes, backpressure."""

from __future__ import annotations

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
from maskwatch.streams import ensure_group
from producer.backpressure import Backpressure
from producer.metrics import ProducerMetrics
from tests.support.producer import StartProducer, frames, lease_owners, make_video, producers, status
from tests.support.waiting import wait_for


@pytest.fixture
def start_producer(settings: Settings) -> Iterator[StartProducer]:
    with producers(settings) as start:
        yield start


def test_file_camera_sends_frames_at_target_fps(start_producer: StartProducer, r: redis.Redis, keys: Keys,
                                                tmp_path: Path) -> None:
    # 3 s of 320x240 video at 25 fps, sent on at 5 fps and at most 160 px wide, without loop.
    video = make_video(tmp_path / "lobby.avi", seconds=3, fps=25)
    Registry(r, keys).put(CameraConfig(id="lobby", url=str(video), fps=5, max_width=160))
    port = free_port()
    producer = start_producer(producer_metrics_port=port)

    wait_for(lambda: status(r, keys, "lobby").get("detail") == "ended", 12, "the file camera to end")
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
    reg.put(CameraConfig(id="good", url=str(make_video(tmp_path / "good.avi", seconds=1)), loop=True))
    reg.put(CameraConfig(id="dead-rtsp", url=f"rtsp://admin:hunter2@127.0.0.1:{free_port()}/stream1"))
    reg.put(CameraConfig(id="missing", url=str(tmp_path / "nope.mp4")))
    # Every frame whole: the looped second of video would soon read as still (tests/test_producer_motion.py).
    producer = start_producer(reconnect_max_s=1.0, motion=False)

    wait_for(lambda: len(frames(r, keys, "good")) >= 15, 12, "the good camera's frames")
    dead = wait_for(lambda: (s := status(r, keys, "dead-rtsp")) and int(s.get("reconnects", 0)) >= 2 and s, 10,
                    "retries of the dead RTSP camera")
    assert dead["state"] == "reconnecting"
    assert "rtsp://admin:***@127.0.0.1" in dead["last_error"] and "hunter2" not in dead["last_error"]
    missing = wait_for(lambda: status(r, keys, "missing").get("last_error"), 10, "status of the missing file")
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

    reg.put(CameraConfig(id="a", url=video, loop=True))
    wait_for(lambda: frames(r, keys, "a"), 10, "frames of camera a, added while running")
    reg.put(CameraConfig(id="b", url=video, loop=True))
    wait_for(lambda: frames(r, keys, "b"), 10, "frames of camera b")

    reg.remove("a")
    wait_for(lambda: producer.supervisor.cameras == ["b"], 10, "camera a to stop")
    assert r.get(keys.lease("a")) is None and not r.exists(keys.cam_status("a"))
    sent_a = len(frames(r, keys, "a"))

    reg.put(CameraConfig(id="b", url=video, loop=True, enabled=False))
    wait_for(lambda: status(r, keys, "b").get("detail") == "disabled", 10, "camera b to be disabled")
    assert status(r, keys, "b")["state"] == "offline" and producer.supervisor.cameras == []

    # An invalid config is logged and skipped; a valid camera added next to it still runs.
    r.hset(keys.cameras, "broken", '{"url": "", "fps": 5}')
    reg.put(CameraConfig(id="c", url=video, loop=True, max_width=100))
    wait_for(lambda: frames(r, keys, "c"), 10, "frames of camera c")
    assert frames(r, keys, "c")[-1].w == 100
    assert any(getattr(rec, "cam", None) == "broken" and "url" in rec.getMessage() for rec in caplog.records)

    # A changed config restarts the capture with it.
    reg.put(CameraConfig(id="c", url=video, loop=True, max_width=64))
    wait_for(lambda: frames(r, keys, "c")[-1].w == 64, 10, "camera c at its new width")
    assert len(frames(r, keys, "a")) == sent_a, "a removed camera sends no more frames"
    assert lease_owners(r, keys, ["b", "c"]) == {"b": None, "c": producer.id}


def test_backpressure_skips_at_the_source_per_camera_and_counts(start_producer: StartProducer, r: redis.Redis,
                                                                keys: Keys, tmp_path: Path) -> None:
    video = str(make_video(tmp_path / "v.avi", seconds=1))
    for cam in ("busy", "read"):
        Registry(r, keys).put(CameraConfig(id=cam, url=video, fps=10, loop=True))
    ensure_group(r, keys, "read")  # as its worker does on taking the camera
    producer = start_producer(lag_threshold=10, motion=False)  # every frame whole: the looped video reads as still

    def read_camera() -> None:
        """A worker that keeps up with camera ``read`` only."""
        got = r.xreadgroup(keys.group, "w1", {keys.frames("read"): ">"}, count=1000)
        if got:
            r.xack(keys.frames("read"), keys.group, *[entry_id for entry_id, _ in got[0][1]])

    # Camera busy's frames are not read: its lag passes 10 and the producer stops sending them and
    # counts what it skips, while camera read, whose worker keeps up, goes on.
    wait_for(lambda: read_camera() or int(status(r, keys, "busy").get("skipped", 0)) >= 5, 10,
             "frames skipped under backpressure")
    sent = int(status(r, keys, "busy")["sent"])
    assert 10 <= sent <= 20, f"{sent} frames sent with a lag threshold of 10"
    sent_read = int(status(r, keys, "read")["sent"])
    wait_for(lambda: read_camera() or int(status(r, keys, "read")["sent"]) > sent_read + 10, 10,
             "camera read's frames to flow on")
    assert int(status(r, keys, "read")["skipped"]) == 0
    sample = producer.metrics.registry.get_sample_value
    skipped_metric = sample("maskwatch_frames_skipped_total", {"camera": "busy", "reason": "backpressure"})
    assert skipped_metric and skipped_metric >= 5
    busy_lag = sample("maskwatch_producer_camera_lag", {"camera": "busy"})
    assert busy_lag and busy_lag > 10 and sample("maskwatch_producer_group_lag") >= busy_lag

    # The producer made the group at the start of the stream: a first worker gets every frame sent.
    delivered = r.xreadgroup(keys.group, "w2", {keys.frames("busy"): ">"}, count=1000)[0][1]
    assert len(delivered) == r.xlen(keys.frames("busy")) >= sent
    r.xack(keys.frames("busy"), keys.group, *[entry_id for entry_id, _ in delivered])
    wait_for(lambda: int(status(r, keys, "busy")["sent"]) > sent + 2, 10,
             "frames sent again once the workers caught up")


def test_lag_is_estimated_when_redis_cannot_compute_it(r: redis.Redis, keys: Keys) -> None:
    pressure = Backpressure(r, keys, threshold=100, metrics=ProducerMetrics())
    stream = keys.frames("lobby")
    assert pressure.lag_now("lobby") == 0 and r.xinfo_groups(stream)[0]["name"] == keys.group.encode(), \
        "a missing group is created"
    ids = [r.xadd(stream, {"n": i}) for i in range(30)]
    r.xreadgroup(keys.group, "w1", {stream: ">"}, count=5)
    r.xdel(stream, ids[10])  # a deletion past the group's position: XINFO's lag becomes nil
    assert r.xinfo_groups(stream)[0]["lag"] is None
    assert pressure.lag_now("lobby") == 5 + 24, "pending plus undelivered"
