"""The cameras' frames streams as the dashboard shows them: each camera's on its own, and all summed.

Each camera has a frames stream of its own, read by the one worker holding the camera's worker
lease (docs/architecture.md, "Keyed by camera"). Site-wide figures are sums over the registered
cameras, made here by the reader (:func:`maskwatch.streams.site_queue`), never keys a writer keeps.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import cast

import redis

from dashboard.models import CameraQueue, Queue
from maskwatch import streams
from maskwatch.keys import Keys
from maskwatch.leases import WORKER
from maskwatch.utils import text


def holders(r: redis.Redis, keys: Keys, cams: list[str]) -> dict[str, str | None]:
    """The worker holding each camera's worker lease (None when no worker does), in one round trip."""
    with r.pipeline(transaction=False) as p:
        for cam in cams:
            p.get(keys.lease(cam, WORKER))
        replies = cast(list[bytes | None], p.execute())
    return {cam: None if raw is None else text(raw) for cam, raw in zip(cams, replies)}


def camera_queues(r: redis.Redis, keys: Keys, cams: list[str]) -> dict[str, CameraQueue]:
    """Each camera's frames stream: length, lag and pending frames, and the worker reading it."""
    held = holders(r, keys, cams)
    return {cam: CameraQueue(length=q.length, lag=q.lag, pending=q.pending, worker=held[cam])
            for cam, q in streams.camera_queues(r, keys, cams).items()}


def site(r: redis.Redis, keys: Keys, cams: list[str], workers: Iterable[str | None]) -> Queue:
    """Every camera's stream summed, in one round trip; ``workers``: each camera's worker (or None)."""
    q = streams.site_queue(r, keys, cams)
    return Queue(length=q.length, lag=q.lag, pending=q.pending, consumers=len({w for w in workers if w}),
                 cameras=q.cameras)
