"""People, not face-frames, in the worker: a person record per track, counted once, one event per unmasked
person, and nothing stored beyond what the privacy setting allows."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from maskwatch.codec import Result, decode_event
from maskwatch.settings import Settings
from maskwatch.streams import ensure_group
from maskwatch.vision.pipeline import Pipeline
from tests.conftest import DATA, need_shared
from tests.frames import push_frames, push_gated, totals
from tests.support.waiting import wait_for
from tests.test_worker import Running
from worker.commit import Committer, Outcome
from worker.tracks import Person


@pytest.fixture(scope="module")
def pipeline(yunet_dir) -> Pipeline:
    return Pipeline.from_settings(Settings.from_env().override(model_dir=yunet_dir))


def person(cam: str, n: int, label: str, last_ts: int) -> Person:
    record = {"id": f"{cam}-{n}", "cam": cam, "first_ts": last_ts - 4000, "last_ts": last_ts, "duration_ms": 4000,
              "frames": 12, "looks": 3, "label": label, "confidence": 0.9, "best_ts": last_ts - 2000,
              "best_box": [10, 10, 30, 30], "snap": f"person-{cam}-{n}"}
    return Person(cam, n, label, record, b"\xff\xd8jpeg")


def test_a_person_is_counted_once_whichever_worker_commits_the_frame_they_left_in(settings, r, keys):
    """After a kill -9 and a hand-over the next worker re-runs the frame a person left in: still one person."""
    ensure_group(r, keys, "door")
    ids = push_frames(r, keys, "door", [np.zeros((8, 8, 3), "uint8")] * 2)
    r.xreadgroup(keys.group, "a", {keys.frames("door"): ">"})
    committer = Committer(r, keys, settings)
    now = int(time.time() * 1000)
    gone = person("door", 7, "without_mask", now)
    first = Outcome(ids[0], Result(cam="door", seq=0, ts=now, done_ts=now), people=[gone])
    again = Outcome(ids[1], Result(cam="door", seq=1, ts=now, done_ts=now), people=[gone])
    assert committer.commit([first]) == [2], "counted, with the person's violation event"
    assert committer.commit([again]) == [1], "the frame counts, the person does not again"
    t = totals(r, keys, "door")
    assert (t["people"], t["people_without_mask"], t["frames"]) == (1, 1, 2)
    assert json.loads(r.get(keys.person("door", 7)))["label"] == "without_mask"
    assert 0 < r.ttl(keys.person("door", 7)) <= 7 * 86_400
    assert r.zrange(keys.people("door"), 0, -1) == [b"7"]
    events = [decode_event(f) for _, f in r.xrange(keys.events)]
    assert [(e.person, e.duration_ms, e.snap) for e in events] == [("door-7", 4000, "person-door-7")]
    assert r.get(keys.snap("person-door-7")) == b"\xff\xd8jpeg"


def run_walking(settings, r, keys, pipeline, cam: str, seconds: float):
    from bench.scenes.walking import preset_scene

    need_shared(DATA / "facemask12k" / "test")
    scene = preset_scene("busy", seed=4, duration_s=seconds)
    start_ms = int(time.time() * 1000) - int(seconds * 1000) - 20_000
    frames = [(seq, ts, img) for seq, ts, img, _ in scene.frames()]
    # Empty frames after the scene: a live camera's keyframes go on, and the last people's tracks end.
    empty = scene.render(len(frames) - 1, people=False)
    tail = [(len(frames) + i, frames[-1][1] + (i + 1) * 200, empty) for i in range(50)]
    sent, _ = push_gated(r, keys, cam, frames + tail, start_ms)
    with Running(settings, pipeline):
        wait_for(lambda: totals(r, keys, cam).get("frames") == sent, 120, "every frame sent counted")
    return scene


def test_people_counted_with_one_event_per_unmasked_person(settings, r, keys, pipeline):
    scene = run_walking(settings.override(event_flood_guard_s=0), r, keys, pipeline, "lobby", 30)
    t = totals(r, keys, "lobby")
    records = [json.loads(r.get(keys.person("lobby", n.decode()))) for n in r.zrange(keys.people("lobby"), 0, -1)]
    truth = len(scene.people)
    assert 0.7 * truth <= t["people"] <= 1.5 * truth, f"{t['people']} people counted, {truth} walked by"
    assert len(records) == t["people"] == t.get("people_with_mask", 0) + t.get("people_without_mask", 0)
    unmasked = [p for p in records if p["label"] == "without_mask"]
    assert unmasked, "the busy scene has unmasked people"
    events = [decode_event(f) for _, f in r.xrange(keys.events)]
    assert sorted(e.person for e in events) == sorted(p["id"] for p in unmasked), "one event per unmasked person"
    # Privacy by default: snapshots of the unmasked only.
    assert all(bool(p["snap"]) == (p["label"] == "without_mask") for p in records)
    assert all(r.get(keys.snap(p["snap"]))[:2] == b"\xff\xd8" for p in unmasked)


def test_store_none_keeps_no_image_in_redis(settings, r, keys, pipeline):
    run_walking(settings.override(store="none", event_flood_guard_s=0), r, keys, pipeline, "lobby", 30)
    assert totals(r, keys, "lobby").get("people", 0) > 0, "people were still counted"
    assert r.xlen(keys.events) > 0, "violations were still reported"
    for key in r.scan_iter(match=f"{keys.prefix}:*", count=1000):
        if r.type(key) == b"string":
            assert not (r.get(key) or b"").startswith(b"\xff\xd8"), f"{key!r} holds a JPEG with store=none"


def test_blurred_snapshots_keep_the_violator_sharp():
    from maskwatch.codec import Face
    from maskwatch.vision.privacy import Privacy

    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (120, 200, 3), dtype=np.uint8)
    violator, other = (20, 30, 40, 40), (120, 30, 40, 40)
    faces = [Face(violator, "without_mask", 0.9), Face(other, "with_mask", 0.95)]

    def patch(img, box):
        x, y, w, h = box
        return img[y:y + h, x:x + w].astype(float)

    shown = Privacy("violations", blur_others=True, retention_days=7).snapshot(image, faces, violator)
    assert np.array_equal(patch(shown, violator), patch(image, violator)), "the violator stays sharp"
    assert patch(shown, other).std() < 0.3 * patch(image, other).std(), "the other face is blurred"
    live = Privacy("violations", blur_others=True, retention_days=7).live(image, faces)
    assert np.array_equal(patch(live, violator), patch(image, violator))
    assert patch(live, other).std() < 0.3 * patch(image, other).std()
    unblurred = Privacy("all", blur_others=False, retention_days=7).snapshot(image, faces, violator)
    assert np.array_equal(unblurred, image), "blur_others off: the snapshot is the frame"
