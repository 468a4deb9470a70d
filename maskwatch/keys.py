"""Every Redis key MaskWatch uses, built in this one module (DESIGN.md: Redis contract).

>>> k = Keys("mw")
>>> k.frames, k.stats("lobby", "20261125"), k.lease("lobby")
('mw:frames', 'mw:stats:lobby:20261125', 'mw:lease:lobby')
"""

from __future__ import annotations

import re
from dataclasses import dataclass

SCHEMA_VERSION = 1
WORKERS_GROUP = "workers"
NOTIFIER_GROUP = "notifier"
_CAMERA_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def check_camera_id(cam: str) -> str:
    """Camera ids become parts of keys and URLs: letters, digits, ``_ . -``, at most 64."""
    if not isinstance(cam, str) or not _CAMERA_ID.match(cam):
        raise ValueError(
            f"camera id {cam!r} is not valid: use 1-64 letters, digits, '_', '.' or '-', starting with a letter or digit"
        )
    return cam


@dataclass(frozen=True)
class Keys:
    prefix: str = "mw"

    def _k(self, *parts: str) -> str:
        return ":".join((self.prefix, *parts))

    # registry
    @property
    def cameras(self) -> str:
        return self._k("cameras")

    @property
    def cameras_version(self) -> str:
        return self._k("cameras", "version")

    def lease(self, cam: str) -> str:
        return self._k("lease", cam)

    def cam_status(self, cam: str) -> str:
        return self._k("cam", cam, "status")

    # streams
    @property
    def frames(self) -> str:
        return self._k("frames")

    @property
    def group(self) -> str:
        return WORKERS_GROUP

    @property
    def results(self) -> str:
        return self._k("results")

    @property
    def events(self) -> str:
        return self._k("events")

    @property
    def dlq(self) -> str:
        return self._k("dlq")

    # statistics
    def stats(self, cam: str, day: str) -> str:
        return self._k("stats", cam, day)

    def totals(self, cam: str) -> str:
        return self._k("totals", cam)

    def throttle(self, cam: str) -> str:
        """Set NX with the throttle window when a violation event is written: one event a window."""
        return self._k("throttle", cam)

    def snap(self, event_id: str) -> str:
        return self._k("snap", event_id)

    def latest(self, cam: str) -> str:
        return self._k("latest", cam)

    # processes
    def worker(self, worker_id: str) -> str:
        return self._k("worker", worker_id)

    @property
    def worker_pattern(self) -> str:
        return self._k("worker", "*")

    def producer(self, producer_id: str) -> str:
        return self._k("producer", producer_id)

    @property
    def producer_pattern(self) -> str:
        return self._k("producer", "*")

    @property
    def dead_lettered(self) -> str:
        """Counter of frames moved to the dead-letter stream since the start."""
        return self._k("dlq", "count")

    # side jobs (issue 6)
    def alert(self, cam: str) -> str:
        return self._k("alert", cam)

    @property
    def deliveries(self) -> str:
        return self._k("deliveries")

    @property
    def analyses(self) -> str:
        return self._k("analyses")

    def analysis(self, job_id: str) -> str:
        return self._k("analysis", job_id)

    def upload(self, upload_id: str) -> str:
        """A video uploaded on the dashboard, kept until its analysis job has read it."""
        return self._k("upload", upload_id)
