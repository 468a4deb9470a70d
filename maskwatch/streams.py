"""The frames stream's consumer group: create it, and read its lag, in one place for every app.

The group starts at id ``0`` so frames sent before the first worker joined are still read.
``lag`` comes from ``XINFO GROUPS`` (Redis >= 7); where Redis cannot tell it (after some
deletions), it is None and callers fall back to their own estimate.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis

from maskwatch.keys import Keys


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


def ensure_group(r: redis.Redis, keys: Keys) -> None:
    """The workers group on the frames stream, from its first entry."""
    create_group(r, keys.frames, keys.group, "0")


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def group_info(r: redis.Redis, keys: Keys) -> GroupInfo | None:
    """The workers group's lag, pending count and consumers; None when the stream or group is missing."""
    try:
        groups = r.xinfo_groups(keys.frames)
    except redis.ResponseError as exc:
        if "no such key" in str(exc).lower():
            return None
        raise
    for g in groups:
        if _text(g["name"]) == keys.group:
            lag = g.get("lag")
            return GroupInfo(lag=None if lag is None else int(lag), pending=int(g["pending"]),
                             consumers=int(g["consumers"]), last_delivered=_text(g["last-delivered-id"]))
    return None
