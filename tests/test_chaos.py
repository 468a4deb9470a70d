"""Chaos: workers killed (kill -9) ten times mid-stream, some in a crash loop, while frames keep coming.

Issue item 8: a worker killed again and again left good frames with three deliveries, and they
were dead-lettered (32 of 600). The delivery count cannot tell "this frame kills workers" from
"the worker was killed"; a frame read again is now run alone first (docs/architecture.md,
"Poison frames"). Here two worker processes hold two cameras fed at 4 fps; the test kills a worker
while it holds frames it has not committed, or right after its restart (a crash loop), ten times,
restarting each at once. Every frame must be counted exactly once and none dead-lettered.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter

import pytest

from maskwatch.codec import decode_result
from tests.conftest import DATA, need_shared
from tests.frames import push_frames, register, scenes, totals
from tests.support.waiting import wait_for
from tests.support.workers import WorkerProcess, consumers, pending_of, start_worker

pytestmark = pytest.mark.slow
CAMS = ["a", "b"]
FPS = 4.0  # per camera, from the first kill to the last and a second more
KILLS = 10
SETTINGS = {"lease_ttl_ms": 2000, "batch_size": 8, "max_wait_ms": 50, "threads": 1, "frame_max_age_s": 3600,
            "consumer_idle_ms": 5000}


def test_kill_9_ten_times_mid_stream_counts_every_frame_once(settings, r, keys, tmp_path):
    # Small frames: the test is about deliveries and counts, and must run on two busy cores.
    images = [s.image for s in scenes(need_shared(DATA / "facemask12k" / "test"), n=6, seed=21, faces=2,
                                      face_px=(32, 40), size=(320, 180))]
    logs = tmp_path / "logs"
    logs.mkdir()
    for cam in CAMS:
        register(r, keys, cam)
    rng = random.Random(7)
    started: list[WorkerProcess] = []

    def start() -> WorkerProcess:
        started.append(start_worker(settings, f"w{len(started) + 1}", logs, **SETTINGS))
        return started[-1]

    sent = 0  # frames sent per camera
    feeding = threading.Event()
    feeding.set()

    def feed() -> None:
        nonlocal sent
        while feeding.is_set() or sent < FPS:
            for cam in CAMS:
                push_frames(r, keys, cam, [images[sent % len(images)]], start_seq=sent)
            sent += 1
            time.sleep(1 / FPS)  # a camera's pace, not a wait for a condition

    slots = [start(), start()]
    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    with_frames_in_hand = 0
    try:
        for kill in range(KILLS):
            if kill % 2 == 0:  # mid-stream: a worker holding frames it read and has not committed
                slot = rng.randrange(len(slots))
                victim = slots[slot]
                wait_for(lambda v=victim: any(pending_of(r, keys, cam).get(v.name) for cam in CAMS), 120,
                         lambda v=victim: f"worker {v.name} holding uncommitted frames" + v.tail(), every=0.005)
                with_frames_in_hand += 1
            else:  # a crash loop: the worker just restarted dies again, before or while it takes its cameras
                victim = slots[slot]
                time.sleep(rng.uniform(0.1, 1.5))  # a random moment of its start, not a wait for a condition
            victim.kill()
            slots[slot] = start()
        feeding.clear()
        feeder.join(30)
        assert not feeder.is_alive()
        wait_for(lambda: all(totals(r, keys, cam).get("frames") == sent for cam in CAMS), 180,
                 lambda: f"all frames counted, got {[totals(r, keys, cam) for cam in CAMS]}"
                 + "".join(w.tail() for w in slots))
        # The consumers of the killed workers go once they are idle and hold nothing.
        live = {w.name for w in slots}
        wait_for(lambda: all(consumers(r, keys, cam) <= live for cam in CAMS), 60,
                 lambda: f"only live workers in the groups, got {[consumers(r, keys, cam) for cam in CAMS]}")
    finally:
        feeding.clear()
        for w in started:
            w.stop()
    assert with_frames_in_hand == KILLS // 2 and sum(not w.alive for w in started) == len(started)
    assert r.xlen(keys.dlq) == 0, [f[b"error"] for _, f in r.xrange(keys.dlq)]
    results = [decode_result(f) for _, f in r.xrange(keys.results)]
    for cam in CAMS:
        seqs = Counter(res.seq for res in results if res.cam == cam)
        assert sorted(seqs) == list(range(sent)), f"{cam}: a result for every frame"
        assert max(seqs.values()) == 1, f"{cam}: frames counted twice: {[s for s, n in seqs.items() if n > 1]}"
        assert r.xpending(keys.frames(cam), keys.group)["pending"] == 0
    killed = [w for w in started if w.proc.returncode == -9]
    assert len(killed) == KILLS, "ten workers were killed"
