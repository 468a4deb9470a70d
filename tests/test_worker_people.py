"""People, not face-frames, in the worker: a person record per track, counted once, one event and one signed
webhook per unmasked person, and nothing stored beyond what the privacy setting allows."""

from __future__ import annotations

import collections
import json
import time

import cv2
import httpx
import numpy as np
import pytest
import redis

from bench.scenes.walking import WalkingScene
from maskwatch import jobstore
from maskwatch.codec import Result, decode_event
from maskwatch.keys import NOTIFIER_GROUP, Keys
from maskwatch.settings import Settings
from maskwatch.signing import verify_signature
from maskwatch.streams import ensure_group
from maskwatch.vision.pipeline import Pipeline
from tests.conftest import DATA, need_shared
from tests.frames import push_frames, push_gated, totals
from tests.support.dashboard import serve
from tests.support.waiting import wait_for
from tests.support.webhooks import receiver
from tests.test_jobs_queues import jobs_process
from tests.test_worker import Running
from worker.commit import Committer, Outcome
from worker.tracks import Person

WEBHOOK_SECRET = "site-secret"


@pytest.fixture(scope="module")
def pipeline(yunet_dir) -> Pipeline:
    return Pipeline.from_settings(Settings.from_env().override(model_dir=yunet_dir))


def person(cam: str, n: int, label: str, last_ts: int, update: bool = False, snapshot: bytes = b"\xff\xd8jpeg",
           looks: int = 3) -> Person:
    record = {"id": f"{cam}-{n}", "cam": cam, "first_ts": last_ts - 4000, "last_ts": last_ts, "duration_ms": 4000,
              "frames": 12, "looks": looks, "label": label, "confidence": 0.9, "best_ts": last_ts - 2000,
              "best_box": [10, 10, 30, 30], "snap": f"person-{cam}-{n}"}
    return Person(cam, n, label, record, snapshot, update)


def held_frames(r: redis.Redis, keys: Keys, cam: str, n: int) -> list[str]:
    """``n`` frames of the camera read by a worker (consumer "a") and not committed yet: their entry ids."""
    ensure_group(r, keys, cam)
    ids = push_frames(r, keys, cam, [np.zeros((8, 8, 3), "uint8")] * n)
    r.xreadgroup(keys.group, "a", {keys.frames(cam): ">"})
    return ids


def test_a_person_is_counted_once_whichever_worker_commits_the_frame_they_left_in(settings, r, keys):
    """After a kill -9 and a hand-over the next worker re-runs the frame a person left in: still one person."""
    ids = held_frames(r, keys, "door", 2)
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


def test_a_person_counted_in_view_is_completed_when_they_leave_not_counted_again(settings, r, keys):
    """Counted while standing in view (with their event); leaving rewrites the record and snapshot, no more."""
    ids = held_frames(r, keys, "door", 4)
    committer = Committer(r, keys, settings)
    now = int(time.time() * 1000)
    standing = person("door", 4, "without_mask", now - 30_000, looks=2)
    left = person("door", 4, "without_mask", now, update=True, snapshot=b"\xff\xd8better", looks=80)
    outcomes = [Outcome(entry, Result(cam="door", seq=n, ts=now, done_ts=now), people=[p])
                for n, (entry, p) in enumerate(zip(ids, [standing, left, left]))]  # the last: a re-run after a kill
    assert committer.commit(outcomes) == [2, 1, 1], "counted with an event in view; leaving counts nothing"
    t = totals(r, keys, "door")
    assert (t["people"], t["people_without_mask"], t["frames"]) == (1, 1, 3)
    assert json.loads(r.get(keys.person("door", 4)))["looks"] == 80, "the record completed"
    assert r.zscore(keys.people("door"), "4") == now, "listed by when they were last seen"
    assert r.get(keys.snap("person-door-4")) == b"\xff\xd8better", "their best look, also after they were counted"
    # Completed by a worker with no picture of them (the camera moved): the stored one stays, as long as the record.
    r.expire(keys.snap("person-door-4"), 100)
    moved = person("door", 4, "without_mask", now + 1000, update=True, snapshot=b"", looks=90)
    assert committer.commit([Outcome(ids[3], Result(cam="door", seq=3, ts=now, done_ts=now), people=[moved])]) == [1]
    assert r.get(keys.snap("person-door-4")) == b"\xff\xd8better"
    assert r.ttl(keys.snap("person-door-4")) > 7 * 86_400 - 60
    assert [decode_event(f).person for _, f in r.xrange(keys.events)] == ["door-4"]


def test_someone_standing_long_is_counted_and_reported_before_they_leave(settings, r, keys, pipeline):
    from bench.scenes.walking import face_pool, walking_scene

    pool = face_pool([need_shared(DATA / "facemask12k" / "test")], per_class=8, faces_only=True)
    scene = walking_scene(seed=2, duration_s=40.0, people_per_min=0, standers=1, unmasked_share=1.0,
                          still_s=(25.0, 30.0), pool=pool)
    [stander] = scene.people
    s = settings.override(event_flood_guard_s=0, person_decide_s=10)
    run_walking(s, r, keys, pipeline, "lobby", scene)
    records = [json.loads(r.get(keys.person("lobby", n.decode()))) for n in r.zrange(keys.people("lobby"), 0, -1)]
    assert [p["label"] for p in records] == ["without_mask"]
    assert totals(r, keys, "lobby")["people"] == 1
    [event] = [decode_event(f) for _, f in r.xrange(keys.events)]
    assert event.person == records[0]["id"]
    assert event.seq < stander.leave_frame, "reported while still in view"
    assert event.duration_ms < records[0]["duration_ms"] - 5000, "their record was completed when they left"
    assert 10_000 <= event.duration_ms < 15_000, "counted once 10 s in view"


def test_the_flood_guard_runs_on_the_cameras_time(settings, r, keys):
    """A worker catching up a backlog commits seconds of a camera at once: people who left 5 s apart still get an
    event each; one who left within the guard (2 s, the default) of the last event does not."""
    ids = held_frames(r, keys, "door", 3)
    committer = Committer(r, keys, settings.override(event_flood_guard_s=2.0))
    t0 = int(time.time() * 1000) - 60_000
    left = [(t0, 1), (t0 + 1_000, 2), (t0 + 5_000, 3)]  # capture time of the frame each left in, track number
    outcomes = [Outcome(entry, Result(cam="door", seq=n, ts=ts, done_ts=ts),
                        people=[person("door", n, "without_mask", ts)]) for entry, (ts, n) in zip(ids, left)]
    assert committer.commit(outcomes) == [2, 1, 2], "committed together, as after a backlog"
    assert [decode_event(f).person for _, f in r.xrange(keys.events)] == ["door-1", "door-3"]
    assert totals(r, keys, "door")["people_without_mask"] == 3, "a person held back by the guard is still counted"


def run_walking(settings, r, keys, pipeline, cam: str, scene: float | WalkingScene):
    """A scene (or that many seconds of a busy one) through a worker in this process, then empty frames."""
    from bench.scenes.walking import preset_scene

    need_shared(DATA / "facemask12k" / "test")
    if not isinstance(scene, WalkingScene):
        scene = preset_scene("busy", seed=4, duration_s=scene)
    start_ms = int(time.time() * 1000) - int(scene.duration_s * 1000) - 20_000
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
    assert all(p["frames"] >= settings.person_min_frames for p in records), "a glimpse is not a person"
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


def notifier_caught_up(r: redis.Redis, keys: Keys, prefix: str) -> bool:
    """Every violation event read and acknowledged by the jobs runner, and every delivery job it queued run."""
    [group] = [g for g in r.xinfo_groups(keys.events) if g["name"] == NOTIFIER_GROUP.encode()]
    notify = jobstore.queue(r, prefix, jobstore.NOTIFY)
    return (group["lag"] == 0 and group["pending"] == 0 and notify.count == 0
            and notify.started_job_registry.count == 0 and notify.scheduled_job_registry.count == 0)


def test_one_signed_webhook_per_unmasked_person(settings, r, keys, pipeline, tmp_path):
    """A walking scene through a real worker and a real `maskwatch jobs`: the receiver gets one signed webhook for
    each unmasked person the worker recorded, none for the masked, each with the person's figures and a snapshot
    URL the dashboard serves."""
    with receiver() as rec, serve(settings) as dashboard:
        # The flood guard (docs/architecture.md, "People") holds back the event of a person who left less
        # than event_flood_guard_s (2 s) after the camera's previous one, as documented; in this scene
        # some unmasked people leave less than 2 s apart, so it is off here for an exact count (the guard
        # itself: test_the_flood_guard_runs_on_the_cameras_time).
        s = settings.override(webhook_url=rec.url, webhook_secret=WEBHOOK_SECRET, dashboard_url=dashboard,
                              event_flood_guard_s=0)
        with jobs_process(s, tmp_path / "jobs.log", "--queue", "webhooks"):
            # The runner starts the notifier group at the stream's end: events from then on are sent.
            wait_for(lambda: r.exists(keys.events) and r.xinfo_groups(keys.events), 30, "the jobs runner's group")
            run_walking(s, r, keys, pipeline, "lobby", 30)
            wait_for(lambda: notifier_caught_up(r, keys, s.prefix), 60, lambda: (
                f"every event sent ({len(rec.arrivals)} webhooks so far; runner log tail: "
                f"{(tmp_path / 'jobs.log').read_text()[-2000:]})"))
        records = {p["id"]: p for p in (json.loads(r.get(keys.person("lobby", n.decode())))
                                        for n in r.zrange(keys.people("lobby"), 0, -1))}
        unmasked = {i for i, p in records.items() if p["label"] == "without_mask"}
        assert unmasked and len(unmasked) < len(records), "the busy scene has masked and unmasked people"
        hooks = [a.body for a in rec.arrivals]
        assert all(a.answered for a in rec.arrivals)
        assert all(verify_signature(a.raw, a.signature, WEBHOOK_SECRET) for a in rec.arrivals), "every one signed"
        ids = collections.Counter(h["delivery_id"] for h in hooks)
        assert max(ids.values()) == 1 and {h["attempt"] for h in hooks} == {1}, "each delivery once"
        people = collections.Counter(h.get("person") for h in hooks)
        assert people == collections.Counter(unmasked), "exactly one webhook per unmasked person, none for the masked"
        for hook in hooks:
            person = records[hook["person"]]
            assert (hook["type"], hook["camera"], hook["event_id"]) == ("violation", "lobby", person["id"])
            assert hook["seen_s"] == round(person["duration_ms"] / 1000, 1) > 0
            assert hook["confidence"] == hook["probability"] == person["confidence"] > 0.5
            assert (hook["ts"], hook["box"]) == (person["best_ts"], person["best_box"]), "their best look"
            assert hook["snapshot_url"] == f"{dashboard}/api/events/{person['snap']}/snapshot.jpg"
            reply = httpx.get(hook["snapshot_url"], timeout=10)
            assert reply.status_code == 200 and reply.headers["content-type"] == "image/jpeg"
            assert reply.content == r.get(keys.snap(person["snap"]))
            image = cv2.imdecode(np.frombuffer(reply.content, np.uint8), cv2.IMREAD_COLOR)
            assert image is not None and image.shape[:2] == (360, 640), "a JPEG of the camera's frame"


def test_unsure_sightings_keep_a_track_and_are_not_classified(settings, r, keys, pipeline):
    """A masked face YuNet is unsure of in most frames stays one person; only its sure sightings are classified."""
    from maskwatch.codec import Frame
    from maskwatch.vision.detect import Detection
    from maskwatch.vision.privacy import Privacy
    from worker.tracks import CameraTracks

    tracks = CameraTracks(r, keys, pipeline, settings)
    image = np.full((360, 640, 3), 120, np.uint8)
    privacy = {"door": Privacy.for_camera(settings, None)}
    frames, crops = [], 0
    for k in range(6):
        box = (100 + 30 * k, 150, 40, 40)
        det = Detection(box, 0.9) if k in (0, 5) else Detection(box, 0.25, unsure=True)
        frame = Frame(cam="door", seq=k, ts=1_000_000 + 200 * k, w=640, h=360, jpg=b"")
        out, classified = tracks.label([(frame, image, [det])], privacy)
        frames.append(out[0])
        crops += classified
    assert [len(t.faces) for t in frames] == [1] * 6
    assert len({f.track for t in frames for f in t.faces}) == 1
    track = tracks.tracker("door").tracks[1]
    assert track.frames == 6 and crops == 2
    assert {look.ts_ms for look in track.looks} == {1_000_000, 1_001_000}, "only the sure sightings were classified"
