"""Remove the consumers of gone workers from a camera's group, so the group does not grow forever.

Every worker process reads under a consumer name of its own (host-pid), so each restart leaves one
more consumer in the group of every camera it read. The camera's worker removes the consumers that
have been idle for ``consumer_idle_ms`` and hold no frame (``XGROUP DELCONSUMER``). A consumer
holding frames is never removed: those frames would be lost from the pending list. The camera's
next holder claims them (:mod:`worker.consumer`), and the consumer goes on a later round. Check
and removal run in one script, so a consumer cannot take a frame between the two. Removing a live
worker's consumer costs nothing: reading creates it again.
"""

from __future__ import annotations

import logging

import redis

from maskwatch.keys import Keys
from maskwatch.utils import text

log = logging.getLogger(__name__)

# KEYS: 1 the camera's frames stream. ARGV: 1 group, 2 this worker's consumer (kept), 3 idle ms.
# Returns the names removed.
_REMOVE_IDLE = """
local removed = {}
for _, c in ipairs(redis.call('XINFO', 'CONSUMERS', KEYS[1], ARGV[1])) do
  local f = {}
  for i = 1, #c, 2 do f[c[i]] = c[i + 1] end
  if f['name'] ~= ARGV[2] and f['pending'] == 0 and f['idle'] >= tonumber(ARGV[3]) then
    redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], f['name'])
    removed[#removed + 1] = f['name']
  end
end
return removed
"""


class IdleConsumers:
    def __init__(self, r: redis.Redis, keys: Keys, consumer: str, idle_ms: int):
        self.keys, self.consumer, self.idle_ms = keys, consumer, idle_ms
        self.script = r.register_script(_REMOVE_IDLE)

    def remove(self, cams: list[str]) -> int:
        """Remove the idle consumers holding nothing from these cameras' groups; returns how many went."""
        removed = 0
        for cam in cams:
            try:
                names = self.script(keys=[self.keys.frames(cam)], args=[self.keys.group, self.consumer, self.idle_ms])
            except redis.ResponseError as exc:
                if "NOGROUP" in str(exc) or "no such key" in str(exc):
                    continue  # not read yet: no consumers to remove
                raise
            if names:
                log.info("removed %d consumer(s) idle for %d ms and holding no frame: %s", len(names), self.idle_ms,
                         ", ".join(text(n) for n in names[:10]), extra={"cam": cam})
                removed += len(names)
        return removed
