"""Two `maskwatch up` on one host, each with its own state folder: every child of both runs.

The hardening issue's item 9: the metrics servers of producer, worker and jobs listened on fixed
ports, so the second `up` crash-looped its producer and jobs runner (``Address already in use``)
and its side jobs never ran. Now `up` gives each child a free port on 127.0.0.1 and says which in
its log and its run file.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from maskwatch.cli.embedded_redis import free_port
from tests.conftest import MODELS
from tests.support.producer import make_video
from tests.support.sockets import listening_addresses
from tests.support.waiting import stop, wait_for

pytestmark = pytest.mark.slow
CHILDREN = {"producer", "worker-1", "jobs", "dashboard"}


class Up:
    """One `maskwatch up --workers 1` with a looping file camera, in its own state folder."""

    def __init__(self, tmp_path: Path, name: str, video: Path):
        self.state, self.port = tmp_path / f"state-{name}", free_port()
        self.log = tmp_path / f"up-{name}.log"
        # The metrics ports stay at their defaults (9101-9103): `up` must not hand them to both.
        env = {k: v for k, v in os.environ.items() if not k.startswith("MASKWATCH_")}
        env.update(MASKWATCH_MODEL_DIR=str(MODELS), MASKWATCH_STATE_DIR=str(self.state),
                   MASKWATCH_ALLOW_NO_TOKEN="true", PYTHONUNBUFFERED="1")
        if os.environ.get("MASKWATCH_MODEL"):
            env["MASKWATCH_MODEL"] = os.environ["MASKWATCH_MODEL"]
        with self.log.open("wb") as sink:
            self.proc = subprocess.Popen([sys.executable, "-m", "maskwatch", "up", "--workers", "1", "--camera",
                                          f"{name}={video}", "--loop", "--port", str(self.port)],
                                         env=env, stdout=sink, stderr=subprocess.STDOUT)
        self.camera = name

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def tail(self) -> str:
        return self.text()[-4000:]

    def run_file(self) -> dict:
        path = self.state / "up.json"
        return json.loads(path.read_text()) if path.exists() else {}

    def counted(self) -> bool:
        try:
            cams = httpx.get(f"http://127.0.0.1:{self.port}/api/cameras", timeout=2).json()
        except (httpx.HTTPError, ValueError):
            return False
        return any(c["id"] == self.camera and c.get("totals", {}).get("frames", 0) > 0 for c in cams)

    def stop(self) -> int:
        return stop(self.proc)


def test_two_ups_with_their_own_state_folders_run_side_by_side(tmp_path, yunet_dir):
    video = make_video(tmp_path / "cam.avi", seconds=2)
    ups = [Up(tmp_path, "east", video)]
    try:
        wait_for(lambda: ups[0].counted(), 120, lambda: "the first up counting frames\n" + ups[0].tail(), every=1.0)
        ups.append(Up(tmp_path, "west", video))
        for up in ups:
            wait_for(up.counted, 120, lambda up=up: f"{up.camera} counting frames\n{up.tail()}", every=1.0)
        ports = []
        for up in ups:
            metrics = up.run_file()["metrics"]
            assert set(metrics) == CHILDREN - {"dashboard"}, metrics
            for child, url in metrics.items():
                assert url.startswith("http://127.0.0.1:") and f"{child} {url}" in up.text(), "said in the log"
                port = int(url.rsplit(":", 1)[1].split("/")[0])
                ports.append(port)
                assert httpx.get(url.replace("/metrics", "/livez"), timeout=5).status_code == 200, (child, url)
                assert listening_addresses(port) == {"127.0.0.1"}
        assert len(set(ports)) == 6, f"every child a port of its own: {ports}"
        # The west camera's webhooks-and-alerts runner is up too: a job that used to crash-loop there.
        jobs = ups[1].run_file()["metrics"]["jobs"]
        wait_for(lambda: httpx.get(jobs.replace("/metrics", "/readyz"), timeout=5).status_code == 200, 30,
                 "the second up's jobs runner ready")
        for up in ups:
            log = up.text()
            assert "Address already in use" not in log, log
            assert {child: log.count(f"started {child} (pid") for child in CHILDREN} == dict.fromkeys(CHILDREN, 1), \
                "each child started once, never restarted:\n" + log
            assert up.proc.poll() is None
    finally:
        codes = [up.stop() for up in ups]
    assert codes == [0] * len(ups), "\n\n".join(up.tail() for up in ups)
