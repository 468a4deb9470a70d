"""The cameras' frames streams and their consumer groups: create them, and read their lag, for every app.

Each camera has its own frames stream (docs/architecture.md, "Keyed by camera"), each with the
group ``workers``. A group starts at id ``0`` so frames sent before a worker took the camera are
still read. ``lag`` comes from ``XINFO GROUPS`` (Redis >= 7); where Redis cannot tell it (after
some deletions), it is None and callers fall back to their own estimate. Site-wide figures are
sums over the cameras that the readers make.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis

from maskwatch.keys import Keys
from maskwatch.utils import text


@dataclass(frozen=True)
class GroupInfo:
    lag: int | None
    pending: int
    consumers: int
    last_delivered: str


def create_group(r: redis.Redis, stream: str, group: str, start: str) -> None:
    """Create ``group`` on ``stream`` (and the stream) at ``start`` if missing; a no-op when it exists."""
    try:
        r.xgroup_create(stream, group, id=start, mkstream=True)
    except redis.ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


def ensure_group(r: redis.Redis, keys: Keys, cam: str) -> None:
    """The workers group on the camera's frames stream, from its first entry."""
    create_group(r, keys.frames(cam), keys.group, "0")


def group_info(r: redis.Redis, keys: Keys, cam: str) -> GroupInfo | None:
    """The camera's workers group: lag, pending count, consumers; None when the stream or group is missing."""
    try:
        groups = r.xinfo_groups(keys.frames(cam))
    except redis.ResponseError as exc:
        if "no such key" in str(exc).lower():
            return None
        raise
    return _workers_group(groups, keys)


def _workers_group(groups: list[dict], keys: Keys) -> GroupInfo | None:
    for g in groups:
        if text(g["name"]) == keys.group:
            lag = g.get("lag")
            return GroupInfo(lag=None if lag is None else int(lag), pending=int(g["pending"]),
                             consumers=int(g["consumers"]), last_delivered=text(g["last-delivered-id"]))
    return None


@dataclass(frozen=True)
class CameraQueue:
    """One camera's frames stream: entries kept, not yet read by its worker (lag), read but not committed."""

    length: int
    lag: int | None  # None when Redis cannot tell (after deletions in the stream)
    pending: int


@dataclass(frozen=True)
class SiteQueue:
    """The frames streams of all cameras, summed: what is waiting, what is read but not committed."""

    length: int
    lag: int | None  # None when Redis could not tell the lag of some camera
    pending: int
    cameras: int


def camera_queues(r: redis.Redis, keys: Keys, cams: list[str]) -> dict[str, CameraQueue]:
    """Each camera's frames stream, in one round trip whatever the number of cameras.

    A stream without its group yet (no worker has held the camera) lags by its whole length.
    """
    pipe = r.pipeline(transaction=False)
    for cam in cams:
        pipe.xlen(keys.frames(cam))
        pipe.xinfo_groups(keys.frames(cam))
    replies = pipe.execute(raise_on_error=False)
    out: dict[str, CameraQueue] = {}
    for cam, length, groups in zip(cams, replies[0::2], replies[1::2]):
        info = None if isinstance(groups, Exception) else _workers_group(groups, keys)
        n = int(length) if not isinstance(length, Exception) else 0
        out[cam] = (CameraQueue(n, n, 0) if info is None else CameraQueue(n, info.lag, info.pending))
    return out


def site_queue(r: redis.Redis, keys: Keys, cams: list[str]) -> SiteQueue:
    """The sums of every camera's frames stream (:func:`camera_queues`), in one round trip."""
    queues = list(camera_queues(r, keys, cams).values())
    lags = [q.lag for q in queues]
    return SiteQueue(length=sum(q.length for q in queues),
                     lag=None if any(lag is None for lag in lags) else sum(int(lag or 0) for lag in lags),
                     pending=sum(q.pending for q in queues), cameras=len(cams))
