"""Which cameras this producer captures, decided again every tick: registry x leases x fair share.

Each tick (a third of the lease TTL, at most a second):

1. refresh this producer's heartbeat and count the producers alive;
2. reload the registry when ``keys.cameras_version`` moved; invalid configs are logged once and skipped;
3. renew our leases; a camera whose lease another producer holds now is no longer captured here;
4. stop the cameras removed (their status is deleted) or disabled (status ``offline``), and
   restart those whose config changed;
5. give up the cameras above our fair share and take free ones up to it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import redis

from maskwatch.cameras import CameraConfig, Registry
from maskwatch.keys import Keys
from producer.capture import CaptureLoop
from producer.leases import Leases, fair_share, preference
from producer.metrics import ProducerMetrics
from producer.status import OFFLINE, CameraStats, publish

log = logging.getLogger(__name__)

LoopFactory = Callable[[CameraConfig, CameraStats], CaptureLoop]


class Supervisor:
    def __init__(self, r: redis.Redis, keys: Keys, leases: Leases, metrics: ProducerMetrics, start_loop: LoopFactory):
        self.r, self.keys, self.leases, self.metrics, self.start_loop = r, keys, leases, metrics, start_loop
        self.registry = Registry(r, keys)
        self.started_ms = time.time_ns() // 1_000_000
        self.alive = 1
        self._version: int | None = None
        self._enabled: dict[str, CameraConfig] = {}  # valid, enabled cameras of the registry
        self._unusable: dict[str, tuple[str, str | None]] = {}  # registered, not to capture: camera -> (detail, error)
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
        self.alive = self.leases.heartbeat(len(self._loops), self.started_ms)
        self._reload()
        for cam in set(self._loops) - self.leases.renew(self._loops):
            log.warning("camera lease taken by another producer: capture stopped here", extra={"cam": cam})
            self._drop(cam, release=False)
        for cam, loop in list(self._loops.items()):
            if cam in self._unusable:
                log.info("camera %s: capture stopped", self._unusable[cam][0], extra={"cam": cam})
                self._drop(cam, final=self._unusable[cam])
            elif cam not in self._enabled:
                log.info("camera removed from the registry: capture stopped", extra={"cam": cam})
                self._drop(cam, delete_status=True)
            elif self._enabled[cam] != loop.cam:
                log.info("camera config changed: restarting its capture", extra={"cam": cam})
                loop.stop()
                self._loops[cam] = self.start_loop(self._enabled[cam], self._stats[cam])
        self._balance()

    def _reload(self) -> None:
        version = self.registry.version()
        if version == self._version:
            return
        cams, errors = self.registry.all()
        invalid = {cam: ("invalid config", error) for cam, error in errors.items()}
        for cam, why in invalid.items():
            if self._unusable.get(cam) != why:
                log.error("camera skipped, its config is invalid: %s", why[1], extra={"cam": cam})
        self._unusable = {**{c: ("disabled", None) for c, cfg in cams.items() if not cfg.enabled}, **invalid}
        self._enabled = {c: cfg for c, cfg in cams.items() if cfg.enabled}
        self._version = version
        log.info("registry version %d: %d camera(s) to capture, %d not", version, len(self._enabled), len(self._unusable))

    def _balance(self) -> None:
        share = fair_share(len(self._enabled), self.alive)
        for cam in preference(self.leases.id, self._loops)[share:]:
            log.info("over the fair share of %d camera(s) with %d producer(s) alive: handing camera over",
                     share, self.alive, extra={"cam": cam})
            self._drop(cam)
        for cam in preference(self.leases.id, set(self._enabled) - set(self._loops)):
            if len(self._loops) >= share:
                break
            if self.leases.acquire(cam):
                stats = CameraStats(cam, self.metrics)
                with self._lock:
                    self._stats[cam] = stats
                self._loops[cam] = self.start_loop(self._enabled[cam], stats)
                log.info("lease taken: capturing (%d of %d camera(s) here)", len(self._loops), len(self._enabled),
                         extra={"cam": cam})

    def _drop(self, cam: str, release: bool = True, delete_status: bool = False,
              final: tuple[str, str | None] | None = None) -> None:
        """Stop capturing ``cam``, release its lease, then leave a last status or delete it."""
        self._loops.pop(cam).stop()
        with self._lock:  # once popped under the lock, no status write of the status thread includes it
            stats = self._stats.pop(cam)
        if release:  # first: a frame still on its way is refused and cannot recreate the status
            self.leases.release([cam])
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
            self.leases.release(loops)
            self.leases.leave()
        except redis.RedisError as exc:
            log.warning("Redis unreachable at shutdown (%s): the leases and the heartbeat expire within %d ms",
                        exc, self.leases.ttl_ms)
