"""The lifecycle every process shares (maskwatch.service): one Redis-outage policy, and stopping on a signal.

Outage tests meet real connection errors (a port nothing listens on) and a real redis-server; the
backoff runs on a simulated clock, so that a minute of outage takes no time and the delays can be
checked exactly.
"""

from __future__ import annotations

import logging
import random
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from maskwatch.cameras import CameraConfig, Registry
from maskwatch.cli.embedded_redis import EmbeddedRedis, free_port
from maskwatch.cli.up import child_env
from maskwatch.keys import Keys
from maskwatch.service import RedisOutage, StopSignal, redis_address
from maskwatch.settings import Settings
from tests.support.producer import make_video
from tests.support.waiting import wait_for

ROOT = Path(__file__).resolve().parent.parent


class FastForward(StopSignal):
    """A stop signal whose waits pass on a simulated clock: the loop under test runs at full speed."""

    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0

    def clock(self) -> float:
        return self.now

    def wait(self, seconds: float | None = None) -> bool:
        assert seconds is not None and seconds > 0, f"a loop waited {seconds} s: it would spin"
        self.now += seconds
        return self.stopping


def unreachable() -> redis.Redis:
    """A client of a port nothing listens on, failing at once (redis-py's own retries would take seconds a call)."""
    return redis.Redis(port=free_port(), socket_connect_timeout=1, retry=Retry(NoBackoff(), 0))


def run_loop(outage: RedisOutage, time: FastForward, client: redis.Redis, until: float) -> list[float]:
    """A loop as the processes write it, until the simulated clock reaches ``until``; when each try happened."""
    tries: list[float] = []
    while time.now < until and outage.turn(time):
        assert len(tries) < 10_000, "the loop tries Redis without waiting"
        with outage.guard():
            tries.append(time.now)
            client.ping()
    return tries


def outage_lines(caplog: pytest.LogCaptureFixture) -> list[tuple[int, str]]:
    return [(rec.levelno, rec.getMessage()) for rec in caplog.records if rec.name == "maskwatch.service"]


def test_an_outage_is_said_once_when_it_starts_and_once_when_it_ends(redis_server: EmbeddedRedis,
                                                                      caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="maskwatch.service")
    time, dead, live = FastForward(), unreachable(), redis.Redis.from_url(redis_server.url)
    outage = RedisOutage("worker w1", redis_address(dead), "frames stay pending", clock=time.clock)

    failures = run_loop(outage, time, dead, until=120.0)
    assert len(failures) >= 20 and outage.down, "two minutes of outage: tried again and again, never given up"
    lines = outage_lines(caplog)
    assert len(lines) == 1, f"{len(failures)} failed tries, one line: {lines}"
    level, text = lines[0]
    assert level == logging.WARNING
    assert f"worker w1: Redis at {redis_address(dead)} is unreachable" in text and "frames stay pending" in text

    assert outage.turn(time), "the next try comes after the backoff"
    with outage.guard():
        live.ping()
    assert not outage.down
    lines = outage_lines(caplog)
    assert len(lines) == 2, f"one more line when it ends: {lines}"
    level, text = lines[1]
    assert level == logging.INFO and f"worker w1: Redis at {redis_address(dead)} is back after {time.now:.1f} s" in text


def test_tries_back_off_exponentially_up_to_the_cap_with_full_jitter() -> None:
    dead = unreachable()
    upper = FastForward()  # every draw at its upper bound: the bounds themselves
    tries = run_loop(RedisOutage("t", "here", "-", clock=upper.clock, rng=lambda: 1.0), upper, dead, until=30.0)
    gaps = [b - a for a, b in zip(tries, tries[1:])]
    assert gaps[:5] == pytest.approx([0.2, 0.4, 0.8, 1.6, 3.2]), "doubling from 0.2 s"
    assert gaps[5:] == pytest.approx([5.0] * (len(gaps) - 5)) and len(gaps) > 7, "then every 5 s (the cap)"

    jittered = FastForward()
    tries = run_loop(RedisOutage("t", "here", "-", clock=jittered.clock, rng=random.Random(7).random), jittered, dead,
                     until=300.0)
    gaps = [b - a for a, b in zip(tries, tries[1:])]
    bounds = [min(5.0, 0.2 * 2**i) for i in range(len(gaps))]
    assert all(gap <= bound + 1e-9 for gap, bound in zip(gaps, bounds)), "each delay stays under its bound"
    assert len({round(g, 3) for g in gaps[6:]}) > 10, "full jitter: the capped delays differ"
    assert 300 / 5.0 < len(tries) < 300 / 1.0, "on average half the cap apart once capped (2.5 s)"


def test_threads_that_fail_together_start_one_outage_and_take_turns_to_try(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="maskwatch.service")
    time, dead = FastForward(), unreachable()
    outage = RedisOutage("producer p1", redis_address(dead), "frames are dropped", clock=time.clock, rng=lambda: 1.0)
    with pytest.raises(redis.ConnectionError) as caught:
        dead.ping()
    error = caught.value
    threads = [threading.Thread(target=outage.failed, args=(error,)) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(outage_lines(caplog)) == 1
    assert not outage.may_try(), "the first try waits for the first delay"
    time.now = 0.2
    assert outage.may_try(), "16 threads failing at once count as one failure: the first delay is still 0.2 s"
    assert not outage.may_try() and not outage.may_try(), "one caller at a time tries a Redis that is down"
    outage.failed(error)
    time.now = 0.59
    assert not outage.may_try()
    time.now = 0.61
    assert outage.may_try(), "after a failed try, the delay doubles: 0.4 s"
    outage.ok()
    assert all(outage.may_try() for _ in range(3)), "once it is back, everyone calls Redis again"
    assert [level for level, _ in outage_lines(caplog)] == [logging.WARNING, logging.INFO]


def test_errors_that_are_not_an_outage_reach_the_caller(r: redis.Redis, keys: Keys) -> None:
    outage = RedisOutage("t", redis_address(r), "-")
    r.set(keys.prefix + ":text", "x")
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"), outage.guard():
        r.hget(keys.prefix + ":text", "field")
    assert not outage.down


def test_a_stop_wakes_a_waiting_thread_and_a_timed_wait_returns_false() -> None:
    stop = StopSignal()
    assert stop.wait(0.01) is False and not stop.stopping
    woke: list[bool] = []
    waiter = threading.Thread(target=lambda: woke.append(stop.wait()))
    waiter.start()
    stop.stop()
    waiter.join(10)
    assert woke == [True] and stop.stopping and stop.reason == "stop()"


def test_a_producer_stops_on_ctrl_c_then_sigterm_during_an_outage_and_exits_0(tmp_path: Path) -> None:
    """A real process: Redis goes away, then Ctrl-C and `maskwatch up`'s SIGTERM arrive; no traceback, status 0."""
    server = EmbeddedRedis(tmp_path / "redis", port=free_port(), persist=False).start()
    try:
        settings = Settings.from_env().override(redis_url=server.url, prefix="sig", producer_metrics_port=0)
        Registry(redis.Redis.from_url(server.url), Keys("sig")).put(
            CameraConfig(id="lobby", url=str(make_video(tmp_path / "v.avi", seconds=1)), loop=True))
        log = tmp_path / "producer.log"
        with log.open("wb") as sink:
            proc = subprocess.Popen([sys.executable, "-m", "maskwatch", "producer"], env=child_env(settings), cwd=ROOT,
                                    stdout=subprocess.DEVNULL, stderr=sink)
        try:
            wait_for(lambda: "capturing" in log.read_text(), 30, lambda: "capture to start: " + log.read_text())
            server.stop()
            wait_for(lambda: "Retrying with backoff" in log.read_text(), 30, lambda: "the outage: " + log.read_text())
            proc.send_signal(signal.SIGINT)
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    finally:
        server.stop()
    said = log.read_text()
    assert code == 0, said
    assert "Traceback" not in said, said
    # The two signals arrive together; whichever Python runs first stops it, the second is ignored quietly.
    assert said.count("received: stopping") == 1, said
    assert said.count("Retrying with backoff") == 1, said
