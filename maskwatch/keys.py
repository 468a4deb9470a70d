"""Every Redis key MaskWatch uses, built in this one module (DESIGN.md: Redis contract).

Keys of one camera start with its hash tag, ``mw:{cam}:...`` (docs/architecture.md, "Keyed by
camera"): its frames stream, statistics, tracker state, status and leases share one Redis Cluster
slot, so the Lua scripts that write them stay in one slot.

>>> k = Keys("mw")
>>> k.frames("lobby"), k.stats("lobby", "20261125"), k.lease("lobby", "worker")
('mw:{lobby}:frames', 'mw:{lobby}:stats:20261125', 'mw:{lobby}:lease:worker')
"""

from __future__ import annotations

import re
from dataclasses import dataclass

SCHEMA_VERSION = 1
WORKERS_GROUP = "workers"
NOTIFIER_GROUP = "notifier"
CAMERA_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"  # the API's schema shows it too
_CAMERA_ID = re.compile(CAMERA_ID_PATTERN)


def tag(cam: str) -> str:
    """A camera's Redis Cluster hash tag: its keys share one slot, so its Lua commit stays in one slot."""
    return "{" + cam + "}"


def check_camera_id(cam: str) -> str:
    """Camera ids become parts of keys and URLs: letters, digits, ``_ . -``, at most 64."""
    if not isinstance(cam, str) or not _CAMERA_ID.fullmatch(cam):
        raise ValueError(f"camera id {cam!r} is not valid: use 1-64 letters, digits, '_', '.' or '-', "
                         "starting with a letter or digit")
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

    def lease(self, cam: str, role: str = "producer") -> str:
        """Who captures (role producer) or analyses (role worker) the camera: a member id with a TTL."""
        return self._k(tag(cam), "lease", role)

    def cam_status(self, cam: str) -> str:
        return self._k(tag(cam), "status")

    # streams
    def frames(self, cam: str) -> str:
        """The camera's frames stream: one stream a camera, so its frames are read in order by one worker."""
        return self._k(tag(cam), "frames")

    def camera_of_frames(self, stream: str) -> str:
        """The camera whose frames stream is ``stream`` (the inverse of :meth:`frames`).

        >>> Keys("mw").camera_of_frames("mw:{lobby}:frames")
        'lobby'
        """
        head, tail = f"{self.prefix}:{{", "}:frames"
        if not (stream.startswith(head) and stream.endswith(tail)):
            raise ValueError(f"{stream!r} is not a frames stream of prefix {self.prefix!r}")
        return stream[len(head):-len(tail)]

    def person(self, cam: str, n: int | str) -> str:
        """Person record of the camera's track ``n`` (JSON, expires after the retention)."""
        return self._k(tag(cam), "person", str(n))

    def people(self, cam: str) -> str:
        """The camera's person records: sorted set of track numbers by last-seen time (epoch ms)."""
        return self._k(tag(cam), "people")

    def tracks(self, cam: str) -> str:
        """The camera's tracker state (JSON), written by the same commit as the frame it follows."""
        return self._k(tag(cam), "tracks")

    def suspects(self, cam: str) -> str:
        """Hash: entry id -> isolated attempts begun on a redelivered frame of the camera (poison or crash?)."""
        return self._k(tag(cam), "suspects")

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
        return self._k(tag(cam), "stats", day)

    def totals(self, cam: str) -> str:
        return self._k(tag(cam), "totals")

    def throttle(self, cam: str) -> str:
        """Set NX with the throttle window when a violation event is written: one event a window."""
        return self._k(tag(cam), "throttle")

    def snap(self, event_id: str) -> str:
        return self._k("snap", event_id)

    def latest(self, cam: str) -> str:
        return self._k(tag(cam), "latest")

    # processes
    def worker(self, worker_id: str) -> str:
        return self._k("worker", worker_id)

    @property
    def worker_pattern(self) -> str:
        return self._k("worker", "*")

    @property
    def processes(self) -> str:
        """Hash: process name -> JSON state of each child ``maskwatch up`` runs (:mod:`maskwatch.processes`)."""
        return self._k("processes")

    def member(self, role: str, member_id: str) -> str:
        """A producer's or a worker's lease heartbeat, so the members of a role count each other (fair share)."""
        return self._k("member", role, member_id)

    def member_pattern(self, role: str) -> str:
        return self._k("member", role, "*")

    @property
    def dead_lettered(self) -> str:
        """Counter of frames moved to the dead-letter stream since the start."""
        return self._k("dlq", "count")

    # side jobs (issue 6)
    def alert(self, cam: str) -> str:
        return self._k(tag(cam), "alert")

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
