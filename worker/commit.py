"""Write a frame's effects exactly once: one Lua script per frame that XACKs first.

The script acknowledges the frame and, only if ``XACK`` returned 1 (this worker still owned a
pending frame), adds its result, minute statistics, totals, the camera's tracker state after the
frame and, at most once per camera per throttle window, a violation event with its snapshot. With
tracking, the events are the unmasked people counted in the frame (who left, or were long in view),
one each, held back by the flood guard only when the camera's previous one came less than
``event_flood_guard_s`` before in capture time, so a worker catching up a backlog does not silence
people who left seconds apart. A frame processed twice (a stalled worker whose camera moved on) is
therefore counted once, and a worker killed before the script leaves the frame pending for the
camera's next worker, which resumes from the tracker state of the last frame committed. The scripts
of a batch travel in one pipeline: one round trip.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field

import redis

from maskwatch.codec import Event, Result, encode_event, encode_result
from maskwatch.compliance import STATS_TTL_S, bucket_of
from maskwatch.keys import Keys
from maskwatch.settings import Settings
from maskwatch.utils import flat_fields, now_ms
from maskwatch.vision.privacy import Privacy
from worker.tracks import Person

# KEYS: 1 the camera's frames stream, 2 results stream, 3 the camera's stats hash of the day, 4 its totals hash,
#       5 events stream, 6 the camera's event throttle, 7 the frame event's snapshot, 8 the camera's tracker
#       state, 9 the camera's people (sorted set); then per person i = 0..P-1: 10+2i their record, 11+2i their
#       snapshot.
# ARGV: 1 group, 2 entry id, 3 minute of the day, 4-7 counts (frames, faces, with_mask, without_mask),
#       8 stats TTL s, 9 results MAXLEN, 10 tracker state JSON ('' keeps the stored one), 11 events MAXLEN,
#       12 retention cutoff (epoch ms: older people leave the sorted set), 13 the frame's capture time (epoch ms),
#       14 n = result field count, 15.. result fields; then the frame event: '0', or '1', throttle ms, snapshot
#       JPEG, snapshot TTL s, m = field count, m fields; then P and per person: track number, last seen ms, label,
#       record JSON, record TTL s, snapshot JPEG ('' none), '1' when the record completes one counted while in view
#       ('0' a new person), and their event as for the frame ('1' only for new unmasked people; its throttle is the
#       flood guard).
# Returns 0 when the frame was acknowledged before (nothing written), 1 counted, 2 counted with an event.
_COMMIT = """
if redis.call('XACK', KEYS[1], ARGV[1], ARGV[2]) == 0 then return 0 end
local m = ARGV[3]
local function count(name, n)
  if n > 0 then
    redis.call('HINCRBY', KEYS[3], m .. ':' .. name, n)
    redis.call('HINCRBY', KEYS[4], name, n)
  end
end
local names = {'frames', 'faces', 'with_mask', 'without_mask'}
for i = 1, 4 do count(names[i], tonumber(ARGV[3 + i])) end
if ARGV[10] ~= '' then redis.call('SET', KEYS[8], ARGV[10]) end
local at = 14
local function take()
  local v = ARGV[at]
  at = at + 1
  return v
end
local function fields()
  local n = tonumber(take())
  local out = {}
  for i = 1, n do out[i] = take() end
  return out
end
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[9], '*', unpack(fields()))
local result = 1
-- A frame event: one a throttle window of commit time. A person's (capture: the frame's capture time) is held
-- back only when the camera's last one came less than the window before in the camera's time too, so a worker
-- catching up a backlog does not silence people who left seconds apart in the scene.
local function may_send(window_ms, capture)
  if not capture then return redis.call('SET', KEYS[6], ARGV[2], 'NX', 'PX', window_ms) end
  local last = tonumber(redis.call('GET', KEYS[6]))
  if last and capture >= last and capture - last < tonumber(window_ms) then return false end
  redis.call('SET', KEYS[6], capture, 'PX', window_ms)
  return true
end
local function event(snap_key, capture)
  if take() ~= '1' then return end
  local throttle_ms, snapshot, snap_ttl, ev = take(), take(), take(), fields()
  if throttle_ms == '0' or may_send(throttle_ms, capture) then
    redis.call('XADD', KEYS[5], 'MAXLEN', '~', ARGV[11], '*', unpack(ev))
    if snapshot ~= '' then redis.call('SET', snap_key, snapshot, 'EX', snap_ttl) end
    result = 2
  end
end
event(KEYS[7])
local people = tonumber(take())
for i = 0, people - 1 do
  local n, last, label, record, ttl, snapshot, update = take(), take(), take(), take(), take(), take(), take()
  -- A person is recorded once, whichever worker commits the frame that counts them (NX on their record); one
  -- counted while in view has their record completed when they leave (XX), never counted again.
  local written = redis.call('SET', KEYS[10 + 2 * i], record, update == '1' and 'XX' or 'NX', 'EX', ttl)
  if written then
    redis.call('ZADD', KEYS[9], last, n)
    if snapshot ~= '' then
      redis.call('SET', KEYS[11 + 2 * i], snapshot, 'EX', ttl)
    elseif update == '1' then  -- the picture stored when they were counted, kept as long as their record
      redis.call('EXPIRE', KEYS[11 + 2 * i], ttl)
    end
  end
  if written and update ~= '1' then
    count('people', 1)
    count('people_' .. label, 1)
    event(KEYS[11 + 2 * i], tonumber(ARGV[13]))
  elseif take() == '1' then
    at = at + 3
    fields()
  end
end
if people > 0 then redis.call('ZREMRANGEBYSCORE', KEYS[9], '-inf', '(' .. ARGV[12]) end
redis.call('EXPIRE', KEYS[3], ARGV[8])
return result
"""


@dataclass(frozen=True)
class Outcome:
    """What one frame adds: its result, a frame event with its snapshot (tracking off), the tracker state
    after it and the people who left in it (tracking on)."""

    entry_id: str
    result: Result
    event: Event | None = None
    snapshot: bytes = b""
    tracker_state: str = ""  # the camera's tracker after this frame, JSON; "" when tracking is off
    people: list[Person] = field(default_factory=list)
    privacy: Privacy | None = None  # the camera's; None: the site's defaults


class Committer:
    """Runs the commit script for a batch of outcomes and says which frames this call counted."""

    def __init__(self, r: redis.Redis, keys: Keys, s: Settings):
        self.r, self.keys, self.s = r, keys, s
        self.script = r.register_script(_COMMIT)
        self.site = Privacy.for_camera(s, None)

    def commit(self, outcomes: Sequence[Outcome]) -> list[int]:
        """0: already acknowledged elsewhere (not counted again), 1: counted, 2: counted with an event."""
        if not outcomes:
            return []
        k = self.keys
        pipe = self.r.pipeline(transaction=False)
        now = now_ms()
        for o in outcomes:
            res, privacy = o.result, o.privacy or self.site
            day, minute = bucket_of(res.ts)
            n_with = sum(f.label == "with_mask" for f in res.faces)
            n_without = len(res.faces) - n_with
            result_fields = flat_fields(encode_result(res))
            args: list[bytes | str | int | float] = [
                k.group, o.entry_id, minute, 1, len(res.faces), n_with, n_without, STATS_TTL_S,
                self.s.results_maxlen, o.tracker_state, self.s.events_maxlen, now - privacy.retention_s, res.ts,
                len(result_fields), *result_fields]
            args += self._event(o.event, o.snapshot, self.s.event_throttle_s, privacy)
            args.append(len(o.people))
            person_keys: list[str] = []
            for p in o.people:
                args += [p.n, p.record["last_ts"], p.label, json.dumps(p.record, separators=(",", ":")),
                         privacy.retention_s, p.snapshot, int(p.update)]
                violation = p.label == "without_mask" and not p.update
                args += self._event(_person_event(p, res) if violation else None, b"",
                                    self.s.event_flood_guard_s, privacy)
                person_keys += [k.person(res.cam, p.n), k.snap(p.snap_id)]
            snap_key = k.snap(o.event.snap) if o.event else k.snap("none")
            self.script(keys=[k.frames(res.cam), k.results, k.stats(res.cam, day), k.totals(res.cam), k.events,
                              k.throttle(res.cam), snap_key, k.tracks(res.cam), k.people(res.cam), *person_keys],
                        args=args, client=pipe)
        return [int(x) for x in pipe.execute()]

    @staticmethod
    def _event(event: Event | None, snapshot: bytes, throttle_s: float,
               privacy: Privacy) -> list[bytes | str | int | float]:
        if event is None:
            return ["0"]
        fields = flat_fields(encode_event(event))
        return ["1", int(throttle_s * 1000), snapshot, privacy.retention_s, len(fields), *fields]


def _person_event(p: Person, frame: Result) -> Event:
    """The violation event of an unmasked person: their best look, how long they were seen, how sure the vote is."""
    r = p.record
    box = tuple(r["best_box"]) if r["best_box"] else (0, 0, 0, 0)
    return Event(cam=p.cam, seq=frame.seq, ts=int(r["best_ts"] or r["last_ts"]), score=float(r["confidence"]),
                 box=box, snap=r["snap"], person=p.id,
                 duration_ms=int(r["duration_ms"]), confidence=float(r["confidence"]))
