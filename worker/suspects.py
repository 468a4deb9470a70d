"""Tell a poison frame from a crashed worker: count the lone attempts on a redelivered frame in Redis.

A frame read again after its worker died (docs/architecture.md, "Poison frames") is not to blame
yet: a worker killed by anything else leaves its whole batch redelivered. Such a frame is run
alone, and before each lone attempt its count in ``mw:{cam}:suspects`` goes up by one; the commit
or the dead letter of the frame removes it. A count that is still there when the frame comes
back is a lone attempt that never finished: the worker died on this frame and nothing else. Only
after ``max_deliveries`` of those is the frame dead-lettered; good frames of a crashed batch are
each run alone once and counted.

The hash expires a day after its last attempt, so a count left by a worker killed between its
commit and the clean-up cannot grow into a dead letter.
"""

from __future__ import annotations

import contextlib

import redis

from maskwatch.keys import Keys

SUSPECTS_TTL_MS = 86_400_000


class Suspects:
    def __init__(self, r: redis.Redis, keys: Keys):
        self.r, self.keys = r, keys

    def begin(self, cam: str, entry_id: str) -> int:
        """Count a lone attempt on the frame, before it starts; returns the attempts begun, this one included."""
        key = self.keys.suspects(cam)
        with self.r.pipeline(transaction=True) as p:
            p.hincrby(key, entry_id, 1)
            p.pexpire(key, SUSPECTS_TTL_MS)
            attempts, _ = p.execute()
        return int(attempts)

    def undo(self, cam: str, entry_id: str) -> None:
        """The attempt broke off on a Redis error, not on the frame: take it back, if Redis lets us."""
        with contextlib.suppress(redis.RedisError):
            self.r.hincrby(self.keys.suspects(cam), entry_id, -1)

    def done(self, cam: str, entry_id: str) -> None:
        """The frame was committed or dead-lettered: forget its attempts."""
        self.r.hdel(self.keys.suspects(cam), entry_id)
