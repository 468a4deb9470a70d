"""Whether Redis answers, shared by every thread of the producer.

An outage is logged once when it starts and once when it ends, however many threads and frames
meet it. While it lasts, frame writes try Redis at most once a second (the rest are dropped and
counted), so capture goes on at full pace and nothing piles up in memory.
"""

from __future__ import annotations

import logging
import threading
import time

log = logging.getLogger(__name__)

PROBE_S = 1.0  # during an outage, one frame write a second tries Redis


class RedisOutage:
    def __init__(self, where: str):
        self.where = where  # the masked Redis URL, for the log lines
        self._lock = threading.Lock()
        self._since: float | None = None
        self._last_try = 0.0

    @property
    def down(self) -> bool:
        return self._since is not None

    def failed(self, exc: Exception) -> None:
        """A Redis call failed; the first failure of an outage is logged."""
        with self._lock:
            if self._since is not None:
                return
            self._since = time.monotonic()
        log.warning("Redis at %s is unreachable (%s): capture goes on, frames are dropped and counted until it is back",
                    self.where, exc)

    def ok(self) -> None:
        """A Redis call succeeded; ends an outage."""
        if self._since is None:  # the common case, without the lock
            return
        with self._lock:
            if self._since is None:
                return
            lasted, self._since = time.monotonic() - self._since, None
        log.info("Redis at %s is back after %.1f s", self.where, lasted)

    def may_try(self) -> bool:
        """Whether a frame write should go to Redis now: always, except during an outage once a second."""
        if self._since is None:
            return True
        with self._lock:
            now = time.monotonic()
            if now - self._last_try < PROBE_S:
                return False
            self._last_try = now
            return True
