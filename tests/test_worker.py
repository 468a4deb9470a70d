"""The worker against a real redis-server: counting, labels, exactly-once, dead letters, events, Redis restarts."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from maskwatch.cli.embedded_redis import EmbeddedRedis, free_port
from maskwatch.codec import Result, decode_event, decode_result
from maskwatch.keys import Keys
from maskwatch.settings import Settings
from maskwatch.streams import ensure_group
from maskwatch.vision.pipeline import Pipeline
from tests.conftest import DATA, need_shared
from tests.frames import push_frames, push_gated, scenes, totals
from tests.support.waiting import wait_for
from worker.commit import Committer, Outcome
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
    """Every face of every frame classified (tracking off): these stills are unrelated scenes, not a video."""
    push_frames(r, keys, "lobby", [s.image for s in known_scenes])
    with Running(settings.override(tracking=False), pipeline):
        wait_for(lambda: totals(r, keys, "lobby").get("frames") == len(known_scenes), 30, "every frame counted")
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
    day_keys = r.keys(keys.stats("lobby", "*"))
    assert len(day_keys) == 1 and 0 < r.ttl(day_keys[0]) <= 8 * 86400
    stats = {k.decode(): int(v) for k, v in r.hgetall(day_keys[0]).items()}
    assert sum(v for k, v in stats.items() if k.endswith(":frames")) == len(known_scenes)
    assert sum(v for k, v in stats.items() if k.endswith(":without_mask")) == t["without_mask"]
    # The newest annotated frame and one (throttled) violation event with its snapshot.
    assert r.get(keys.latest("lobby"))[:2] == b"\xff\xd8"
    events = [decode_event(f) for _, f in r.xrange(keys.events)]
    assert len(events) == 1, "violations within the throttle window make one event"
    assert r.get(keys.snap(events[0].snap))[:2] == b"\xff\xd8"


def test_a_person_standing_still_keeps_one_track_and_a_right_label(settings, r, keys, pipeline):
    """A person walks in and stands 25 s: motion gating sends only keyframes meanwhile, the tracker keeps them."""
    from bench.scenes.walking import preset_scene

    need_shared(DATA / "facemask12k" / "test")
    scene = preset_scene("still_person", seed=2)
    (person,) = scene.people
    start_ms = int(time.time() * 1000) - 60_000
    sent, idle = push_gated(r, keys, "hall", ((seq, ts, img) for seq, ts, img, _ in scene.frames()), start_ms)
    assert idle > sent / 2, "standing still, most frames are idle"
    with Running(settings, pipeline):
        wait_for(lambda: totals(r, keys, "hall").get("frames") == sent, 60, "every frame sent counted")
    results = [decode_result(f) for _, f in r.xrange(keys.results)]
    still = range(person.still_frames[0], person.still_frames[1] + 1)
    tracks = [f.track for res in results if res.seq in still for f in res.faces]
    assert len(tracks) >= 8, f"the standing person found on only {len(tracks)} keyframes"
    (track, n), *others = Counter(tracks).most_common()
    assert n >= 0.9 * len(tracks), f"the standing person split into tracks {Counter(tracks)}"
    labels = {f.label for res in results for f in res.faces if f.track == track}
    assert labels == {person.label}, f"voted {labels}, truth {person.label}"
    assert r.get(keys.tracks("hall")), "the tracker state is checkpointed with the commits"


def test_tracks_continue_on_the_next_worker(settings, r, keys, pipeline):
    """The camera moves to another worker mid-scene: it resumes from the committed tracker state, same ids."""
    from bench.scenes.walking import preset_scene

    need_shared(DATA / "facemask12k" / "test")
    scene = preset_scene("still_person", seed=2)
    (person,) = scene.people
    first, last = person.still_frames
    half = (first + last) // 2
    frames = [(seq, ts, img) for seq, ts, img, _ in scene.frames()]
    start_ms = int(time.time() * 1000) - 60_000
    # Track ids count on from a checkpoint: start it at 50, so a worker that ignored it would say hall-1.
    r.set(keys.tracks("hall"), json.dumps({"v": 1, "next_id": 50, "ts": None, "tracks": []}))
    sent, _ = push_gated(r, keys, "hall", frames[:half], start_ms)
    with Running(settings, pipeline, "before"):
        wait_for(lambda: totals(r, keys, "hall").get("frames") == sent, 60, "the first half counted")
    state = json.loads(r.get(keys.tracks("hall")))
    assert [t["id"] for t in state["tracks"]] == [50] and state["next_id"] == 51, "the commit checkpoints the tracker"
    sent2, _ = push_gated(r, keys, "hall", frames[half:], start_ms)  # a new producer: its gate starts afresh
    with Running(settings, pipeline, "after"):
        wait_for(lambda: totals(r, keys, "hall").get("frames") == sent + sent2, 60, "the second half counted")
    results = [decode_result(f) for _, f in r.xrange(keys.results)]
    by_worker = {w: {f.track for res in results if res.worker == w and first <= res.seq <= last for f in res.faces}
                 for w in ("before", "after")}
    assert by_worker["before"] and by_worker["after"], by_worker
    assert "hall-50" in by_worker["before"], f"the first worker did not resume the checkpoint: {by_worker}"
    assert "hall-50" in by_worker["after"], f"the standing person's track did not carry over: {by_worker}"


def test_commit_counts_a_frame_once(settings, r, keys):
    ensure_group(r, keys, "door")
    (entry_id,) = push_frames(r, keys, "door", [__import__("numpy").zeros((8, 8, 3), "uint8")])
    r.xreadgroup(keys.group, "a", {keys.frames("door"): ">"})
    committer = Committer(r, keys, settings)
    outcome = Outcome(entry_id, Result(cam="door", seq=0, ts=1_700_000_000_000, done_ts=1_700_000_000_100))
    assert committer.commit([outcome]) == [1]
    assert committer.commit([outcome]) == [0], "a second commit of the same frame must not count"
    assert totals(r, keys, "door") == {"frames": 1}
    assert r.xlen(keys.results) == 1


def test_corrupt_and_malformed_entries_are_dead_lettered(settings, r, keys, pipeline, known_scenes):
    push_frames(r, keys, "lobby", [known_scenes[0].image])
    stream = keys.frames("lobby")
    r.xadd(stream, {"v": 1, "cam": "lobby", "seq": 1, "ts": 1, "w": 4, "h": 4, "jpg": b"\xff\xd8not a jpeg"})
    r.xadd(stream, {"v": 1, "cam": "lobby", "seq": "x", "ts": 1, "w": 4, "h": 4, "jpg": b"x"})
    r.xadd(stream, {"v": 99, "cam": "lobby", "seq": 3, "ts": 1, "w": 4, "h": 4, "jpg": b"x"})
    push_frames(r, keys, "lobby", [known_scenes[1].image], start_seq=4)
    with Running(settings, pipeline):
        wait_for(lambda: r.xlen(keys.dlq) == 3 and totals(r, keys, "lobby").get("frames") == 2, 30,
                 "three entries dead-lettered and the two good frames counted")
    errors = [f[b"error"].decode() for _, f in r.xrange(keys.dlq)]
    assert any("'jpg'" in e and "JPEG" in e for e in errors)
    assert any("'seq'" in e and "integer" in e for e in errors)
    assert any("'v'" in e and "version 99" in e for e in errors)
    assert int(r.get(keys.dead_lettered)) == 3
    assert r.xpending(stream, keys.group)["pending"] == 0


def test_frames_of_crashed_workers_are_run_alone_and_counted(settings, r, keys, pipeline, known_scenes):
    """A frame delivered to workers that died is not to blame for it: run alone, it is counted, not dead-lettered
    (a frame that kills workers on its own: tests/test_poison_frames.py)."""
    ensure_group(r, keys, "lobby")
    push_frames(r, keys, "lobby", [known_scenes[0].image])
    s = settings.override(max_deliveries=2)
    # Two workers took the frame in turn and died before committing it.
    r.xreadgroup(keys.group, "crashed-1", {keys.frames("lobby"): ">"})
    r.xautoclaim(keys.frames("lobby"), keys.group, "crashed-2", 0, count=10)
    push_frames(r, keys, "lobby", [known_scenes[1].image], start_seq=1)
    with Running(s, pipeline) as worker:
        wait_for(lambda: totals(r, keys, "lobby").get("frames") == 2, 30, "both frames counted")
    assert r.xlen(keys.dlq) == 0
    assert sorted(decode_result(f).seq for _, f in r.xrange(keys.results)) == [0, 1]
    isolated = worker.metrics.registry.get_sample_value("maskwatch_worker_isolated_frames_total")
    assert isolated == 1, "the redelivered frame ran alone, the fresh one in a batch"
    assert not r.exists(keys.suspects("lobby")), "a frame run alone and committed leaves no attempt behind"


def test_violation_events_are_throttled_per_camera(settings, r, keys, pipeline, known_scenes):
    """Without tracking a violation is a frame: at most one event per camera per throttle window."""
    push_frames(r, keys, "a", [s.image for s in known_scenes[:3]])
    push_frames(r, keys, "b", [s.image for s in known_scenes[3:]])
    s = settings.override(tracking=False)
    with Running(s, pipeline), Running(s, pipeline, "w2"):
        wait_for(lambda: r.xlen(keys.results) == len(known_scenes), 30, "a result for every frame")
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
        wait_for(lambda: totals(r, keys, "lobby").get("frames") == 1, 30, "the frame before the restart counted")
        restartable_redis.stop()
        restartable_redis.start()  # same port, empty: the group is gone too
        push_frames(r, keys, "lobby", [known_scenes[1].image], start_seq=1)
        wait_for(lambda: totals(r, keys, "lobby").get("frames") == 1, 30, "the frame after the restart counted")
    assert json.loads(next(f for _, f in r.xrange(keys.results))[b"faces"])
