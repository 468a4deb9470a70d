"""Backpressure: read the workers group's lag and tell the capture loops to skip frames above a threshold.

The lag is ``XINFO GROUPS``' ``lag`` field (entries not yet delivered to the group, Redis >= 7).
When Redis cannot compute it (``nil`` after deletions in the stream), it is estimated as pending
plus undelivered entries, counted in Redis without moving the frames. The producer also makes sure
the group exists, created at the start of the stream (id ``0``), so the frames sent before the
first worker starts are read too.
"""

from __future__ import annotations

import logging

import redis

from maskwatch.keys import Keys
from maskwatch.streams import ensure_group, group_info
from producer.metrics import ProducerMetrics

log = logging.getLogger(__name__)

# Entries after the group's last delivered id, counted up to a limit (ARGV[2]) inside Redis.
_UNDELIVERED = "return #redis.call('XRANGE', KEYS[1], '(' .. ARGV[1], '+', 'COUNT', ARGV[2])"


class Backpressure:
    """``active`` while the group lags more than ``threshold`` frames; read by every capture thread."""

    def __init__(self, r: redis.Redis, keys: Keys, threshold: int, metrics: ProducerMetrics):
        self.r, self.keys, self.threshold, self.metrics = r, keys, threshold, metrics
        self._undelivered = r.register_script(_UNDELIVERED)
        self.lag = 0
        self.active = False

    def lag_now(self) -> int:
        """The group's lag, creating the group (and the stream) if missing, e.g. after a Redis restart."""
        group = group_info(self.r, self.keys)
        if group is None:
            ensure_group(self.r, self.keys)
            return 0
        if group.lag is not None:
            return group.lag
        undelivered = int(self._undelivered(keys=[self.keys.frames], args=[group.last_delivered, self.threshold + 1]))
        return group.pending + undelivered

    def poll(self) -> None:
        self.lag = self.lag_now()
        self.metrics.lag.set(self.lag)
        active = self.lag > self.threshold
        if active != self.active:
            if active:
                log.warning("workers lag %d frames (threshold %d): skipping frames at the source", self.lag, self.threshold)
            else:
                log.info("workers caught up (lag %d): sending frames again", self.lag)
        self.active = active
