"""Camera leases and producer heartbeats: how producers split the cameras among themselves.

A lease is ``keys.lease(cam)`` = producer id, set with ``NX PX ttl``. Its holder renews it by
compare-and-extend (a lease that expired while nobody took it is taken back, e.g. after a Redis
restart) and deletes it by compare-and-delete on a clean shutdown; a producer that dies simply
stops renewing, and the others take its cameras once the TTL has run out.

Each producer also keeps ``keys.producer(id)`` alive with the same TTL, so every producer knows
how many are alive and takes no more than its fair share, ``ceil(cameras / producers)``.

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
import time
from collections.abc import Iterable

import redis

from maskwatch.keys import Keys

# For each key: extend if we hold it, take it if nobody does, else report it lost (0).
_RENEW = """
local out = {}
for i, key in ipairs(KEYS) do
  local owner = redis.call('GET', key)
  if owner == ARGV[1] then
    redis.call('PEXPIRE', key, ARGV[2])
    out[i] = 1
  elseif not owner then
    redis.call('SET', key, ARGV[1], 'PX', ARGV[2])
    out[i] = 1
  else
    out[i] = 0
  end
end
return out
"""

_RELEASE = """
local n = 0
for _, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[1] then n = n + redis.call('DEL', key) end
end
return n
"""


def fair_share(cameras: int, producers: int) -> int:
    return math.ceil(cameras / max(1, producers))


def preference(producer_id: str, cams: Iterable[str]) -> list[str]:
    """The cameras in this producer's order of preference (rendezvous hashing).

    Producers prefer different cameras, so when several grab at once they rarely collide, and a
    producer giving up its surplus gives up the ones it likes least.
    """
    return sorted(cams, key=lambda cam: hashlib.sha1(f"{producer_id}\0{cam}".encode()).digest())


def new_producer_id() -> str:
    """host-pid-random: unique even for two producers in one process."""
    return f"{socket.gethostname()}-{os.getpid()}-{os.urandom(2).hex()}"


class Leases:
    def __init__(self, r: redis.Redis, keys: Keys, producer_id: str, ttl_ms: int):
        self.r, self.keys, self.id, self.ttl_ms = r, keys, producer_id, ttl_ms
        self._renew = r.register_script(_RENEW)
        self._release = r.register_script(_RELEASE)

    def acquire(self, cam: str) -> bool:
        return bool(self.r.set(self.keys.lease(cam), self.id, nx=True, px=self.ttl_ms))

    def renew(self, cams: Iterable[str]) -> set[str]:
        """The cameras of ``cams`` still ours after renewing; the others went to another producer."""
        cams = list(cams)
        if not cams:
            return set()
        held = self._renew(keys=[self.keys.lease(c) for c in cams], args=[self.id, self.ttl_ms])
        return {cam for cam, ok in zip(cams, held) if ok}

    def release(self, cams: Iterable[str]) -> None:
        cams = list(cams)
        if cams:
            self._release(keys=[self.keys.lease(c) for c in cams], args=[self.id])

    def heartbeat(self, cameras: int, started_ms: int) -> int:
        """Refresh this producer's heartbeat; returns how many producers are alive, this one included."""
        info = {"id": self.id, "host": socket.gethostname(), "pid": os.getpid(), "cameras": cameras,
                "started": started_ms, "seen": time.time_ns() // 1_000_000}
        self.r.set(self.keys.producer(self.id), json.dumps(info), px=self.ttl_ms)
        return max(1, sum(1 for _ in self.r.scan_iter(match=self.keys.producer_pattern, count=1000)))

    def leave(self) -> None:
        """Drop the heartbeat so the others count one producer fewer at once."""
        self.r.delete(self.keys.producer(self.id))
