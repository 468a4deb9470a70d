"""Which cameras one member holds, decided again every tick: registry x leases x fair share.

Producers and workers both split the cameras this way (docs/architecture.md, "Keyed by camera"),
each within its own role. Each tick:

1. refresh the member's heartbeat and count the members of its role alive;
2. reload the registry when its version moved (invalid configs are reported once and skipped);
3. renew the leases held; a camera whose lease another member holds now is *lost*;
4. cameras removed from the registry, disabled or made invalid are *dropped* (released);
5. cameras above the fair share are *handed over* (released, least preferred first), and free
   cameras are *gained* up to the fair share, most preferred first.

The caller acts on the :class:`Changes` a tick returns (start or stop a capture, load or forget a
camera's tracker state); this class holds no camera work itself.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import redis

from maskwatch.cameras import CameraConfig, Registry, RegistryWatcher
from maskwatch.keys import Keys
from maskwatch.leases import Leases, fair_share, preference
from maskwatch.utils import now_ms

log = logging.getLogger(__name__)


@dataclass
class Changes:
    """What one tick changed; every list is of camera ids except ``gained`` and ``changed``."""

    gained: list[CameraConfig] = field(default_factory=list)
    changed: list[CameraConfig] = field(default_factory=list)  # held, and its config changed
    lost: list[str] = field(default_factory=list)  # another member holds the lease now
    handed_over: list[str] = field(default_factory=list)  # above the fair share: released
    removed: list[str] = field(default_factory=list)  # gone from the registry: released
    unusable: dict[str, tuple[str, str | None]] = field(default_factory=dict)  # disabled/invalid: (detail, error)

    @property
    def released(self) -> list[str]:
        return [*self.handed_over, *self.removed, *self.unusable]


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

    def tick(self) -> Changes:
        out = Changes()
        self.alive = self.leases.heartbeat(len(self.held), self.started_ms)
        self._reload()
        still = self.leases.renew(self.held)
        for cam in sorted(set(self.held) - still):
            log.warning("camera %s lease taken by another %s: giving it up", self.leases.role, self.leases.role,
                        extra={"cam": cam})
            self.held.pop(cam)
            out.lost.append(cam)
        for cam in sorted(self.held):
            if cam in self.unusable:
                out.unusable[cam] = self.unusable[cam]
            elif cam not in self.enabled:
                out.removed.append(cam)
            elif self.enabled[cam] != self.held[cam]:
                self.held[cam] = self.enabled[cam]
                out.changed.append(self.enabled[cam])
        for cam in [*out.unusable, *out.removed]:
            self.held.pop(cam)
        self._balance(out)
        self.leases.release(out.released)
        return out

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

    def _balance(self, out: Changes) -> None:
        share = fair_share(len(self.enabled), self.alive)
        for cam in preference(self.leases.id, self.held)[share:]:
            log.info("over the fair share of %d camera(s) with %d %s(s) alive: handing camera over",
                     share, self.alive, self.leases.role, extra={"cam": cam})
            self.held.pop(cam)
            out.handed_over.append(cam)
        for cam in preference(self.leases.id, set(self.enabled) - set(self.held)):
            if len(self.held) >= share:
                break
            if self.leases.acquire(cam):
                self.held[cam] = self.enabled[cam]
                out.gained.append(self.enabled[cam])
                log.info("lease taken (%d of %d camera(s) held here)", len(self.held), len(self.enabled),
                         extra={"cam": cam})

    def release_all(self) -> list[str]:
        """Release every lease and the heartbeat (clean shutdown); the cameras that were held."""
        cams = sorted(self.held)
        self.held.clear()
        self.leases.release(cams)
        self.leases.leave()
        return cams
