"""Move frames that cannot be processed to the dead-letter stream, acknowledged, with the reason.

A corrupt JPEG, a malformed entry or a frame that failed too many deliveries lands in
``mw:dlq`` (with its camera, its original fields but the image, the error and the delivery count)
and is acknowledged on its camera's stream in the same script, so it never blocks the group and is
never counted.
"""

from __future__ import annotations

import logging

import redis

from maskwatch.keys import Keys
from maskwatch.utils import flat_fields, text

log = logging.getLogger(__name__)
DLQ_MAXLEN = 10_000

# KEYS: 1 the camera's frames stream, 2 the dead-letter stream, 3 the dead-letter counter.
# ARGV: 1 group, 2 entry id, 3 dead-letter MAXLEN, 4.. the dead-letter entry's field/value pairs.
_DEAD_LETTER = """
if redis.call('XACK', KEYS[1], ARGV[1], ARGV[2]) == 0 then return 0 end
local f = {}
for i = 4, #ARGV do f[#f + 1] = ARGV[i] end
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*', unpack(f))
redis.call('INCR', KEYS[3])
return 1
"""


class DeadLetters:
    def __init__(self, r: redis.Redis, keys: Keys, consumer: str):
        self.r, self.keys, self.consumer = r, keys, consumer
        self.script = r.register_script(_DEAD_LETTER)

    def send(self, cam: str, entry_id: str, fields: dict[bytes, bytes], error: str, deliveries: int) -> bool:
        """Dead-letter one entry of ``cam``'s stream; False if another worker had already acknowledged it."""
        kept = {text(k): v for k, v in fields.items() if k != b"jpg"}
        entry: dict[str, bytes | str | int] = {
            **kept, "stream_cam": cam, "entry": entry_id, "error": error[:500], "deliveries": deliveries,
            "worker": self.consumer, "jpg_bytes": len(fields.get(b"jpg", b""))}
        args: list[bytes | str | int] = [self.keys.group, entry_id, DLQ_MAXLEN, *flat_fields(entry)]
        moved = bool(self.script(keys=[self.keys.frames(cam), self.keys.dlq, self.keys.dead_lettered], args=args))
        if moved:
            log.warning("dead-lettered frame: %s", error,
                        extra={"cam": cam, "seq": _field(kept, "seq"), "entry": entry_id})
        return moved


def _field(fields: dict[str, bytes], name: str) -> str:
    value = fields.get(name)
    return text(value) if value else "?"
