"""Workers as real processes: kill -9 one mid-stream while another runs, and every frame is counted once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import Counter

import pytest

from maskwatch.codec import decode_result
from maskwatch.cli.up import child_env
from tests.conftest import DATA, need_shared
from tests.frames import push_frames, scenes, totals, wait_for

pytestmark = pytest.mark.slow


def start_worker(settings, name: str) -> subprocess.Popen:
    env = child_env(settings.override(claim_idle_ms=1500, batch_size=4, max_wait_ms=20, threads=1))
    return subprocess.Popen([sys.executable, "-m", "maskwatch", "worker", "--name", name], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def test_kill_9_mid_stream_loses_nothing_and_counts_nothing_twice(settings, r, keys):
    images = [s.image for s in scenes(need_shared(DATA / "facemask12k" / "test"), n=8, seed=5, faces=3)]
    n = 48
    push_frames(r, keys, "lobby", [images[i % len(images)] for i in range(n)])
    victim, survivor = start_worker(settings, "victim"), start_worker(settings, "survivor")
    try:
        assert wait_for(lambda: any(f[b"worker"] == b"victim" for _, f in r.xrange(keys.results)), timeout=60), \
            victim.stderr.read().decode() if victim.poll() is not None else "victim never produced a result"
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait()
        assert wait_for(lambda: totals(r, keys, "lobby").get("frames") == n, timeout=90)
    finally:
        survivor.terminate()
        survivor.wait(20)
    seqs = Counter(decode_result(f).seq for _, f in r.xrange(keys.results))
    assert sorted(seqs) == list(range(n)) and max(seqs.values()) == 1, "each frame has exactly one result"
    assert totals(r, keys, "lobby")["frames"] == n
    assert r.xpending(keys.frames, keys.group)["pending"] == 0
    by_worker = Counter(f[b"worker"].decode() for _, f in r.xrange(keys.results))
    assert by_worker["survivor"] > 0 and by_worker["victim"] > 0
    assert survivor.returncode == 0, "SIGTERM stops a worker cleanly"
