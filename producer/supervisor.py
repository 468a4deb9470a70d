"""Which cameras this producer captures: the ones :class:`maskwatch.ownership.CameraOwnership` holds.

The ownership (registry x leases x fair share, shared with the workers) decides each tick which
cameras this producer holds, and releases the leases of those it gives up. The supervisor then
makes the capture loops follow it (a third of the lease TTL apart, at most a second):

- a camera held without a loop: its group is made (so no frame is sent that no worker will
  read) and its capture starts; one whose config changed restarts with the new config;
- a loop whose camera is no longer held stops, and then, by what became of the camera: removed
  from the registry, its status is deleted; disabled or invalid, a last status ``offline`` says
  why; lost to another producer or handed over, the new owner writes its status from then on.

The loops follow what the ownership holds, not only the changes of the last tick, so a tick that
Redis broke off half-way (its changes never returned) is caught up by the next one.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import redis

from maskwatch.cameras import CameraConfig
from maskwatch.keys import Keys
from maskwatch.leases import Leases
from maskwatch.ownership import CameraOwnership
from maskwatch.streams import ensure_group
from producer.capture import CaptureLoop
from producer.metrics import ProducerMetrics
from producer.status import OFFLINE, CameraStats, publish

log = logging.getLogger(__name__)

LoopFactory = Callable[[CameraConfig, CameraStats], CaptureLoop]


class Supervisor:
    def __init__(self, r: redis.Redis, keys: Keys, leases: Leases, metrics: ProducerMetrics, start_loop: LoopFactory):
        self.r, self.keys, self.leases, self.metrics, self.start_loop = r, keys, leases, metrics, start_loop
        self.ownership = CameraOwnership(r, keys, leases)
        self._loops: dict[str, CaptureLoop] = {}
        self._stats: dict[str, CameraStats] = {}
        # Held while the status thread writes, so a dropped camera's status is never written again.
        self._lock = threading.Lock()

    @property
    def cameras(self) -> list[str]:
        """The cameras this producer captures now."""
        return sorted(self._loops)

    def publish_status(self) -> None:
        """Write the status hash of every camera captured here (the status thread, every second)."""
        with self._lock:
            publish(self.r, self.keys, self.leases.id, self._stats.values())

    def tick(self) -> None:
        # The ownership releases the leases of the cameras it gives up before it returns, so a frame
        # still on its way is refused and cannot recreate a status deleted below.
        self.ownership.tick()
        held, enabled, unusable = self.ownership.held, self.ownership.enabled, self.ownership.unusable
        for cam in sorted(self._loops.keys() - held.keys()):
            if cam in unusable:
                log.info("camera %s: capture stopped", unusable[cam][0], extra={"cam": cam})
                self._drop(cam, final=unusable[cam])
            elif cam not in enabled:
                log.info("camera removed from the registry: capture stopped", extra={"cam": cam})
                self._drop(cam, delete_status=True)
            else:
                log.info("camera given up (lease lost or handed over): capture stopped here", extra={"cam": cam})
                self._drop(cam)
        for cam, cfg in sorted(held.items()):
            if cam not in self._loops:
                ensure_group(self.r, self.keys, cam)
                stats = CameraStats(cam, self.metrics)
                with self._lock:
                    self._stats[cam] = stats
                self._loops[cam] = self.start_loop(cfg, stats)
                log.info("capturing (%d camera(s) here)", len(self._loops), extra={"cam": cam})
            elif cfg != self._loops[cam].cam:
                log.info("camera config changed: restarting its capture", extra={"cam": cam})
                self._loops[cam].stop()
                self._loops[cam] = self.start_loop(cfg, self._stats[cam])

    def _drop(self, cam: str, delete_status: bool = False, final: tuple[str, str | None] | None = None) -> None:
        """Stop capturing ``cam`` (its lease is gone already), then leave a last status or delete it."""
        self._loops.pop(cam).stop()
        with self._lock:  # once popped under the lock, no status write of the status thread includes it
            stats = self._stats.pop(cam)
        if final:
            stats.set_state(OFFLINE, *final)
            publish(self.r, self.keys, self.leases.id, [stats])
        if delete_status:
            self.r.delete(self.keys.cam_status(cam))
        self.metrics.forget(cam)

    def shutdown(self, grace_s: float = 3.0) -> None:
        """Stop every capture, mark the cameras stopped, release their leases and leave."""
        loops = {cam: self._loops.pop(cam) for cam in list(self._loops)}
        for loop in loops.values():
            loop.stop()
        deadline = time.monotonic() + grace_s
        for loop in loops.values():
            loop.join(max(0.0, deadline - time.monotonic()))
        with self._lock:
            stats = [self._stats.pop(cam) for cam in loops]
        for s in stats:
            s.set_state(OFFLINE, "stopped")
        try:
            publish(self.r, self.keys, self.leases.id, stats)
            self.ownership.release_all()
        except redis.RedisError as exc:
            log.warning("Redis unreachable at shutdown (%s): the leases and the heartbeat expire within %d ms",
                        exc, self.leases.ttl_ms)
