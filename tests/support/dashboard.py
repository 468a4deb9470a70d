"""Helpers of the dashboard tests: write Redis the way workers and producers do, and serve the app for real.

Statistics, results and events go through the worker's own code: a frame is added to its
camera's frames stream, read through the ``workers`` group by the worker's
:class:`worker.consumer.FrameSource` and committed by :class:`worker.commit.Committer` (the Lua
script that acknowledges and counts), and camera status through the producer's publisher, so the
dashboard is tested against exactly what workers and producers write.

Person records (:func:`record_people`) are written key by key as the worker's commit writes them
(docs/architecture.md, "Keyed by camera"): the record JSON with the retention as TTL, the track
number in the camera's people sorted set, the people counters in the minute the track ended and in
the totals, and the best-look snapshot when one may be stored.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import cv2
import numpy as np
import redis

from dashboard.app import create_app
from dashboard.server import server_for
from maskwatch.cameras import CameraConfig, Registry
from maskwatch.cli.embedded_redis import free_port
from maskwatch.codec import Event, Face, Frame, Result, encode_frame
from maskwatch.compliance import STATS_TTL_S, bucket_of, stat_field
from maskwatch.keys import Keys
from maskwatch.people import Person
from maskwatch.settings import Settings
from maskwatch.vision.annotate import annotate
from maskwatch.vision.jpeg import encode_jpeg
from producer.metrics import ProducerMetrics
from producer.status import CameraStats, publish
from tests.support.waiting import wait_for
from worker.commit import Committer, Outcome
from worker.consumer import FrameSource

_seq = itertools.count(1)
_TINY_JPEG = encode_jpeg(np.zeros((8, 8, 3), np.uint8), 80)


@dataclass(frozen=True)
class Shot:
    """One frame to record: camera, capture time (epoch ms), the labels of its faces, whether to raise an event, and
    how long after its capture the worker committed its result (capture-to-result latency, ms)."""

    cam: str
    ts: int
    labels: Sequence[str] = ()
    event: bool = False
    latency_ms: int = 50


def scene(labels: Sequence[str], seed: int = 0) -> tuple[np.ndarray, list[Face]]:
    """A drawn corridor with one figure per label, masked or not, and the boxes a worker would find."""
    rng = np.random.default_rng(seed)
    h, w = 360, 640
    img = np.zeros((h, w, 3), np.uint8)
    img[:] = np.linspace(70, 25, h, dtype=np.uint8)[:, None, None] * np.array([1.0, 0.95, 0.9])[None, None, :]
    cv2.fillPoly(img, [np.array([[0, h], [w, h], [400, 170], [240, 170]])], (48, 52, 58))
    cv2.rectangle(img, (240, 60), (400, 170), (90, 88, 80), -1)
    faces = []
    for i, label in enumerate(labels):
        cx = int(90 + i * (w - 180) / max(1, len(labels) - 1)) if len(labels) > 1 else w // 2
        r = int(rng.integers(24, 34))
        cy = int(150 + rng.integers(0, 40))
        body = tuple(int(c) for c in rng.integers(60, 200, 3))
        cv2.ellipse(img, (cx, cy + 3 * r), (int(1.8 * r), 2 * r), 0, 180, 360, body, -1)
        cv2.circle(img, (cx, cy), r, (140, 170, 205), -1)
        cv2.circle(img, (cx - r // 3, cy - r // 4), 3, (30, 30, 30), -1)
        cv2.circle(img, (cx + r // 3, cy - r // 4), 3, (30, 30, 30), -1)
        if label == "with_mask":
            cv2.ellipse(img, (cx, cy + r // 3), (int(0.8 * r), int(0.55 * r)), 0, 0, 360, (235, 215, 180), -1)
        else:
            cv2.ellipse(img, (cx, cy + r // 2), (r // 3, r // 8), 0, 0, 360, (70, 70, 150), -1)
        faces.append(Face(box=(cx - r, cy - r, 2 * r, 2 * r), label=label, score=float(rng.uniform(0.8, 0.99))))
    return img, faces


def record(r: redis.Redis, keys: Keys, settings: Settings, shots: Sequence[Shot]) -> list[str]:
    """Send the shots through their cameras' workers groups and commit them with the worker's Committer;
    returns event ids."""
    seqs = {}
    for shot in shots:
        seq = next(_seq)
        entry = r.xadd(keys.frames(shot.cam), encode_frame(Frame(shot.cam, seq, shot.ts, 8, 8, _TINY_JPEG)))
        seqs[shot.cam, entry.decode()] = (shot, seq)  # entry ids are unique within a stream, not across cameras
    source = FrameSource(r, keys, "test-worker", batch_size=len(shots), max_wait_ms=0, idle_block_ms=100)
    for cam in sorted({shot.cam for shot in shots}):
        source.add(cam)
    entries = []
    for _ in shots:  # a batch takes a share of each camera's frames: a few batches read them all
        entries += source.next_batch()
        if len(entries) >= len(shots):
            break
    outcomes, events = [], []
    for entry in entries:
        shot, seq = seqs[entry.cam, entry.id]
        image, faces = scene(shot.labels, seed=seq)
        result = Result(cam=shot.cam, seq=seq, ts=shot.ts, done_ts=shot.ts + shot.latency_ms, faces=faces,
                        worker="test-worker")
        event, snapshot = None, b""
        unmasked = [f for f in faces if f.label == "without_mask"]
        if shot.event and unmasked:
            worst = max(unmasked, key=lambda f: f.score)
            event = Event(shot.cam, seq, shot.ts, worst.score, worst.box, snap=f"{shot.cam}-{seq}")
            snapshot = encode_jpeg(annotate(image, faces), 85)
            events.append(event.snap)
        outcomes.append(Outcome(entry.id, result, event, snapshot))
    assert len(outcomes) == len(shots), "every recorded frame must come back through the group"
    committer = Committer(r, keys, settings)
    for outcome in outcomes:
        # The worker throttles events per camera; tests run with a 1 ms throttle and wait it out here,
        # so every shot that asks for an event gets one.
        if outcome.event:
            cam = outcome.result.cam
            wait_for(lambda cam=cam: not r.exists(keys.throttle(cam)), 5, f"the event throttle of {cam} to lapse",
                     every=0.001)
        committer.commit([outcome])
    return events


@dataclass(frozen=True)
class Seen:
    """One person to record: camera, track number, last seen (epoch ms), voted label, how long they were seen,
    whether their best look was stored, and when the frame that ended their track was captured (default: last seen)."""

    cam: str
    n: int
    last_ts: int
    label: str = "with_mask"
    duration_ms: int = 4_000
    confidence: float = 0.9
    snapshot: bool = False
    ended_ts: int | None = None

    def best_look(self) -> tuple[np.ndarray, Face]:
        """The frame of their best look (a drawn figure, masked or not) and their face in it."""
        image, faces = scene([self.label], seed=self.n)
        return image, faces[0]

    def person(self) -> Person:
        return Person(id=f"{self.cam}-{self.n}", cam=self.cam, first_ts=self.last_ts - self.duration_ms,
                      last_ts=self.last_ts, duration_ms=self.duration_ms, frames=12, looks=3, label=self.label,
                      confidence=self.confidence, best_ts=self.last_ts - self.duration_ms // 2,
                      best_box=self.best_look()[1].box, snap=f"person-{self.cam}-{self.n}" if self.snapshot else "")


def record_people(r: redis.Redis, keys: Keys, people: Sequence[Seen], retention_s: int = 7 * 86_400) -> list[Person]:
    """Write person records, their counters and snapshots as the worker's commit does when their tracks end."""
    out = []
    for seen in people:
        person = seen.person()
        with r.pipeline(transaction=True) as p:
            p.set(keys.person(seen.cam, seen.n), json.dumps(person.to_json()), ex=retention_s)
            p.zadd(keys.people(seen.cam), {str(seen.n): seen.last_ts})
            day, minute = bucket_of(seen.ended_ts if seen.ended_ts is not None else seen.last_ts)
            for counter in ("people", f"people_{seen.label}"):
                p.hincrby(keys.stats(seen.cam, day), stat_field(minute, counter), 1)
                p.hincrby(keys.totals(seen.cam), counter, 1)
            p.expire(keys.stats(seen.cam, day), STATS_TTL_S)
            if person.snap:
                image, face = seen.best_look()
                p.set(keys.snap(person.snap), encode_jpeg(annotate(image, [face]), 85), ex=retention_s)
            p.execute()
        out.append(person)
    return out


def publish_latest(r: redis.Redis, keys: Keys, cam: str, labels: Sequence[str], seed: int = 0) -> None:
    """The newest annotated frame, as the worker publishes it."""
    image, faces = scene(labels, seed)
    r.set(keys.latest(cam), encode_jpeg(annotate(image, faces), 80), ex=600)


def set_status(r: redis.Redis, keys: Keys, cam: str, state: str = "online", *, last_frame_ts: int | None = None,
               sent: int = 0, skipped: int = 0, idle: int = 0, last_motion_ts: int = 0,
               last_error: str | None = None) -> None:
    """The camera's status hash, written by the producer's own publisher (``updated`` is now).

    ``idle`` frames were not sent for want of motion; ``last_motion_ts`` 0 means no motion seen yet."""
    stats = CameraStats(cam, ProducerMetrics())
    stats.set_state(state, "" if state == "online" else "retrying", last_error)
    stats.last_frame_ts = last_frame_ts if last_frame_ts is not None else int(time.time() * 1000)
    stats.sent, stats.skipped, stats.idle, stats.last_motion_ts = sent, skipped, idle, last_motion_ts
    publish(r, keys, "test-producer", [stats])


def add_camera(r: redis.Redis, keys: Keys, cam: str, url: str = "rtsp://admin:hunter2@10.0.0.5/stream1") -> None:
    Registry(r, keys).put(CameraConfig(id=cam, url=url))


@contextmanager
def serve(settings: Settings) -> Iterator[str]:
    """The dashboard under a real uvicorn on a free port, in a thread; yields its base URL."""
    port = free_port()
    server = server_for(create_app(settings), "127.0.0.1", port)
    thread = threading.Thread(target=server.run, name="dashboard", daemon=True)
    thread.start()
    wait_for(lambda: server.started or not thread.is_alive(), 15, "the dashboard to start", every=0.02)
    assert server.started, "the dashboard's server thread ended before it started serving"
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
