"""A background thread that runs one job every few seconds and survives a Redis outage."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from maskwatch.service import OUTAGE_ERRORS, RedisOutage

log = logging.getLogger(__name__)


class Periodic:
    """Runs ``job`` now and then every ``interval`` seconds until :meth:`stop`.

    Redis being unreachable goes to ``outage`` (logged once per outage), and while it lasts a run
    happens only when the outage gives it the turn to try Redis; any other error is logged with its
    traceback (once while it repeats) and the thread carries on.

    ``probes=False`` is for a job that may not call Redis at all (nothing to publish yet): during an
    outage it waits for the others to find Redis back, since its run without a call would end the
    outage falsely (and the outage would be said again, every second).
    """

    def __init__(self, name: str, interval: float, job: Callable[[], None], outage: RedisOutage,
                 probes: bool = True):
        self.name, self.interval, self.job, self.outage, self.probes = name, interval, job, outage, probes
        self._stop = threading.Event()
        self._last_error = ""
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> Periodic:
        self._thread.start()
        return self

    def alive(self) -> bool:
        return self._thread.is_alive()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            if (self.probes or not self.outage.down) and self.outage.may_try():
                self._run_once()
            if self._stop.wait(self.interval):
                return

    def _run_once(self) -> None:
        try:
            self.job()
        except OUTAGE_ERRORS as exc:
            self.outage.failed(exc)
        except Exception as exc:
            if str(exc) != self._last_error:
                log.exception("%s failed; trying again every %.1f s", self.name, self.interval)
            self._last_error = str(exc)
        else:
            self.outage.ok()
            self._last_error = ""
