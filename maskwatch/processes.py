"""Process health under ``maskwatch up``: each child's state, written by the supervisor, read by the dashboard.

``maskwatch up`` runs the producer, the workers, the side jobs and the dashboard as child processes
and restarts one that exits (docs/architecture.md, "Process health"). It writes each child's state
into one hash, ``mw:processes`` (field: the child's name, value: JSON), whenever the state changes
and at least every :data:`REFRESH_S` while it runs, and removes its children's fields when it stops.
The dashboard's system page shows them; a site with fresh entries runs under ``up``, which changes
the advice it gives (restart ``up``, not ``maskwatch worker``). An entry not refreshed for
:data:`STALE_AFTER_S` belongs to a supervisor that died without cleaning up.

>>> s = ProcessState("worker-1", FAILING, pid=None, restarts=3, last_error="exit code 1: ModelError: ...",
...                  since_ms=1_700_000_000_000, updated_ms=1_700_000_004_000, supervisor="up@host:42")
>>> ProcessState.from_json("worker-1", s.to_json()) == s
True
>>> s.is_stale(1_700_000_004_000 + 1000 * int(STALE_AFTER_S) + 1)
True
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass, replace
from typing import Any

import redis

from maskwatch.exceptions import MessageError
from maskwatch.keys import Keys
from maskwatch.redaction import mask_url
from maskwatch.utils import json_object, now_ms, text

log = logging.getLogger(__name__)
STARTING, RUNNING, FAILING, STOPPED = "starting", "running", "failing", "stopped"
STATES = (STARTING, RUNNING, FAILING, STOPPED)
REFRESH_S = 5.0  # the supervisor rewrites every state at least this often
STALE_AFTER_S = 3 * REFRESH_S  # three missed refreshes: the supervisor is gone
ERROR_MAX_CHARS = 2000  # a traceback's tail is enough to say why; the full one is in up's log
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]+")
_KIND = "process state"


@dataclass(frozen=True)
class ProcessState:
    """One supervised child process as its supervisor last saw it.

    ``state``: ``starting`` (launched, not yet known to run), ``running``, ``failing`` (exited with an
    error; restarted with backoff, ``pid`` None while it waits) or ``stopped`` (exited and not restarted).
    ``since_ms`` is when it entered that state (for ``failing``, the first failure of the streak);
    ``updated_ms`` when the supervisor last wrote it (set by :func:`write_process_states`).
    """

    name: str  # unique within the site: "producer", "worker-1", "jobs", "dashboard"
    state: str
    pid: int | None = None
    restarts: int = 0  # restarts since the supervisor started
    last_error: str | None = None  # why it last exited: exit code and its stderr's tail; credentials masked
    since_ms: int = 0
    updated_ms: int = 0
    supervisor: str = ""  # who runs it, e.g. "up@{host}:{pid}"

    def is_stale(self, now: int) -> bool:
        """The supervisor stopped refreshing this state (it died without removing it)."""
        return now - self.updated_ms > STALE_AFTER_S * 1000

    def to_json(self) -> str:
        d = asdict(self)
        del d["name"]  # the hash field
        return json.dumps(d, separators=(",", ":"))

    @classmethod
    def from_json(cls, name: str, raw: bytes | str) -> ProcessState:
        """A stored state; raises :class:`MessageError` naming the field that is missing or malformed."""
        d = json_object(raw, _KIND, "(value)")
        state = d.get("state")
        if state not in STATES:
            raise MessageError(_KIND, "state", f"must be one of {', '.join(STATES)}, got {state!r:.40}")
        pid, error, supervisor = d.get("pid"), d.get("last_error"), d.get("supervisor", "")
        if pid is not None and not _whole(pid):
            raise MessageError(_KIND, "pid", f"must be a whole number or null, got {pid!r:.40}")
        if error is not None and not isinstance(error, str):
            raise MessageError(_KIND, "last_error", "must be a string or null")
        if not isinstance(supervisor, str):
            raise MessageError(_KIND, "supervisor", "must be a string")
        counts = {f: d.get(f, 0) for f in ("restarts", "since_ms", "updated_ms")}
        for f, value in counts.items():
            if not _whole(value):
                raise MessageError(_KIND, f, f"must be a whole number >= 0, got {value!r:.40}")
        return cls(name=name, state=state, pid=pid, last_error=error, supervisor=supervisor, **counts)


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _clean_error(error: str | None) -> str | None:
    """The error as stored: URLs' credentials masked, at most ERROR_MAX_CHARS (the end, where the reason is)."""
    if not error:
        return None
    masked = _URL.sub(lambda m: mask_url(m.group(0)), error.strip())
    return masked if len(masked) <= ERROR_MAX_CHARS else "…" + masked[-ERROR_MAX_CHARS + 1:]


def write_process_states(r: redis.Redis, keys: Keys, states: Iterable[ProcessState], now: int | None = None) -> None:
    """Write the states (one round trip), stamping ``updated_ms`` with ``now`` (default: the clock)."""
    at = now_ms() if now is None else now
    states = list(states)
    if states:
        r.hset(keys.processes, mapping={
            s.name: replace(s, updated_ms=at, last_error=_clean_error(s.last_error)).to_json() for s in states})


def write_process_state(r: redis.Redis, keys: Keys, state: ProcessState, now: int | None = None) -> None:
    """Write one child's state (on every change of it)."""
    write_process_states(r, keys, [state], now)


def remove_process_states(r: redis.Redis, keys: Keys, names: Iterable[str]) -> None:
    """Forget these children (their supervisor stops): the site no longer runs under it."""
    names = list(names)
    if names:
        r.hdel(keys.processes, *names)


def read_process_states(r: redis.Redis, keys: Keys) -> list[ProcessState]:
    """Every stored child state, by name; an unreadable entry is logged and skipped."""
    out = []
    for name, raw in sorted(r.hgetall(keys.processes).items()):
        try:
            out.append(ProcessState.from_json(text(name), raw))
        except MessageError as exc:
            log.warning("skipping unreadable process state %s: %s", text(name), exc)
    return out
