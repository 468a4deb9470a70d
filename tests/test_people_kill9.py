"""A person counted once through a worker's kill -9 and the hand-over of its camera, with real processes.

Two ``maskwatch worker`` processes hold one camera each; both cameras get the same walking-people
frames. Mid-scene, while people are in view, the worker holding ``door`` is killed with SIGKILL: the
frames it read and had not committed, and the tracks it held in memory, go with it. The other worker
takes the camera over within the lease TTL and carries on from the tracker state committed with the
last counted frame (docs/architecture.md, "Keyed by camera"). ``calm``, never handed over, is the
reference: ``door`` must record the same people (track, label, first and last seen, frames), one violation
event each for the unmasked, and a person whose track began under the killed worker and ended under its
successor once.
"""

from __future__ import annotations

import json
import time
from collections import Counter

import pytest
import redis

from maskwatch.codec import decode_event, decode_result
from maskwatch.keys import Keys
from tests.conftest import DATA, need_shared
from tests.frames import push_gated, totals
from tests.support.waiting import wait_for
from tests.support.workers import holder, start_worker

pytestmark = pytest.mark.slow
CAMS = ("calm", "door")
WORKER = {"lease_ttl_ms": 2000, "batch_size": 8, "max_wait_ms": 50, "threads": 1, "frame_max_age_s": 3600,
          "event_flood_guard_s": 0}


def people(r: redis.Redis, keys: Keys, cam: str) -> list[dict]:
    return [json.loads(r.get(keys.person(cam, n.decode()))) for n in r.zrange(keys.people(cam), 0, -1)]


def seen(records: list[dict]) -> list[tuple]:
    """Who was recorded: track number (the id less its camera), label, first and last seen, frames."""
    return sorted((p["id"].split("-", 1)[1], p["label"], p["first_ts"], p["last_ts"], p["frames"]) for p in records)


def newest(r: redis.Redis, keys: Keys, cam: str):
    """The camera's most recently committed result, or None."""
    for _, fields in r.xrevrange(keys.results, count=50):
        res = decode_result(fields)
        if res.cam == cam:
            return res
    return None


def test_a_person_is_counted_once_through_a_kill_9_and_a_hand_over(settings, r, keys, tmp_path):
    from bench.scenes.walking import preset_scene

    need_shared(DATA / "facemask12k" / "test")
    scene = preset_scene("busy", seed=4, duration_s=30.0)
    frames = [(seq, ts, img) for seq, ts, img, _ in scene.frames()]
    empty = scene.render(len(frames) - 1, people=False)  # a live camera's keyframes go on: the last tracks end
    frames += [(len(frames) + i, frames[-1][1] + (i + 1) * 200, empty) for i in range(50)]
    start_ms = int(time.time() * 1000) - 120_000
    sent = {cam: push_gated(r, keys, cam, frames, start_ms)[0] for cam in CAMS}
    logs = tmp_path / "logs"
    logs.mkdir()
    workers = [start_worker(settings, name, logs, **WORKER) for name in ("w1", "w2")]
    try:
        wait_for(lambda: {holder(r, keys, cam) for cam in CAMS} == {"w1", "w2"}, 60,
                 lambda: f"one camera each, got {[holder(r, keys, cam) for cam in CAMS]}"
                 + "".join(w.tail() for w in workers))
        victim = next(w for w in workers if w.name == holder(r, keys, "door"))
        survivor = next(w for w in workers if w is not victim)

        def in_view() -> bool:  # mid-scene, with a face on the camera's newest counted frame
            res = newest(r, keys, "door")
            return res is not None and res.seq >= 40 and bool(res.faces)

        wait_for(in_view, 120, lambda: "door's worker counting a frame with a face" + victim.tail())
        victim.kill()
        wait_for(lambda: holder(r, keys, "door") == survivor.name, 30,
                 lambda: f"door moved to {survivor.name} within the lease TTL" + survivor.tail())
        wait_for(lambda: all(totals(r, keys, cam).get("frames") == sent[cam] for cam in CAMS), 180,
                 lambda: f"every frame counted: {[totals(r, keys, cam) for cam in CAMS]} of {sent}" + survivor.tail())
    finally:
        for w in workers:
            w.stop()
    results = [decode_result(f) for _, f in r.xrange(keys.results)]
    by_worker = Counter(res.worker for res in results if res.cam == "door")
    assert by_worker[victim.name] > 0 and by_worker[survivor.name] > 0, by_worker
    killed_at = max(res.ts for res in results if res.cam == "door" and res.worker == victim.name)

    calm, door = people(r, keys, "calm"), people(r, keys, "door")
    assert calm, "the reference camera counted people"
    for cam, records in (("calm", calm), ("door", door)):
        t = totals(r, keys, cam)
        assert t["people"] == len(records) == t.get("people_with_mask", 0) + t.get("people_without_mask", 0)
    assert seen(door) == seen(calm), "the hand-over neither lost, split, merged nor relabelled anyone"
    assert any(p["first_ts"] <= killed_at < p["last_ts"] for p in door), \
        f"a person seen before the kill (at {killed_at}) and after it"
    events = Counter(e.person for e in (decode_event(f) for _, f in r.xrange(keys.events)) if e.cam == "door")
    unmasked = {p["id"] for p in door if p["label"] == "without_mask"}
    assert set(events) == unmasked and set(events.values()) == {1}, "one violation event per unmasked person"
