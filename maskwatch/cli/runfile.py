"""Where a running `maskwatch up` is: a run file in its state folder, held under a lock for its lifetime.

Every other command run with the same state folder (MASKWATCH_STATE_DIR; by default the
platform's data folder, so the same from any folder) and no Redis configured finds the embedded
Redis there, so `maskwatch camera add` from a second shell reaches the running system. A second
`up` on the same state folder finds the lock held and says where the first one is, instead of
opening the same Redis files.
"""

from __future__ import annotations

import fcntl
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO

from maskwatch.exceptions import MaskWatchError

LOCK, RUN = "up.lock", "up.json"


@dataclass(frozen=True)
class RunInfo:
    pid: int
    redis_url: str
    dashboard_url: str | None
    media_dir: Path | None = None  # the run's, so `camera add` takes the files `up --camera` would
    metrics: dict[str, str] = field(default_factory=dict)  # child -> its /metrics URL (free ports, chosen by `up`)


class AlreadyRunning(MaskWatchError):
    """A second `maskwatch up` on a state folder that a running one holds."""


class RunFile:
    """Held by a running `up`: the lock is taken at start and released when the process ends, however it ends."""

    def __init__(self, state_dir: Path):
        self.dir = Path(state_dir)
        self._lock: IO[str] | None = None

    def acquire(self) -> RunFile:
        """Take the state folder, or raise :class:`AlreadyRunning` naming the running `up`."""
        self.dir.mkdir(parents=True, exist_ok=True)
        handle = (self.dir / LOCK).open("a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            info = read(self.dir)
            where = f"dashboard at {info.dashboard_url} " if info and info.dashboard_url else ""
            raise AlreadyRunning(f"already running: {where}(pid {info.pid if info else '?'}), with state in "
                                 f"{self.dir}; stop it with Ctrl-C, or give this one another --state-dir") from None
        self._lock = handle
        return self

    def publish(self, info: RunInfo) -> None:
        path = self.dir / RUN
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(info), default=str))
        tmp.chmod(0o600)  # a configured Redis URL may carry a password
        os.replace(tmp, path)

    def release(self) -> None:
        (self.dir / RUN).unlink(missing_ok=True)
        if self._lock is not None:
            self._lock.close()  # closing drops the lock
            self._lock = None


def read(state_dir: Path) -> RunInfo | None:
    """The running `up` of ``state_dir``, or None when none runs there (no lock held, or no run file)."""
    lock = Path(state_dir) / LOCK
    if not lock.exists():
        return None
    with lock.open("a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pass  # held: an `up` runs
        else:
            return None  # we got it: nobody holds it, any run file is stale
    try:
        data = json.loads((Path(state_dir) / RUN).read_text())
        media = data.get("media_dir")
        return RunInfo(int(data["pid"]), str(data["redis_url"]), data.get("dashboard_url"),
                       Path(media) if media else None, dict(data.get("metrics") or {}))
    except (OSError, ValueError, KeyError, TypeError):
        return None
