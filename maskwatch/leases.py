"""Camera leases and member heartbeats: how producers, and workers, split the cameras among themselves.

Producers and workers each split the cameras within their *role* (docs/architecture.md, "Keyed by
camera"). A lease is ``keys.lease(cam, role)`` = member id, set with ``NX PX ttl``. Its holder
renews it by compare-and-extend (a lease that expired while nobody took it is taken back, e.g.
after a Redis restart) and deletes it by compare-and-delete on a clean shutdown; a member that
dies simply stops renewing, and the others take its cameras once the TTL has run out.

Each member also keeps ``keys.member(role, id)`` alive with the same TTL, so every member knows
how many of its role are alive and takes no more than its fair share, ``ceil(cameras / members)``.
Lease keys carry the camera's hash tag, so each renewal is a one-slot script (Redis Cluster).

>>> fair_share(5, 2), fair_share(4, 2), fair_share(0, 3), fair_share(3, 0)
(3, 2, 0, 3)
>>> preference("p1", ["a", "b", "c", "d"]) == preference("p1", ["d", "c", "b", "a"])
True
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import socket
from collections.abc import Iterable

import redis

from maskwatch.keys import Keys
from maskwatch.utils import now_ms

PRODUCER, WORKER = "producer", "worker"
ROLES = (PRODUCER, WORKER)

# KEYS[1]: a camera's lease. ARGV[1]: member id, ARGV[2]: TTL ms.
# Extend it if we hold it, take it if nobody does (1), else report it lost (0).
_RENEW = """
local owner = redis.call('GET', KEYS[1])
if owner == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
elseif not owner then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""

# KEYS[1]: a camera's lease. ARGV[1]: member id. Delete it only if we hold it.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def fair_share(cameras: int, producers: int) -> int:
    return math.ceil(cameras / max(1, producers))


def preference(member_id: str, cams: Iterable[str]) -> list[str]:
    """The cameras in this member's order of preference (rendezvous hashing).

    Members prefer different cameras, so when several grab at once they rarely collide, and a
    member giving up its surplus gives up the ones it likes least.
    """
    return sorted(cams, key=lambda cam: hashlib.sha1(f"{member_id}\0{cam}".encode()).digest())


def new_member_id() -> str:
    """host-pid-random: unique even for two members in one process."""
    return f"{socket.gethostname()}-{os.getpid()}-{os.urandom(2).hex()}"


class Leases:
    """The leases of one member (a producer or a worker, by ``role``) on the cameras."""

    def __init__(self, r: redis.Redis, keys: Keys, member_id: str, ttl_ms: int, role: str = PRODUCER):
        if role not in ROLES:
            raise ValueError(f"lease role {role!r}: choose one of {', '.join(ROLES)}")
        self.r, self.keys, self.id, self.ttl_ms, self.role = r, keys, member_id, ttl_ms, role
        self._renew = r.register_script(_RENEW)
        self._release = r.register_script(_RELEASE)

    def acquire(self, cam: str) -> bool:
        return bool(self.r.set(self.keys.lease(cam, self.role), self.id, nx=True, px=self.ttl_ms))

    def renew(self, cams: Iterable[str]) -> set[str]:
        """The cameras of ``cams`` still ours after renewing; the others went to another member."""
        cams = list(cams)
        if not cams:
            return set()
        pipe = self.r.pipeline(transaction=False)
        for cam in cams:
            self._renew(keys=[self.keys.lease(cam, self.role)], args=[self.id, self.ttl_ms], client=pipe)
        return {cam for cam, ok in zip(cams, pipe.execute()) if ok}

    def release(self, cams: Iterable[str]) -> None:
        cams = list(cams)
        if cams:
            pipe = self.r.pipeline(transaction=False)
            for cam in cams:
                self._release(keys=[self.keys.lease(cam, self.role)], args=[self.id], client=pipe)
            pipe.execute()

    def heartbeat(self, cameras: int, started_ms: int) -> int:
        """Refresh this member's heartbeat; returns how many of its role are alive, this one included."""
        info = {"id": self.id, "host": socket.gethostname(), "pid": os.getpid(), "cameras": cameras,
                "started": started_ms, "seen": now_ms()}
        self.r.set(self.keys.member(self.role, self.id), json.dumps(info), px=self.ttl_ms)
        return max(1, sum(1 for _ in self.r.scan_iter(match=self.keys.member_pattern(self.role), count=1000)))

    def leave(self) -> None:
        """Drop the heartbeat so the others count one member fewer at once."""
        self.r.delete(self.keys.member(self.role, self.id))
