"""Drop a camera's stale frames when a worker takes the camera, rather than analyse them late.

Frames queued by a run that failed (or while no worker ran) stay in the camera's stream and would
be analysed at the next start, minutes later, as if they were live: counted in the current
minute's figures, raising alerts about people long gone. When a worker takes a camera, frames
queued more than ``max_age_ms`` ago are dropped: the unread ones are skipped (the group's
last-delivered id moves past them) and the read-but-uncommitted ones are acknowledged unanalysed.
Age is the stream id's (the Redis clock when it was queued), so the clocks of the camera and the
worker do not matter.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import redis

from maskwatch.keys import Keys

log = logging.getLogger(__name__)

# KEYS: 1 frames stream. ARGV: 1 group, 2 consumer, 3 max age ms.
# Returns {unread dropped, pending dropped}. One script, so the producer's XADDs (ids of now) and
# this cut-off cannot interleave.
_DROP_STALE = """
local t = redis.call('TIME')
local cutoff = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) - tonumber(ARGV[3])
if cutoff <= 0 then return {0, 0} end
local before = '(' .. cutoff .. '-0'
local pending = 0
while true do
  local page = redis.call('XPENDING', KEYS[1], ARGV[1], '-', before, 1000, ARGV[2])
  if #page == 0 then break end
  local ids = {}
  for i, p in ipairs(page) do ids[i] = p[1] end
  pending = pending + redis.call('XACK', KEYS[1], ARGV[1], unpack(ids))
  if #page < 1000 then break end
end
local last, read = nil, nil
for _, g in ipairs(redis.call('XINFO', 'GROUPS', KEYS[1])) do
  local f = {}
  for i = 1, #g, 2 do f[g[i]] = g[i + 1] end
  if f['name'] == ARGV[1] then last, read = f['last-delivered-id'], f['entries-read'] end
end
if not last then return {0, pending} end
local unread = redis.call('XRANGE', KEYS[1], '(' .. last, before)
if #unread > 0 then
  local newest = unread[#unread][1]
  if type(read) == 'number' then
    redis.call('XGROUP', 'SETID', KEYS[1], ARGV[1], newest, 'ENTRIESREAD', read + #unread)
  else
    redis.call('XGROUP', 'SETID', KEYS[1], ARGV[1], newest)
  end
end
return {#unread, pending}
"""


@dataclass(frozen=True)
class Dropped:
    unread: int  # queued, never read by any worker
    pending: int  # read by a worker (this one or the camera's previous one), never committed

    @property
    def total(self) -> int:
        return self.unread + self.pending


class StaleFrames:
    """Drops the frames of a camera that were queued too long ago (:data:`_DROP_STALE`)."""

    def __init__(self, r: redis.Redis, keys: Keys, consumer: str, max_age_ms: int):
        self.keys, self.consumer, self.max_age_ms = keys, consumer, max_age_ms
        self._script = r.register_script(_DROP_STALE)

    def drop(self, cam: str) -> Dropped:
        """Drop ``cam``'s stale frames (its group must exist); said in the log with their count."""
        unread, pending = self._script(keys=[self.keys.frames(cam)],
                                       args=[self.keys.group, self.consumer, self.max_age_ms])
        dropped = Dropped(int(unread), int(pending))
        if dropped.total:
            log.warning("dropped %d stale frame(s) queued over %.0f s ago (%d never read, %d read but never "
                        "committed): analysing them now would count the past as live", dropped.total,
                        self.max_age_ms / 1000, dropped.unread, dropped.pending, extra={"cam": cam})
        return dropped
