"""`maskwatch up`'s first minutes as a user meets them: what it checks first, where its state lives, how big it grows.

Each test runs the real command line in a subprocess, from a folder of its own, with the state
folder left to its default under a temporary XDG_DATA_HOME.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import redis

from maskwatch.cli.embedded_redis import LOG, EmbeddedRedis, free_port
from maskwatch.keys import Keys
from maskwatch.processes import read_process_states
from tests.conftest import MODELS, need_shared
from tests.support.waiting import stop, wait_for


def user_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """A user's environment: no MASKWATCH_* settings, the data folder under ``tmp_path``, no proxy set."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("MASKWATCH_") and k.lower() not in {"http_proxy", "https_proxy", "no_proxy"}}
    env.update(XDG_DATA_HOME=str(tmp_path / "data"), PYTHONUNBUFFERED="1", MASKWATCH_PRODUCER_METRICS_PORT="0",
               MASKWATCH_WORKER_METRICS_PORT="0", MASKWATCH_JOBS_METRICS_PORT="0", **extra)
    return env


def offline(env: dict[str, str]) -> dict[str, str]:
    """As without a network: every HTTP(S) request goes through a proxy that refuses connections."""
    closed = f"http://127.0.0.1:{free_port()}"
    return {**env, "https_proxy": closed, "HTTPS_PROXY": closed, "http_proxy": closed, "HTTP_PROXY": closed}


def maskwatch(*args: str, env: dict[str, str], cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    cwd.mkdir(parents=True, exist_ok=True)
    return subprocess.run([sys.executable, "-m", "maskwatch", *args], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=timeout)


def test_up_without_the_detector_model_offline_says_how_to_fix_it_and_starts_nothing(tmp_path: Path) -> None:
    models = tmp_path / "empty-models"
    proc = maskwatch("up", "--port", str(free_port()), cwd=tmp_path / "site",
                     env=offline(user_env(tmp_path, MASKWATCH_MODEL_DIR=str(models))))
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2, out
    assert "Traceback" not in out
    assert proc.stderr.startswith("maskwatch up: error: the face detector's model face_detection_yunet_2023mar.onnx "
                                  f"is not in {models} and could not be downloaded"), proc.stderr
    assert "`maskwatch models fetch`" in proc.stderr and "MASKWATCH_MODEL_DIR" in proc.stderr
    assert proc.stderr.count("\n") == 1, "one message, said once"
    assert "started" not in out, "no child was started"
    assert not (tmp_path / "data" / "maskwatch" / "redis").exists(), "not even the embedded Redis"
    assert not list(models.iterdir()), "no partial download left behind"


def test_up_lists_every_problem_at_once(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        (tmp_path / "model.mwm").write_text("not a model")
        proc = maskwatch("up", "--port", str(port), cwd=tmp_path / "site",
                         env=user_env(tmp_path, MASKWATCH_MODEL_DIR=str(MODELS),
                                      MASKWATCH_MODEL=str(tmp_path / "model.mwm")))
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("maskwatch up: error: 2 things to fix before anything starts:"), proc.stderr
    assert f"1. the dashboard's port {port} on 127.0.0.1 is in use" in proc.stderr
    assert f"2. {tmp_path / 'model.mwm'} is not a MaskWatch model artifact" in proc.stderr
    assert "Traceback" not in proc.stderr and "started" not in proc.stdout + proc.stderr


@pytest.mark.slow
def test_up_started_anywhere_keeps_its_state_in_the_data_folder_and_takes_allow_no_token(tmp_path: Path) -> None:
    need_shared(MODELS / "face_detection_yunet_2023mar.onnx")
    env = user_env(tmp_path, MASKWATCH_MODEL_DIR=str(MODELS))
    state = tmp_path / "data" / "maskwatch"
    port = free_port()
    site = tmp_path / "site"
    (site / ".maskwatch").mkdir(parents=True)  # where an earlier MaskWatch kept its state
    log = open(tmp_path / "up.log", "wb")
    up = subprocess.Popen([sys.executable, "-m", "maskwatch", "up", "--allow-no-token", "--no-jobs", "--workers", "1",
                           "--port", str(port)], env=env, cwd=site, stdout=log, stderr=subprocess.STDOUT)

    def log_text() -> str:
        return (tmp_path / "up.log").read_text()

    try:
        base = f"http://127.0.0.1:{port}"

        def dashboard_up() -> bool:
            try:
                return httpx.get(f"{base}/healthz", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(dashboard_up, 120, lambda: "the dashboard; log:\n" + log_text()[-3000:], every=0.5)
        # Where state lives and how big it may grow, said at start.
        assert f"state in {state}: the run file, and the embedded redis-server's files and log" in log_text()
        assert "at most 512 MB in memory and about 1556 MB on disk" in log_text()
        assert (state / "up.json").is_file() and not list((site / ".maskwatch").iterdir())
        assert (f".maskwatch here holds the state of an earlier MaskWatch (its cameras and counts), not used now; "
                f"to keep using it, start with --state-dir {site / '.maskwatch'}") in log_text()
        # --allow-no-token reached the dashboard: the write API is open.
        added = httpx.post(f"{base}/api/cameras", json={"id": "dock", "url": "rtsp://dock/1"}, timeout=10)
        assert added.status_code == 201, added.text
        # Another shell, another folder: the CLI finds the running system through the data folder.
        listed = maskwatch("camera", "list", env=env, cwd=tmp_path / "elsewhere")
        assert listed.returncode == 0 and "dock" in listed.stdout, listed.stderr
        # The embedded Redis is capped, and every child's state is published for the dashboard.
        r = redis.Redis.from_url(json.loads((state / "up.json").read_text())["redis_url"])
        assert r.config_get("maxmemory")["maxmemory"] == str(512 << 20)
        assert r.config_get("maxmemory-policy")["maxmemory-policy"] == "volatile-ttl"
        states = wait_for(lambda: {p.name: p for p in read_process_states(r, Keys("mw"))}, 10, "process states")
        assert set(states) == {"producer", "worker-1", "dashboard"}
        assert all(p.pid and p.state in ("starting", "running") for p in states.values()), states
    finally:
        code = stop(up)
    assert code == 0, log_text()[-3000:]
    assert "Traceback" not in log_text()


def test_embedded_redis_caps_its_memory_and_rotates_its_log(tmp_path: Path) -> None:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed (apt-get install redis-server)")
    old = tmp_path / LOG
    old.write_bytes(b"x" * (11 << 20))  # a log past the bound, left by earlier runs
    with EmbeddedRedis(tmp_path, persist=False, max_memory_mb=32) as server:
        r = redis.Redis.from_url(server.url)
        assert r.config_get("maxmemory")["maxmemory"] == str(32 << 20)
        assert r.config_get("maxmemory-policy")["maxmemory-policy"] == "volatile-ttl"
        assert r.config_get("auto-aof-rewrite-min-size")["auto-aof-rewrite-min-size"] == str(32 << 20)
        assert server.disk_bound_mb == 3 * 32 + 20
        r.set("registry", "kept")
        for i in range(8):  # 64 MB of snapshots into 32: those with an expiry go, the registry stays
            r.set(f"snap:{i}", b"\0" * (8 << 20), ex=60 + i)
        assert r.get("registry") == b"kept"
        assert r.dbsize() < 9 and int(r.info("memory")["used_memory"]) <= 32 << 20
    assert (tmp_path / (LOG + ".1")).stat().st_size == 11 << 20
    assert 0 < (tmp_path / LOG).stat().st_size < 1 << 20, "redis-server writes a fresh log"
