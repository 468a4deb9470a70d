"""Move frames that cannot be processed to the dead-letter stream, acknowledged, with the reason.

A corrupt JPEG, a malformed entry, a frame that failed when run alone or one that killed the
worker on each of its isolated attempts (docs/architecture.md, "Poison frames") lands in
``mw:dlq`` with its camera, the error, the delivery count and a bounded copy of its fields, and is
acknowledged on its camera's stream in the same script, so it never blocks the group and is
never counted.

The copy is bounded whatever the entry holds: the frame's own fields cut to
:data:`FIELD_BYTES` bytes each, the names of all its fields, its size in bytes, never the image;
the error is cut to :data:`ERROR_CHARS` characters. An entry of 20 MB makes a dead letter and a
log line of under a kilobyte or two.

>>> clip(b"x" * 100, 8)
b'xxxxxxxx...(100 bytes)'
>>> clip(b"short", 8)
b'short'
"""

from __future__ import annotations

import logging

import redis

from maskwatch.keys import Keys
from maskwatch.utils import flat_fields, text

log = logging.getLogger(__name__)
DLQ_MAXLEN = 10_000
FIELD_BYTES = 64  # of each field copied from the entry
ERROR_CHARS = 500  # of the error, in the dead letter and in the log line
NAMES_BYTES = 256  # of the list of the entry's field names
# The fields of a frame entry that a dead letter keeps (cut to FIELD_BYTES); never the image.
COPIED = ("v", "cam", "seq", "ts", "w", "h", "key", "regions")

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


def clip(value: bytes, limit: int) -> bytes:
    """``value`` cut to ``limit`` bytes, saying its full length when it was cut."""
    return value if len(value) <= limit else value[:limit] + f"...({len(value)} bytes)".encode()


def clip_text(value: str, limit: int = ERROR_CHARS) -> str:
    """``value`` cut to ``limit`` characters, saying its full length when it was cut."""
    return value if len(value) <= limit else f"{value[:limit]}...({len(value)} characters)"


def describe(exc: BaseException) -> str:
    """An exception in one bounded line: its type, its message cut short and where it was raised.

    A message may quote the data that caused it (megabytes of a malformed field): the line holds
    :data:`ERROR_CHARS` characters of it at most, and the place in the code instead of a traceback.

    >>> try:
    ...     raise ValueError("x" * 10_000)
    ... except ValueError as exc:
    ...     line = describe(exc)
    >>> len(line) < 600, line.startswith("ValueError: xxx"), "10000 characters" in line
    (True, True, True)
    """
    where = ""
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    if tb is not None:
        code = tb.tb_frame.f_code
        where = f" (at {code.co_filename.rsplit('/', 1)[-1]}:{tb.tb_lineno} in {code.co_name})"
    return f"{type(exc).__name__}: {clip_text(str(exc), ERROR_CHARS - 100)}{where}"


class DeadLetters:
    def __init__(self, r: redis.Redis, keys: Keys, consumer: str):
        self.r, self.keys, self.consumer = r, keys, consumer
        self.script = r.register_script(_DEAD_LETTER)

    def send(self, cam: str, entry_id: str, fields: dict[bytes, bytes], error: str, deliveries: int) -> bool:
        """Dead-letter one entry of ``cam``'s stream; False if another worker had already acknowledged it."""
        kept = {name: clip(fields[name.encode()], FIELD_BYTES) for name in COPIED if name.encode() in fields}
        names = b",".join(clip(k, FIELD_BYTES) for k in fields)
        error = clip_text(error)
        entry: dict[str, bytes | str | int] = {
            **kept, "stream_cam": cam, "entry": entry_id, "error": error, "deliveries": deliveries,
            "worker": self.consumer, "jpg_bytes": len(fields.get(b"jpg", b"")),
            "entry_bytes": sum(len(k) + len(v) for k, v in fields.items()), "fields": clip(names, NAMES_BYTES)}
        args: list[bytes | str | int] = [self.keys.group, entry_id, DLQ_MAXLEN, *flat_fields(entry)]
        moved = bool(self.script(keys=[self.keys.frames(cam), self.keys.dlq, self.keys.dead_lettered], args=args))
        if moved:
            log.warning("dead-lettered frame: %s", error, extra={"cam": cam, "seq": _seq(kept), "entry": entry_id})
        return moved


def _seq(kept: dict[str, bytes]) -> str:
    """The entry's sequence number for a log line: its digits only, '?' when it has none."""
    value = text(kept.get("seq", b""))
    return value if value.isdigit() else "?"
