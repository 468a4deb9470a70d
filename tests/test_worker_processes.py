"""Workers as real processes: cameras split by leases, moved on kill -9 and counted once, rebalanced on a join."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import Counter

import pytest

from maskwatch.cli.up import child_env
from maskwatch.codec import decode_result
from tests.conftest import DATA, need_shared
from tests.frames import push_frames, register, scenes, totals
from tests.support.waiting import wait_for

pytestmark = pytest.mark.slow
CAMS = ["a", "b", "c", "d"]
LEASE_TTL_MS = 2000


def start_worker(settings, name: str) -> subprocess.Popen:
    env = child_env(settings.override(lease_ttl_ms=LEASE_TTL_MS, batch_size=4, max_wait_ms=20, threads=1))
    return subprocess.Popen([sys.executable, "-m", "maskwatch", "worker", "--name", name], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def holders(r, keys) -> dict[str, str | None]:
    return {cam: (v.decode() if (v := r.get(keys.lease(cam, "worker"))) else None) for cam in CAMS}


def exited(proc: subprocess.Popen) -> str:
    return f"; it exited: {proc.stderr.read().decode()[-2000:]}" if proc.poll() is not None else ""


def test_kill_9_moves_the_cameras_and_counts_every_frame_once(settings, r, keys):
    images = [s.image for s in scenes(need_shared(DATA / "facemask12k" / "test"), n=8, seed=5, faces=2)]
    n = 24
    for cam in CAMS:
        push_frames(r, keys, cam, [images[i % len(images)] for i in range(n)])
    victim, survivor = start_worker(settings, "victim"), start_worker(settings, "survivor")
    try:
        wait_for(lambda: Counter(holders(r, keys).values()) == {"victim": 2, "survivor": 2}, 60,
                 lambda: f"a fair share each, got {holders(r, keys)}" + exited(victim) + exited(survivor))
        victims = [cam for cam, w in holders(r, keys).items() if w == "victim"]
        wait_for(lambda: any(f[b"worker"] == b"victim" for cam in victims for _, f in r.xrange(keys.results)), 60,
                 lambda: "a result from the victim" + exited(victim))
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait()
        wait_for(lambda: all(w == "survivor" for w in holders(r, keys).values()), 30,
                 lambda: f"the victim's cameras moved within the lease TTL, got {holders(r, keys)}")
        wait_for(lambda: all(totals(r, keys, cam).get("frames") == n for cam in CAMS), 120,
                 lambda: f"all frames counted, got {[totals(r, keys, cam) for cam in CAMS]}" + exited(survivor))
    finally:
        survivor.terminate()
        survivor.wait(20)
    results = [decode_result(f) for _, f in r.xrange(keys.results)]
    for cam in CAMS:
        seqs = Counter(res.seq for res in results if res.cam == cam)
        assert sorted(seqs) == list(range(n)) and max(seqs.values()) == 1, f"{cam}: each frame has exactly one result"
        assert r.xpending(keys.frames(cam), keys.group)["pending"] == 0
        ordered = [res.seq for res in results if res.cam == cam]
        assert ordered == sorted(ordered), f"{cam}: frames analysed in capture order"
    by_worker = Counter(f[b"worker"].decode() for _, f in r.xrange(keys.results))
    assert by_worker["survivor"] > 0 and by_worker["victim"] > 0
    assert survivor.returncode == 0, "SIGTERM stops a worker cleanly"
    assert all(w is None for w in holders(r, keys).values()), "a worker stopped cleanly releases its leases"


def test_a_new_worker_takes_its_fair_share(settings, r, keys):
    for cam in CAMS:
        register(r, keys, cam)
    first = start_worker(settings, "first")
    second = None
    try:
        wait_for(lambda: Counter(holders(r, keys).values()) == {"first": 4}, 60,
                 lambda: f"one worker holds every camera, got {holders(r, keys)}" + exited(first))
        second = start_worker(settings, "second")
        wait_for(lambda: Counter(holders(r, keys).values()) == {"first": 2, "second": 2}, 60,
                 lambda: f"two workers hold two cameras each, got {holders(r, keys)}" + exited(second))
    finally:
        for proc in (first, second):
            if proc is not None:
                proc.terminate()
                proc.wait(20)
