"""`maskwatch up` end to end: embedded Redis, producer, worker, jobs and dashboard on two file cameras.

Ctrl-C leaves nothing behind.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from bench.scenes.compose import write_video
from maskwatch.cli.embedded_redis import free_port
from tests.conftest import DATA, MODELS, need_shared
from tests.frames import scenes
from tests.support.waiting import stop, wait_for

pytestmark = pytest.mark.slow


def descendants(pid: int) -> set[int]:
    """Every live process below ``pid`` (Linux /proc)."""
    found: set[int] = set()
    todo = [pid]
    while todo:
        p = todo.pop()
        for task in Path(f"/proc/{p}/task").glob("*/children"):
            for child in task.read_text().split():
                if int(child) not in found:
                    found.add(int(child))
                    todo.append(int(child))
    return found


def alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return not re.search(r"^State:\s+Z", status, re.M)


def test_up_runs_two_file_cameras_and_stops_cleanly(tmp_path):
    frames = [s.image for s in scenes(need_shared(DATA / "facemask12k" / "test"), n=6, seed=7, faces=3)]
    videos = [write_video(tmp_path / f"cam{i}.mp4", frames * 3, fps=10) for i in (1, 2)]
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MASKWATCH_")}
    env.update(MASKWATCH_MODEL_DIR=str(MODELS), MASKWATCH_PRODUCER_METRICS_PORT="0", MASKWATCH_WORKER_METRICS_PORT="0",
               MASKWATCH_JOBS_METRICS_PORT="0", MASKWATCH_ALLOW_NO_TOKEN="true", PYTHONUNBUFFERED="1")
    if os.environ.get("MASKWATCH_MODEL"):
        env["MASKWATCH_MODEL"] = os.environ["MASKWATCH_MODEL"]
    log = open(tmp_path / "up.log", "wb")
    up = subprocess.Popen([sys.executable, "-m", "maskwatch", "up", "--camera", f"front={videos[0]}", "--camera",
                           f"back={videos[1]}", "--loop", "--port", str(port), "--state-dir", str(tmp_path / "state")],
                          env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"

    def log_tail() -> str:
        return (tmp_path / "up.log").read_text()[-3000:]

    try:
        def both_counted() -> bool:
            try:
                cams = {c["id"]: c for c in httpx.get(f"{base}/api/cameras", timeout=2).json()}
            except (httpx.HTTPError, ValueError):
                return False
            return all(cams.get(c, {}).get("totals", {}).get("faces", 0) > 0 for c in ("front", "back"))

        wait_for(both_counted, 120, lambda: "faces counted on both cameras; log:\n" + log_tail(), every=1.0)
        cams = {c["id"]: c for c in httpx.get(f"{base}/api/cameras").json()}
        for c in cams.values():
            assert c["status"] == "online"
            assert c["totals"]["with_mask"] + c["totals"]["without_mask"] == c["totals"]["faces"]
        children = descendants(up.pid)
        assert len(children) >= 5, "redis, producer, worker, jobs and dashboard run as children"
        # A second shell: the CLI finds the running system through the state folder, no Redis URL given.
        state = ["--state-dir", str(tmp_path / "state")]
        listed = subprocess.run([sys.executable, "-m", "maskwatch", "camera", "list"],
                                env={**env, "MASKWATCH_STATE_DIR": str(tmp_path / "state")},
                                capture_output=True, text=True, timeout=60)
        assert listed.returncode == 0 and "front" in listed.stdout and "back" in listed.stdout, listed.stderr
        # A second `up` on the same state says where the first one is, and starts nothing.
        second = subprocess.run([sys.executable, "-m", "maskwatch", "up", "--port", str(free_port()), *state],
                                env=env, capture_output=True, text=True, timeout=60)
        assert second.returncode == 2, second.stderr
        assert f"already running: dashboard at http://127.0.0.1:{port}" in second.stderr, second.stderr
        assert "Traceback" not in second.stderr
        assert descendants(up.pid) == children, "the second up touched nothing of the first"
    finally:
        code = stop(up)
    assert code == 0, log_tail()
    # `up` waits for its children, but a grandchild may take a moment to be reaped by init.
    wait_for(lambda: not [p for p in children if alive(p)], 10,
             lambda: f"every child to end after Ctrl-C; left: {[p for p in children if alive(p)]}")


def test_up_without_redis_server_says_how_to_install_it(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("MASKWATCH_")}
    env["PATH"] = str(tmp_path)  # no redis-server here
    proc = subprocess.run([sys.executable, "-m", "maskwatch", "up", "--state-dir", str(tmp_path / "s")],
                          env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    assert "redis-server" in proc.stderr and "apt-get install redis-server" in proc.stderr
