"""`maskwatch up`'s supervision of real child processes: a child that keeps failing at start is given up on,
said once, and shown as such in Redis with its last error; a healthy one is shown running."""

from __future__ import annotations

import logging
import os
import threading

import redis

from maskwatch.cli.supervise import GIVE_UP_AFTER, Child, Supervisor
from maskwatch.keys import Keys
from maskwatch.processes import read_process_states
from maskwatch.service import StopSignal
from maskwatch.settings import Settings
from tests.support.waiting import wait_for


def jobs_env(settings: Settings, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MASKWATCH_")}
    env.update(MASKWATCH_REDIS_URL=settings.redis_url or "", MASKWATCH_PREFIX=settings.prefix,
               MASKWATCH_JOBS_METRICS_PORT="0", **extra)
    return env


def test_a_child_failing_at_every_start_is_given_up_on_and_shown_failing(settings: Settings, r: redis.Redis,
                                                                          keys: Keys, caplog) -> None:
    # A webhook URL without its secret: the side-job runner refuses to start, every time.
    broken = Child("jobs", ["jobs"], jobs_env(settings, MASKWATCH_WEBHOOK_URL="http://127.0.0.1:9/hook"))
    healthy = Child("jobs-2", ["jobs"], jobs_env(settings))
    supervisor, stop = Supervisor([broken, healthy], r, keys), StopSignal()
    thread = threading.Thread(target=supervisor.run, args=(stop,), daemon=True)
    with caplog.at_level(logging.INFO, logger="maskwatch.up"):
        supervisor.start()
        thread.start()
        try:
            def states() -> dict[str, str]:
                return {p.name: p.state for p in read_process_states(r, keys)}

            wait_for(lambda: states() == {"jobs": "stopped", "jobs-2": "running"}, 120,
                     lambda: f"jobs given up on, jobs-2 running; states {states()}", every=0.5)
            shown = {p.name: p for p in read_process_states(r, keys)}["jobs"]
            assert shown.pid is None and shown.restarts == GIVE_UP_AFTER - 1
            assert shown.last_error is not None and shown.last_error.startswith("exit code 2: maskwatch jobs: error: ")
            assert "MASKWATCH_WEBHOOK_SECRET" in shown.last_error
            assert shown.supervisor == supervisor.id
        finally:
            stop.stop()
            thread.join(10)
            supervisor.stop(timeout=15)
    given_up = [rec.getMessage() for rec in caplog.records if "not restarting it" in rec.getMessage()]
    assert len(given_up) == 1, "said once"
    assert given_up[0].startswith(f"jobs failed {GIVE_UP_AFTER} times in a row")
    assert "MASKWATCH_WEBHOOK_SECRET" in given_up[0]
    assert read_process_states(r, keys) == [], "a stopped `up` takes its children's states away"
    assert healthy.proc is not None and healthy.proc.poll() is not None
