"""Producers as real processes: leases split cameras and move them on kill -9; SIGTERM; credentials; Redis restarts."""

from __future__ import annotations

import base64
import itertools
import logging
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import cv2
import httpx
import numpy as np
import pytest
import redis

from maskwatch.cameras import CameraConfig, Registry
from maskwatch.cli.embedded_redis import EmbeddedRedis, free_port
from maskwatch.cli.up import child_env
from maskwatch.keys import Keys
from maskwatch.settings import Settings
from producer import sources
from producer.service import ProducerService
from tests.support.producer import frames, lease_owners, make_video, producers, status
from tests.support.waiting import wait_for

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "hunter2"


@contextmanager
def producer_process(settings: Settings, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``maskwatch producer`` as a child process, killed on exit if still running.

    Its stderr (logs, OpenCV, FFmpeg) goes to ``log``.
    """
    with log.open("wb") as sink:
        proc = subprocess.Popen([sys.executable, "-m", "maskwatch", "producer"], env=child_env(settings), cwd=ROOT,
                                stdout=subprocess.DEVNULL, stderr=sink)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_two_producers_split_cameras_and_take_over_after_kill_9(settings: Settings, r: redis.Redis, keys: Keys,
                                                                  tmp_path: Path) -> None:
    settings = settings.override(lease_ttl_ms=1500)
    video = str(make_video(tmp_path / "v.avi", seconds=1, fps=10, size=(160, 120)))
    cams = ["c1", "c2", "c3", "c4"]
    for cam in cams:
        Registry(r, keys).put(CameraConfig(id=cam, url=video, fps=2, loop=True))
    with producer_process(settings, tmp_path / "other.log") as other, producers(settings) as start:
        wait_for(lambda: None not in lease_owners(r, keys, cams).values(), 15,
                 "the first producer to take every camera")
        mine = start()
        owners = wait_for(lambda: (o := lease_owners(r, keys, cams))
                          and sorted(Counter(o.values()).values()) == [2, 2] and mine.id in o.values() and o,
                          10, "a 2/2 split")
        theirs = [cam for cam, owner in owners.items() if owner != mine.id]
        wait_for(lambda: all(status(r, keys, c).get("producer") == owners[c] and frames(r, keys, c) for c in theirs),
                 10, "frames from the other producer's cameras")
        last_seq = {cam: frames(r, keys, cam)[-1].seq for cam in theirs}

        other.kill()  # SIGKILL: no lease released, no goodbye
        other.wait()
        killed, killed_ms = time.monotonic(), int(time.time() * 1000)
        wait_for(lambda: set(lease_owners(r, keys, cams).values()) == {mine.id}, 10, "every camera on the survivor",
                 every=0.05)
        took_s = time.monotonic() - killed
        # The lease runs out within its TTL of the last renewal, then the survivor's next tick takes it.
        ttl_s = settings.lease_ttl_ms / 1000
        assert took_s <= ttl_s + 1.5, f"cameras moved after {took_s:.1f} s with a lease TTL of {ttl_s} s"
        for cam in theirs:
            new = wait_for(lambda cam=cam: [f for f in frames(r, keys, cam) if f.ts > killed_ms], 10,
                           f"new frames of {cam}")
            assert new[0].seq > last_seq[cam], "seq keeps rising across the hand-over"
        assert sorted(mine.supervisor.cameras) == cams


class _Camera(BaseHTTPRequestHandler):
    """An IP camera: /snap.jpg (one JPEG) and /video (MJPEG), behind basic auth or ?token=.

    /stalling sends 10 frames, then keeps the connection open without sending anything, as a
    camera whose encoder hangs does.
    """

    server: _CameraServer

    jpeg = cv2.imencode(".jpg", np.full((120, 160, 3), 90, np.uint8))[1].tobytes()
    basic = "Basic " + base64.b64encode(f"admin:{PASSWORD}".encode()).decode()

    def do_GET(self) -> None:
        if self.headers.get("Authorization") != self.basic and f"token={PASSWORD}" not in self.path:
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="camera"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if self.path.startswith("/snap.jpg"):
            self.send_response(200)
            self.send_header("Content-Type", "image/jpeg")
            self.send_header("Content-Length", str(len(self.jpeg)))
            self.end_headers()
            self.wfile.write(self.jpeg)
            return
        self.send_response(200)
        self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
        self.end_headers()
        try:
            for i in itertools.count():
                if i == 10 and self.path.startswith("/stalling"):
                    self.server.closing.wait()
                    return
                part = b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % len(self.jpeg)
                self.wfile.write(part + self.jpeg + b"\r\n")
                time.sleep(0.05)
        except OSError:  # the producer hung up
            pass

    def log_message(self, *args: object) -> None:
        pass


class _CameraServer(ThreadingHTTPServer):
    daemon_threads = True
    closing: threading.Event  # set when the test ends: stalled handlers return


@pytest.fixture
def ip_camera() -> Iterator[int]:
    server = _CameraServer(("127.0.0.1", 0), _Camera)
    server.closing = threading.Event()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.closing.set()
    server.shutdown()
    server.server_close()


def test_credentials_never_leak_and_sigterm_stops_cleanly(settings: Settings, r: redis.Redis, keys: Keys,
                                                          tmp_path: Path, ip_camera: int) -> None:
    base = f"http://admin:{PASSWORD}@127.0.0.1:{ip_camera}"
    cams = {"snap": f"{base}/snap.jpg", "mjpeg": f"{base}/video",
            "token": f"http://127.0.0.1:{ip_camera}/snap.jpg?token={PASSWORD}",
            "wrong-password": f"http://admin:{PASSWORD}x@127.0.0.1:{ip_camera}/video",
            "dead-rtsp": f"rtsp://admin:{PASSWORD}@127.0.0.1:{free_port()}/stream1"}
    for cam, url in cams.items():
        Registry(r, keys).put(CameraConfig(id=cam, url=url, fps=5))
    port, log = free_port(), tmp_path / "producer.log"
    with producer_process(settings.override(producer_metrics_port=port, reconnect_max_s=1.0), log) as proc:
        try:
            for cam in ("snap", "mjpeg", "token"):
                wait_for(lambda cam=cam: len(frames(r, keys, cam)) >= 3, 15, f"frames of {cam}")
            wrong = wait_for(lambda: status(r, keys, "wrong-password").get("last_error"), 10,
                             "the wrong password to show")
            # The status says which camera and what to check; how it failed (HTTP 401) only the log says.
            # (The server's port is random and may hold the digits 401: look past the address.)
            assert wrong.startswith("no video from http://admin:***@") and "401" not in wrong.split("/video", 1)[1]
            wait_for(lambda: status(r, keys, "dead-rtsp").get("last_error"), 10, "the dead camera's error")
            shown = httpx.get(f"http://127.0.0.1:{port}/metrics").text + httpx.get(f"http://127.0.0.1:{port}/healthz").text
            states = {cam: status(r, keys, cam) for cam in cams}
            assert {cam: s["state"] for cam, s in states.items()} == {
                "snap": "online", "mjpeg": "online", "token": "online",
                "wrong-password": "reconnecting", "dead-rtsp": "reconnecting"}
        finally:
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(15)
    assert code == 0, "SIGTERM stops the producer cleanly"
    assert not r.keys(keys.lease("*")) and not r.keys(keys.member_pattern("producer")), \
        "leases and heartbeat released on exit"
    assert all(status(r, keys, cam)["detail"] == "stopped" for cam in cams)

    logs = log.read_text(errors="replace")
    assert "admin:***@127.0.0.1" in logs, "the log names cameras by their masked URL"
    assert "answered HTTP 401 Unauthorized" in logs, "the log says how a camera failed"
    entries = [{k: v for k, v in f.items() if k != b"jpg"} for cam in cams for _, f in r.xrange(keys.frames(cam))]
    everything = logs + shown + repr(states) + repr([status(r, keys, c) for c in cams]) + repr(entries)
    assert PASSWORD not in everything


def test_a_stalled_stream_is_detected_and_reconnected(settings: Settings, r: redis.Redis, keys: Keys,
                                                       ip_camera: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sources, "READ_TIMEOUT_MS", 1000)  # 5 s in production
    Registry(r, keys).put(CameraConfig(id="hang", url=f"http://admin:{PASSWORD}@127.0.0.1:{ip_camera}/stalling"))
    with producers(settings.override(reconnect_max_s=0.5)) as start:
        start()
        wait_for(lambda: "stopped sending frames" in status(r, keys, "hang").get("last_error", ""), 10,
                 "the stall to be noticed")
        first = len(frames(r, keys, "hang"))
        # Reconnected: the camera sends its 10 frames again, and those due at 5 fps reach the stream.
        wait_for(lambda: len(frames(r, keys, "hang")) > first, 10, "frames after the reconnect")
        assert int(status(r, keys, "hang")["reconnects"]) >= 1


def test_producer_recovers_when_redis_restarts(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    state, port = tmp_path / "redis", free_port()
    server = EmbeddedRedis(state, port=port, persist=True).start()  # its own server: this test stops it
    # Every frame whole: the looped second of video would soon read as still (tests/test_producer_motion.py).
    settings = Settings.from_env().override(redis_url=server.url, prefix="restart", producer_metrics_port=0,
                                            motion=False)
    keys, r = Keys("restart"), redis.Redis.from_url(server.url)
    Registry(r, keys).put(CameraConfig(id="lobby", url=str(make_video(tmp_path / "v.avi", seconds=1)), loop=True))
    producer = ProducerService(settings).start()
    try:
        wait_for(lambda: len(frames(r, keys, "lobby")) >= 5, 10, "frames before the restart")
        server.stop()
        # Capture goes on meanwhile: its frames are dropped and counted (in the producer; its status waits for Redis).
        sample = producer.metrics.registry.get_sample_value
        dropped = {"camera": "lobby", "reason": "redis_down"}
        wait_for(lambda: (sample("maskwatch_frames_skipped_total", dropped) or 0) >= 5, 10,
                 "frames dropped while Redis is down")
        back_ms = int(time.time() * 1000)
        server = EmbeddedRedis(state, port=port, persist=True).start()
        before = [f for f in frames(r, keys, "lobby") if f.ts < back_ms]
        after = wait_for(lambda: [f for f in frames(r, keys, "lobby") if f.ts >= back_ms][4:], 10,
                         "frames after the restart")
        assert after[0].seq > before[-1].seq
        wait_for(lambda: int(status(r, keys, "lobby").get("dropped", 0)) >= 5, 10,
                 "the dropped frames in the status")
        assert status(r, keys, "lobby")["state"] == "online"
    finally:
        producer.stop()
        server.stop()
    said = [rec.getMessage() for rec in caplog.records if "Redis at" in rec.getMessage()]
    assert len([m for m in said if "unreachable" in m]) == 1, f"one warning per outage, got {said}"
    assert len([m for m in said if "is back after" in m]) == 1
