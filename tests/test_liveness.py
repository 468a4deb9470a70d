"""Liveness and readiness through Redis outages, with real processes and a redis-server killed and restarted.

The hardening issue's item 7: the producer's only probe failed for a whole Redis outage and the
Kubernetes manifests restarted it on that, and producer, worker and jobs exited with code 2 when
Redis was down at their start. Now each serves ``/livez`` (the process runs) and ``/readyz``
(started, and Redis answers), waits for Redis instead of exiting, and says an outage once when it
starts and once when it ends. Item 9's first part: their metrics listen on 127.0.0.1 unless told.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx
import redis

from maskwatch.cameras import CameraConfig, Registry
from maskwatch.cli.embedded_redis import EmbeddedRedis, free_port
from maskwatch.cli.up import child_env
from maskwatch.codec import Event, encode_event
from maskwatch.keys import Keys
from maskwatch.settings import Settings
from tests.conftest import MODELS
from tests.support.deploy import K8S, kustomize, load_compose, maskwatch_args
from tests.support.producer import make_video
from tests.support.sockets import listening_addresses
from tests.support.waiting import stop, wait_for
from tests.support.webhooks import receiver

WAITING = "waiting for it before starting"


class Process:
    """A long-running `maskwatch COMMAND`, its log and its probes."""

    def __init__(self, command: str, s: Settings, port: int, log: Path):
        self.command, self.port, self.log = command, port, log
        # The dashboard serves its probes on its own port; the others on their metrics port.
        argv = [command, "--port", str(port)] if command == "dashboard" else [command]
        s = s if command == "dashboard" else s.override(**{f"{command}_metrics_port": port})
        with log.open("wb") as sink:
            self.proc = subprocess.Popen([sys.executable, "-m", "maskwatch", *argv], env=child_env(s),
                                         stdout=subprocess.DEVNULL, stderr=sink)

    def probe(self, path: str) -> int | None:
        try:
            return httpx.get(f"http://127.0.0.1:{self.port}{path}", timeout=2).status_code
        except httpx.HTTPError:
            return None

    def lines(self) -> list[str]:
        return self.log.read_text(errors="replace").splitlines()

    def tail(self) -> str:
        return f"{self.command} (exit {self.proc.poll()}):\n" + "\n".join(self.lines()[-15:])

    def stop(self) -> int:
        return stop(self.proc, signal.SIGTERM)


@contextmanager
def processes(s: Settings, tmp_path: Path, *commands: str) -> Iterator[dict[str, Process]]:
    """Each command as a process with a port of its own for its probes; all must stop with status 0 on SIGTERM."""
    started: dict[str, Process] = {}
    try:
        for command in commands:
            started[command] = Process(command, s, free_port(), tmp_path / f"{command}.log")
        yield started
    finally:
        codes = {name: p.stop() for name, p in started.items()}
    # uvicorn ends the dashboard by the signal it caught, once shut down cleanly
    clean = {name: {0, -signal.SIGTERM} if name == "dashboard" else {0} for name in started}
    assert all(codes[name] in clean[name] for name in started), (codes, "\n".join(p.tail() for p in started.values()))


def wait_probes(procs: dict[str, Process], live: int, ready: int, what: str) -> None:
    for p in procs.values():
        wait_for(lambda p=p: p.probe("/livez") == live and p.probe("/readyz") == ready, 60,
                 lambda p=p: f"{p.command}: {what}\n{p.tail()}", every=0.2)
        assert p.proc.poll() is None, p.tail()


def outage_lines(p: Process, where: str) -> list[str]:
    """The lines ``p`` wrote from its outage warning about ``where`` to the line saying Redis is back, both included."""
    lines = p.lines()
    start = max(i for i, line in enumerate(lines) if f"Redis at {where} is unreachable" in line)
    end = next(i for i in range(start, len(lines)) if f"Redis at {where} is back" in lines[i])
    return lines[start:end + 1]


def violation(r: redis.Redis, keys: Keys, seq: int) -> None:
    r.xadd(keys.events, encode_event(Event(cam="lobby", seq=seq, ts=1_700_000_000_000 + seq, score=0.9,
                                           box=(1, 2, 3, 4), snap=f"lobby-{seq}")))


def test_processes_started_while_redis_is_down_wait_then_work_and_ride_out_an_outage(tmp_path, yunet_dir):
    port = free_port()  # nothing listens here yet
    where = f"127.0.0.1:{port}/0"
    keys = Keys("live")
    video = make_video(tmp_path / "lobby.avi", seconds=2)
    servers: list[EmbeddedRedis] = []

    def redis_up() -> EmbeddedRedis:
        servers.append(EmbeddedRedis(tmp_path / "redis", port=port, persist=True).start())
        return servers[-1]

    with receiver() as hook, ExitStack() as stack:
        stack.callback(lambda: [server.stop() for server in servers])  # last: after the processes stopped
        s = Settings.from_env().override(redis_url=f"redis://{where}", prefix="live", model_dir=MODELS, motion=False,
                                         webhook_url=hook.url, webhook_secret="s", reconnect_max_s=1.0)
        procs = stack.enter_context(processes(s, tmp_path, "producer", "worker", "jobs", "dashboard"))
        wait_probes(procs, live=200, ready=503, what="alive, not ready, while Redis is down at its start")
        for name in ("producer", "worker", "jobs"):
            assert sum(WAITING in line for line in procs[name].lines()) == 1, procs[name].tail()

        r = redis.Redis.from_url(redis_up().url)
        wait_probes(procs, live=200, ready=200, what="ready once Redis answers")
        for p in procs.values():
            assert sum(f"Redis at {where} is back" in line for line in p.lines()) == 1, p.tail()
        Registry(r, keys).put(CameraConfig(id="lobby", url=str(video), loop=True, fps=5))
        violation(r, keys, 1)
        wait_for(lambda: r.xlen(keys.results) >= 5, 60,
                 lambda: "frames captured and analysed\n" + procs["worker"].tail())
        wait_for(lambda: hook.arrivals, 30, lambda: "the webhook\n" + procs["jobs"].tail())

        servers[-1].stop()  # a Redis outage: nobody exits, nobody is restarted, each is alive but not ready
        wait_probes(procs, live=200, ready=503, what="alive, not ready, during the outage")
        redis_up()
        wait_probes(procs, live=200, ready=200, what="ready again")
        before = r.xlen(keys.results)
        violation(r, keys, 2)
        wait_for(lambda: r.xlen(keys.results) > before, 60, lambda: "analysis again\n" + procs["worker"].tail())
        wait_for(lambda: len(hook.arrivals) == 2, 30, lambda: "the second webhook\n" + procs["jobs"].tail())
        for name in ("producer", "worker", "jobs", "dashboard"):
            said = outage_lines(procs[name], where)
            # One line when it starts, one when it ends, nothing between: not a line per retry.
            assert len(said) == 2, f"{name} during the outage:\n" + "\n".join(said)


def test_metrics_listen_on_loopback_unless_told(settings, tmp_path):
    assert Settings().metrics_host == "127.0.0.1"
    with processes(settings.override(webhook_url=None), tmp_path, "jobs") as procs:
        jobs = procs["jobs"]
        wait_probes(procs, live=200, ready=200, what="ready")
        assert listening_addresses(jobs.port) == {"127.0.0.1"}
    with processes(settings.override(metrics_host="0.0.0.0"), tmp_path, "producer") as procs:
        wait_probes(procs, live=200, ready=200, what="ready")
        assert listening_addresses(procs["producer"].port) == {"0.0.0.0"}


def test_containers_listen_on_every_interface_explicitly():
    """Prometheus and the kubelet reach a container by its address: compose and Kubernetes say 0.0.0.0."""
    compose = load_compose()
    for name, service in compose["services"].items():
        if "build" in service and maskwatch_args(service["command"]).command in ("producer", "worker", "jobs"):
            assert service["environment"]["MASKWATCH_METRICS_HOST"] == "0.0.0.0", name
    [config] = [o for o in kustomize(K8S / "base")
                if o["kind"] == "ConfigMap" and o["metadata"]["name"].startswith("maskwatch-config")]
    assert config["data"]["MASKWATCH_METRICS_HOST"] == "0.0.0.0"
