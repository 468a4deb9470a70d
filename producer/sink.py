"""Write frames onto their camera's frames stream: one Lua call checks the lease, numbers the frame and XADDs it.

Only the holder of the camera's lease writes: a producer that lost the lease (it stalled past the
TTL, or the camera was handed over or removed) and has not noticed yet cannot interleave its
frames with the new owner's.

Sequence numbers are dense and rise per camera across reconnects, producer restarts and lease
hand-overs between producers, because the counter lives in Redis (field ``seq`` of the camera's
status hash). The producer's own last number is a floor, in case Redis lost the counter (a
restart without persistence). The entry itself is :func:`maskwatch.codec.encode_frame`'s.

The script's keys (the camera's stream, status hash and lease) share the camera's hash tag, so it
runs in one Redis Cluster slot (docs/architecture.md, "Keyed by camera").
"""

from __future__ import annotations

import redis

from maskwatch.codec import Frame, encode_frame
from maskwatch.keys import Keys
from maskwatch.service import OUTAGE_ERRORS, RedisOutage

# KEYS: the camera's frames stream, its status hash, its lease. ARGV: producer id, floor, maxlen, then the
# entry's field/value pairs, where the value given for 'seq' is replaced by the number drawn here.
# Returns the seq, or 0 when the lease is not ours.
_ADD = """
if redis.call('GET', KEYS[3]) ~= ARGV[1] then return 0 end
local seq = redis.call('HINCRBY', KEYS[2], 'seq', 1)
local floor = tonumber(ARGV[2])
if seq <= floor then
  seq = floor + 1
  redis.call('HSET', KEYS[2], 'seq', seq)
end
local entry = {}
for i = 4, #ARGV, 2 do
  entry[#entry + 1] = ARGV[i]
  if ARGV[i] == 'seq' then entry[#entry + 1] = seq else entry[#entry + 1] = ARGV[i + 1] end
end
redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[3], '*', unpack(entry))
return seq
"""


class NotLeaseHolder(Exception):
    """The frame was not written: this producer does not hold the camera's lease (any more)."""


class FrameSink:
    """Sends frames; during a Redis outage it drops them (the caller counts) instead of blocking capture."""

    def __init__(self, r: redis.Redis, keys: Keys, producer_id: str, maxlen: int, outage: RedisOutage):
        self.keys, self.producer_id, self.maxlen, self.outage = keys, producer_id, maxlen, outage
        self._add = r.register_script(_ADD)
        self._last: dict[str, int] = {}  # camera -> last seq sent by this process

    def ready(self) -> bool:
        """Whether a frame should be encoded and sent now (Redis up, or this frame's turn to try it)."""
        return self.outage.may_try()

    def send(self, frame: Frame) -> int | None:
        """XADD ``frame`` (its ``seq`` is assigned here); the seq given, or None if Redis is unreachable.

        :class:`NotLeaseHolder` if the lease is not ours. Other Redis errors (out of memory, say)
        raise too: the capture loop restarts after a backoff.
        """
        args: list[bytes | str | int] = [self.producer_id, self._last.get(frame.cam, 0), self.maxlen]
        for name, value in encode_frame(frame).items():
            args += [name, value]
        try:
            seq = int(self._add(keys=[self.keys.frames(frame.cam), self.keys.cam_status(frame.cam),
                                      self.keys.lease(frame.cam)], args=args))
        except OUTAGE_ERRORS as exc:
            self.outage.failed(exc)
            return None
        self.outage.ok()
        if seq == 0:
            raise NotLeaseHolder(frame.cam)
        self._last[frame.cam] = seq
        return seq
