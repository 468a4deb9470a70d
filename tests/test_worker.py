"""The worker against a real redis-server: counting, labels, exactly-once, dead letters, events, Redis restarts."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from maskwatch.codec import Result, decode_event, decode_result
from maskwatch.cli.embedded_redis import EmbeddedRedis, free_port
from maskwatch.keys import Keys
from maskwatch.settings import Settings
from maskwatch.vision.pipeline import Pipeline
from tests.conftest import DATA, need_shared
from tests.frames import push_frames, scenes, totals, wait_for
from worker.commit import Committer, Outcome
from maskwatch.streams import ensure_group
from worker.service import Worker


@pytest.fixture(scope="module")
def pipeline(yunet_dir: Path) -> Pipeline:
    return Pipeline.from_settings(Settings.from_env().override(model_dir=yunet_dir))


@pytest.fixture(scope="module")
def known_scenes() -> list:
    return scenes(need_shared(DATA / "facemask12k" / "test"), n=6, seed=3)


class Running:
    """A Worker in a thread of this process, stopped on exit."""

    def __init__(self, s: Settings, pipeline: Pipeline, name: str = "w1"):
        self.r = redis.Redis.from_url(s.redis_url)
        self.worker = Worker(s, self.r, pipeline, name)
        self.thread = threading.Thread(target=self.worker.run, daemon=True)

    def __enter__(self) -> Worker:
        self.thread.start()
        return self.worker

    def __exit__(self, *exc: object) -> None:
        self.worker.stop()
        self.thread.join(15)


def test_counts_and_labels_match_known_faces(settings, r, keys, pipeline, known_scenes):
    push_frames(r, keys, "lobby", [s.image for s in known_scenes])
    with Running(settings, pipeline):
        assert wait_for(lambda: totals(r, keys, "lobby").get("frames") == len(known_scenes))
    t = totals(r, keys, "lobby")
    truth = sum(len(s.faces) for s in known_scenes)
    assert 0.8 * truth <= t["faces"] <= truth, f"found {t['faces']} of {truth} faces"
    assert t["with_mask"] + t["without_mask"] == t["faces"]
    # Every face found is labelled as the crop pasted there was.
    from bench.scenes.compose import match

    results = {res.seq: res for res in (decode_result(f) for _, f in r.xrange(keys.results))}
    pairs = [p for i, s in enumerate(known_scenes)
             for p in match(s.faces, [(f.box, f.label) for f in results[i].faces]) if p[1] is not None]
    right = sum(t.label == got for t, got in pairs)
    assert right >= 0.9 * len(pairs), f"{right} of {len(pairs)} found faces labelled right"
    # Minute statistics hold the same counts as the totals.
    day_keys = r.keys(f"{keys.prefix}:stats:lobby:*")
    assert len(day_keys) == 1 and 0 < r.ttl(day_keys[0]) <= 8 * 86400
    stats = {k.decode(): int(v) for k, v in r.hgetall(day_keys[0]).items()}
    assert sum(v for k, v in stats.items() if k.endswith(":frames")) == len(known_scenes)
    assert sum(v for k, v in stats.items() if k.endswith(":without_mask")) == t["without_mask"]
    # The newest annotated frame and one (throttled) violation event with its snapshot.
    assert r.get(keys.latest("lobby"))[:2] == b"\xff\xd8"
    events = [decode_event(f) for _, f in r.xrange(keys.events)]
    assert len(events) == 1, "violations within the throttle window make one event"
    assert r.get(keys.snap(events[0].snap))[:2] == b"\xff\xd8"


def test_commit_counts_a_frame_once(settings, r, keys):
    ensure_group(r, keys)
    (entry_id,) = push_frames(r, keys, "door", [__import__("numpy").zeros((8, 8, 3), "uint8")])
    r.xreadgroup(keys.group, "a", {keys.frames: ">"})
    committer = Committer(r, keys, settings)
    outcome = Outcome(entry_id, Result(cam="door", seq=0, ts=1_700_000_000_000, done_ts=1_700_000_000_100))
    assert committer.commit([outcome]) == [1]
    assert committer.commit([outcome]) == [0], "a second commit of the same frame must not count"
    assert totals(r, keys, "door") == {"frames": 1}
    assert r.xlen(keys.results) == 1


def test_corrupt_and_malformed_entries_are_dead_lettered(settings, r, keys, pipeline, known_scenes):
    ensure_group(r, keys)
    push_frames(r, keys, "lobby", [known_scenes[0].image])
    r.xadd(keys.frames, {"v": 1, "cam": "lobby", "seq": 1, "ts": 1, "w": 4, "h": 4, "jpg": b"\xff\xd8not a jpeg"})
    r.xadd(keys.frames, {"v": 1, "cam": "lobby", "seq": "x", "ts": 1, "w": 4, "h": 4, "jpg": b"x"})
    r.xadd(keys.frames, {"v": 99, "cam": "lobby", "seq": 3, "ts": 1, "w": 4, "h": 4, "jpg": b"x"})
    push_frames(r, keys, "lobby", [known_scenes[1].image], start_seq=4)
    with Running(settings, pipeline):
        assert wait_for(lambda: r.xlen(keys.dlq) == 3 and totals(r, keys, "lobby").get("frames") == 2)
    errors = [f[b"error"].decode() for _, f in r.xrange(keys.dlq)]
    assert any("'jpg'" in e and "JPEG" in e for e in errors)
    assert any("'seq'" in e and "integer" in e for e in errors)
    assert any("'v'" in e and "version 99" in e for e in errors)
    assert int(r.get(keys.dead_lettered)) == 3
    assert r.xpending(keys.frames, keys.group)["pending"] == 0


def test_frames_failing_too_often_are_dead_lettered(settings, r, keys, pipeline, known_scenes):
    ensure_group(r, keys)
    push_frames(r, keys, "lobby", [known_scenes[0].image])
    s = settings.override(claim_idle_ms=1, max_deliveries=2)
    # Two workers took the frame in turn and died before committing it.
    r.xreadgroup(keys.group, "crashed-1", {keys.frames: ">"})
    r.xautoclaim(keys.frames, keys.group, "crashed-2", 0, count=10)
    with Running(s, pipeline):
        assert wait_for(lambda: r.xlen(keys.dlq) == 1)
    (entry,) = [f for _, f in r.xrange(keys.dlq)]
    assert b"deliveries" in entry[b"error"] and int(entry[b"deliveries"]) == 3
    assert totals(r, keys, "lobby") == {}


def test_violation_events_are_throttled_per_camera(settings, r, keys, pipeline, known_scenes):
    push_frames(r, keys, "a", [s.image for s in known_scenes[:3]])
    push_frames(r, keys, "b", [s.image for s in known_scenes[3:]])
    with Running(settings, pipeline), Running(settings, pipeline, "w2"):
        assert wait_for(lambda: r.xlen(keys.results) == len(known_scenes))
    cams = sorted(decode_event(f).cam for _, f in r.xrange(keys.events))
    assert cams == ["a", "b"], "one event per camera within the window, even across two workers"


@pytest.fixture
def restartable_redis(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    server = EmbeddedRedis(tmp_path / "redis", port=free_port(), persist=False).start()
    yield server
    server.stop()


def test_worker_survives_a_redis_restart(restartable_redis, pipeline, known_scenes, tmp_path):
    s = Settings.from_env().override(redis_url=restartable_redis.url, prefix="rr", worker_metrics_port=0)
    keys, r = Keys("rr"), redis.Redis.from_url(restartable_redis.url)
    push_frames(r, keys, "lobby", [known_scenes[0].image])
    with Running(s, pipeline):
        assert wait_for(lambda: totals(r, keys, "lobby").get("frames") == 1)
        restartable_redis.stop()
        restartable_redis.start()  # same port, empty: the group is gone too
        push_frames(r, keys, "lobby", [known_scenes[1].image], start_seq=1)
        assert wait_for(lambda: totals(r, keys, "lobby").get("frames") == 1, timeout=30), "frame after the restart"
    assert json.loads(next(f for _, f in r.xrange(keys.results))[b"faces"])
