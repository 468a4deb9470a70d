"""Write a frame's effects exactly once: one Lua script per frame that XACKs first.

The script acknowledges the frame and, only if ``XACK`` returned 1 (this worker still owned a
pending frame), adds its result, minute statistics, totals, the camera's tracker state after the
frame and, at most once per camera per throttle window, a violation event with its snapshot. A
frame processed twice (a stalled worker whose camera moved on) is therefore counted once, and a
worker killed before the script leaves the frame pending for the camera's next worker, which
resumes from the tracker state of the last frame committed. The scripts of a batch travel in one
pipeline: one round trip.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import redis

from maskwatch.codec import Event, Result, encode_event, encode_result
from maskwatch.compliance import STATS_TTL_S, bucket_of
from maskwatch.keys import Keys
from maskwatch.settings import Settings
from maskwatch.utils import flat_fields

# KEYS: 1 the camera's frames stream, 2 results stream, 3 the camera's stats hash of the day, 4 its totals hash,
#       5 events stream, 6 the camera's event throttle, 7 the event's snapshot, 8 the camera's tracker state.
# ARGV: 1 group, 2 entry id, 3 minute of the day, 4-7 counts (frames, faces, with_mask, without_mask),
#       8 stats TTL s, 9 results MAXLEN, 10 tracker state JSON ('' keeps the stored one), 11 n = result
#       field count, 12..11+n result fields; then at a = 12+n: event flag ('1' or '0'), and with '1':
#       a+1 throttle ms, a+2 events MAXLEN, a+3 snapshot JPEG, a+4 snapshot TTL s, a+5 m = event field
#       count, a+6.. event fields.
# Returns 0 when the frame was acknowledged before (nothing written), 1 counted, 2 counted with an event.
_COMMIT = """
if redis.call('XACK', KEYS[1], ARGV[1], ARGV[2]) == 0 then return 0 end
local m = ARGV[3]
local n = {tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])}
local names = {'frames', 'faces', 'with_mask', 'without_mask'}
for i = 1, 4 do
  if n[i] > 0 then
    redis.call('HINCRBY', KEYS[3], m .. ':' .. names[i], n[i])
    redis.call('HINCRBY', KEYS[4], names[i], n[i])
  end
end
redis.call('EXPIRE', KEYS[3], ARGV[8])
if ARGV[10] ~= '' then redis.call('SET', KEYS[8], ARGV[10]) end
local nres = tonumber(ARGV[11])
local res = {}
for i = 1, nres do res[i] = ARGV[11 + i] end
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[9], '*', unpack(res))
local at = 12 + nres
if ARGV[at] == '1' and redis.call('SET', KEYS[6], ARGV[2], 'NX', 'PX', ARGV[at + 1]) then
  local nev = tonumber(ARGV[at + 5])
  local ev = {}
  for i = 1, nev do ev[i] = ARGV[at + 5 + i] end
  redis.call('XADD', KEYS[5], 'MAXLEN', '~', ARGV[at + 2], '*', unpack(ev))
  redis.call('SET', KEYS[7], ARGV[at + 3], 'EX', ARGV[at + 4])
  return 2
end
return 1
"""


@dataclass(frozen=True)
class Outcome:
    """What one frame adds: its result and, if it shows a violation, a candidate event and snapshot."""

    entry_id: str
    result: Result
    event: Event | None = None
    snapshot: bytes = b""
    tracker_state: str = ""  # the camera's tracker after this frame, JSON; "" when tracking is off


class Committer:
    """Runs the commit script for a batch of outcomes and says which frames this call counted."""

    def __init__(self, r: redis.Redis, keys: Keys, s: Settings):
        self.r, self.keys, self.s = r, keys, s
        self.script = r.register_script(_COMMIT)

    def commit(self, outcomes: Sequence[Outcome]) -> list[int]:
        """0: already acknowledged elsewhere (not counted again), 1: counted, 2: counted with an event."""
        if not outcomes:
            return []
        k, s = self.keys, self.s
        pipe = self.r.pipeline(transaction=False)
        for o in outcomes:
            res = o.result
            day, minute = bucket_of(res.ts)
            n_with = sum(f.label == "with_mask" for f in res.faces)
            n_without = len(res.faces) - n_with
            result_fields = flat_fields(encode_result(res))
            args: list[bytes | str | int | float] = [
                k.group, o.entry_id, minute, 1, len(res.faces), n_with, n_without, STATS_TTL_S,
                s.results_maxlen, o.tracker_state, len(result_fields), *result_fields]
            if o.event is not None:
                ev_fields = flat_fields(encode_event(o.event))
                args += [1, int(s.event_throttle_s * 1000), s.events_maxlen, o.snapshot, s.snapshot_ttl_s,
                         len(ev_fields), *ev_fields]
            else:
                args += [0]
            snap_key = k.snap(o.event.snap) if o.event else k.snap("none")
            self.script(keys=[k.frames(res.cam), k.results, k.stats(res.cam, day), k.totals(res.cam), k.events,
                              k.throttle(res.cam), snap_key, k.tracks(res.cam)], args=args, client=pipe)
        return [int(x) for x in pipe.execute()]
