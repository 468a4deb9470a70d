"""Which cameras one member holds, decided again every tick: registry x leases x fair share.

Producers and workers both split the cameras this way (docs/architecture.md, "Keyed by camera"),
each within its own role. Each tick:

1. refresh the member's heartbeat and count the members of its role alive;
2. reload the registry when its version moved (invalid configs are reported once and skipped);
3. renew the leases held; a camera whose lease another member holds now is given up;
4. cameras removed from the registry, disabled or made invalid are dropped (released);
5. cameras above the fair share are handed over (released, least preferred first), and free
   cameras are taken up to the fair share, most preferred first.

The caller follows :attr:`CameraOwnership.held` after each tick (starts or stops a capture, loads or
forgets a camera's tracker state), so a tick cut short by a Redis error is made good by the next;
this class holds no camera work itself.
"""

from __future__ import annotations

import logging

import redis

from maskwatch.cameras import CameraConfig, Registry, RegistryWatcher
from maskwatch.keys import Keys
from maskwatch.leases import Leases, fair_share, preference
from maskwatch.utils import now_ms

log = logging.getLogger(__name__)


class CameraOwnership:
    """The cameras a member (producer or worker, by its leases' role) holds."""

    def __init__(self, r: redis.Redis, keys: Keys, leases: Leases):
        self.r, self.keys, self.leases = r, keys, leases
        self.registry = RegistryWatcher(Registry(r, keys))
        self.started_ms = now_ms()
        self.alive = 1
        self.held: dict[str, CameraConfig] = {}
        self.enabled: dict[str, CameraConfig] = {}  # valid, enabled cameras of the registry
        self.unusable: dict[str, tuple[str, str | None]] = {}  # registered, not to hold: camera -> (detail, error)

    def tick(self) -> None:
        self.alive = self.leases.heartbeat(len(self.held), self.started_ms)
        self._reload()
        still = self.leases.renew(self.held)
        for cam in sorted(set(self.held) - still):
            log.warning("camera %s lease taken by another %s: giving it up", self.leases.role, self.leases.role,
                        extra={"cam": cam})
            self.held.pop(cam)
        dropped = [cam for cam in sorted(self.held) if cam in self.unusable or cam not in self.enabled]
        for cam in self.held.keys() - set(dropped):
            self.held[cam] = self.enabled[cam]  # the registry's config, changed or not
        for cam in dropped:
            self.held.pop(cam)
        self.leases.release([*dropped, *self._balance()])

    def _reload(self) -> None:
        if not self.registry.poll():
            return
        cams, errors = self.registry.cameras, self.registry.errors
        invalid = {cam: ("invalid config", error) for cam, error in errors.items()}
        for cam, why in invalid.items():
            if self.unusable.get(cam) != why:
                log.error("camera skipped, its config is invalid: %s", why[1], extra={"cam": cam})
        self.unusable = {**{c: ("disabled", None) for c, cfg in cams.items() if not cfg.enabled}, **invalid}
        self.enabled = {c: cfg for c, cfg in cams.items() if cfg.enabled}
        log.info("registry version %d: %d camera(s) enabled, %d not", self.registry.version, len(self.enabled),
                 len(self.unusable))

    def _balance(self) -> list[str]:
        """Hand over the cameras above the fair share (returned, to release) and take free ones up to it."""
        share = fair_share(len(self.enabled), self.alive)
        handed_over: list[str] = []
        for cam in preference(self.leases.id, self.held)[share:]:
            log.info("over the fair share of %d camera(s) with %d %s(s) alive: handing camera over",
                     share, self.alive, self.leases.role, extra={"cam": cam})
            self.held.pop(cam)
            handed_over.append(cam)
        for cam in preference(self.leases.id, set(self.enabled) - set(self.held)):
            if len(self.held) >= share:
                break
            if self.leases.acquire(cam):
                self.held[cam] = self.enabled[cam]
                log.info("lease taken (%d of %d camera(s) held here)", len(self.held), len(self.enabled),
                         extra={"cam": cam})
        return handed_over

    def release_all(self) -> None:
        """Release every lease and the heartbeat (clean shutdown)."""
        cams = sorted(self.held)
        self.held.clear()
        self.leases.release(cams)
        self.leases.leave()
