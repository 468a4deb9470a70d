"""Process states of `maskwatch up`'s children in a real Redis: written and read through maskwatch.processes."""

from __future__ import annotations

import redis

from maskwatch.keys import Keys
from maskwatch.processes import (
    ERROR_MAX_CHARS,
    FAILING,
    RUNNING,
    STALE_AFTER_S,
    ProcessState,
    read_process_states,
    remove_process_states,
    write_process_state,
    write_process_states,
)

T0 = 1_700_000_000_000


def test_states_round_trip_by_name_with_the_write_time(r: redis.Redis, keys: Keys) -> None:
    write_process_states(r, keys, [ProcessState("worker-1", RUNNING, pid=41, since_ms=T0 - 5000),
                                   ProcessState("producer", RUNNING, pid=40, since_ms=T0 - 9000)], now=T0)
    write_process_state(r, keys, ProcessState("worker-1", FAILING, restarts=2, since_ms=T0 + 1000,
                                              last_error="exit code 1: ModelError: no model at /models/x.onnx",
                                              supervisor="up@host:7"), now=T0 + 2000)
    producer, worker = read_process_states(r, keys)
    assert (producer.name, producer.state, producer.pid, producer.updated_ms) == ("producer", RUNNING, 40, T0)
    assert (worker.name, worker.state, worker.pid, worker.restarts) == ("worker-1", FAILING, None, 2)
    assert worker.last_error == "exit code 1: ModelError: no model at /models/x.onnx"
    assert (worker.since_ms, worker.updated_ms, worker.supervisor) == (T0 + 1000, T0 + 2000, "up@host:7")
    assert not worker.is_stale(T0 + 2000 + int(STALE_AFTER_S * 1000))
    assert worker.is_stale(T0 + 2001 + int(STALE_AFTER_S * 1000))
    remove_process_states(r, keys, ["producer", "worker-1"])
    assert read_process_states(r, keys) == [] and not r.exists(keys.processes)


def test_errors_lose_credentials_and_keep_their_end(r: redis.Redis, keys: Keys) -> None:
    error = "Traceback ...\n" + "x" * 5000 + "\nOSError: cannot open rtsp://admin:hunter2@10.0.0.5/stream1"
    write_process_state(r, keys, ProcessState("producer", FAILING, last_error=error), now=T0)
    [stored] = read_process_states(r, keys)
    assert stored.last_error is not None and len(stored.last_error) == ERROR_MAX_CHARS
    assert stored.last_error.endswith("cannot open rtsp://admin:***@10.0.0.5/stream1")
    assert "hunter2" not in r.hget(keys.processes, "producer").decode()


def test_an_unreadable_entry_is_skipped_not_fatal(r: redis.Redis, keys: Keys) -> None:
    write_process_state(r, keys, ProcessState("jobs", RUNNING, pid=9), now=T0)
    r.hset(keys.processes, mapping={"worker-1": "not json", "worker-2": '{"state": "dancing"}',
                                    "worker-3": '{"state": "running", "pid": -4}'})
    assert [p.name for p in read_process_states(r, keys)] == ["jobs"]
