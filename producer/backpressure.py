"""Backpressure: read each camera's workers group lag and skip that camera's frames above a threshold.

Each camera has its own frames stream and group (docs/architecture.md, "Keyed by camera"), read
in order by the one worker that holds it, so a slow worker lags on its own cameras: only those
skip frames at the source, the cameras of the other workers flow on.

The lag is ``XINFO GROUPS``' ``lag`` field (entries not yet delivered to the group, Redis >= 7).
When Redis cannot compute it (``nil`` after deletions in the stream), it is estimated as pending
plus undelivered entries, counted in Redis without moving the frames. The producer also makes sure
each camera's group exists, created at the start of the stream (id ``0``), so the frames sent
before a worker takes the camera are read too.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import redis

from maskwatch.keys import Keys
from maskwatch.streams import ensure_group, group_info
from producer.metrics import ProducerMetrics

log = logging.getLogger(__name__)

# Entries after the group's last delivered id, counted up to a limit (ARGV[2]) inside Redis.
_UNDELIVERED = "return #redis.call('XRANGE', KEYS[1], '(' .. ARGV[1], '+', 'COUNT', ARGV[2])"


class Backpressure:
    """Which cameras' groups lag more than ``threshold`` frames; polled by one thread, read by every capture thread."""

    def __init__(self, r: redis.Redis, keys: Keys, threshold: int, metrics: ProducerMetrics):
        self.r, self.keys, self.threshold, self.metrics = r, keys, threshold, metrics
        self._undelivered = r.register_script(_UNDELIVERED)
        self.lags: dict[str, int] = {}  # camera -> lag, as last polled
        self._lagging: frozenset[str] = frozenset()  # replaced whole, so capture threads read it without a lock

    def active(self, cam: str) -> bool:
        """Whether ``cam``'s frames are to be skipped at the source now."""
        return cam in self._lagging

    def lag_now(self, cam: str) -> int:
        """The camera's group lag, creating the group (and the stream) if missing, e.g. after a Redis restart."""
        group = group_info(self.r, self.keys, cam)
        if group is None:
            ensure_group(self.r, self.keys, cam)
            return 0
        if group.lag is not None:
            return group.lag
        undelivered = int(self._undelivered(keys=[self.keys.frames(cam)],
                                            args=[group.last_delivered, self.threshold + 1]))
        return group.pending + undelivered

    def poll(self, cams: Iterable[str]) -> None:
        """Read the lag of ``cams`` (the cameras captured here now); cameras no longer given are forgotten."""
        lags = {cam: self.lag_now(cam) for cam in cams}
        for cam in self.lags.keys() - lags.keys():
            self.metrics.camera_lag.remove(cam)
        for cam, lag in lags.items():
            self.metrics.camera_lag.labels(cam).set(lag)
        self.metrics.lag.set(sum(lags.values()))
        lagging = frozenset(cam for cam, lag in lags.items() if lag > self.threshold)
        for cam in sorted(lagging - self._lagging):
            log.warning("workers lag %d frames on this camera (threshold %d): skipping its frames at the source",
                        lags[cam], self.threshold, extra={"cam": cam})
        for cam in sorted((self._lagging - lagging) & lags.keys()):
            log.info("workers caught up (lag %d): sending frames again", lags[cam], extra={"cam": cam})
        self.lags, self._lagging = lags, lagging
