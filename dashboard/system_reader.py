"""Read the health of the pipeline from Redis: live workers, the cameras' frames queues, dead letters, camera flow,
capture-to-result latency and the processes `maskwatch up` supervises."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, cast

import redis

from dashboard import queues
from dashboard.models import CameraFlow, Latency, System, Worker
from dashboard.readers import camera_status, is_quiet, number_field, processes, read_statuses
from maskwatch.keys import Keys
from maskwatch.utils import decode_hash, text

if TYPE_CHECKING:
    from dashboard.state import DashboardState

_INT_FIELDS = ("pid", "batch_size", "frames_total", "started", "last_seen")
LATENCY_WINDOW_S = 300  # results committed this recently count towards the latency
LATENCY_SAMPLES = 1000  # at most this many of the newest (seconds of a large site: plenty for a p95)
LATENCY_MAX_AGE_S = 5.0  # read once in this long however many system pages are open
# The newest results' camera and done_ts - ts, flattened: only these leave Redis, not every result's faces
# (a tenth of the time of XREVRANGE and decoding in Python). KEYS[1]: the results stream; ARGV: the oldest
# entry id (epoch ms) and how many entries at most. An entry without the three fields is skipped.
_LATENCIES = """
local out = {}
for _, entry in ipairs(redis.call('XREVRANGE', KEYS[1], '+', ARGV[1], 'COUNT', ARGV[2])) do
  local f, cam, ts, done = entry[2], nil, nil, nil
  for i = 1, #f, 2 do
    if f[i] == 'cam' then cam = f[i + 1]
    elseif f[i] == 'ts' then ts = tonumber(f[i + 1])
    elseif f[i] == 'done_ts' then done = tonumber(f[i + 1]) end
  end
  if cam and ts and done then
    out[#out + 1] = cam
    out[#out + 1] = done - ts
  end
end
return out
"""
_FLOAT_FIELDS = ("fps", "crops_per_s")


def _worker(worker_id: str, raw: dict[bytes, bytes]) -> Worker:
    fields = decode_hash(raw)
    return Worker(id=fields.get("id") or worker_id, host=fields.get("host"), device=fields.get("device"),
                  runtime=fields.get("runtime"), alive=True,
                  **{f: number_field(fields, f, int) for f in _INT_FIELDS},
                  **{f: number_field(fields, f, float) for f in _FLOAT_FIELDS})


def workers(r: redis.Redis, keys: Keys) -> list[Worker]:
    """Workers whose heartbeat key still exists; a worker that stops beating expires and drops out."""
    names = sorted(k.decode() for k in r.scan_iter(match=keys.worker_pattern, count=500))
    with r.pipeline(transaction=False) as p:
        for name in names:
            p.hgetall(name)
        hashes = p.execute()
    cut = len(keys.worker(""))
    # a key can expire between SCAN and HGETALL: an empty hash is a worker that just left
    return [_worker(name[cut:], raw) for name, raw in zip(names, hashes) if raw]


def dead_letters(r: redis.Redis, keys: Keys) -> tuple[int, int]:
    """Frames dead-lettered since the start, and entries now in the dead-letter stream."""
    with r.pipeline(transaction=False) as p:
        p.get(keys.dead_lettered)
        p.xlen(keys.dlq)
        count, length = p.execute()
    return int(count or 0), int(length)


def percentile(sorted_values: Sequence[int], q: float) -> int | None:
    """The nearest-rank ``q`` quantile (0 < q <= 1) of ascending values; None when there are none.

    >>> percentile([10, 20, 30, 40], 0.5), percentile([10, 20, 30, 40], 0.95), percentile([], 0.5)
    (20, 40, None)
    """
    if not sorted_values:
        return None
    return sorted_values[max(0, math.ceil(q * len(sorted_values)) - 1)]


def _latency(values: list[int]) -> Latency:
    values.sort()
    return Latency(p50_ms=percentile(values, 0.5), p95_ms=percentile(values, 0.95), samples=len(values),
                   window_s=LATENCY_WINDOW_S)


def latencies(r: redis.Redis, keys: Keys, now_ms: int) -> tuple[Latency, dict[str, Latency]]:
    """Capture to result (``done_ts - ts``) over the newest results: all cameras together, and per camera."""
    pairs = cast(list[bytes | int], r.register_script(_LATENCIES)(
        keys=[keys.results], args=[now_ms - LATENCY_WINDOW_S * 1000, LATENCY_SAMPLES]))
    every: list[int] = []
    per_cam: dict[str, list[int]] = {}
    for cam, took in zip(pairs[::2], pairs[1::2]):
        every.append(max(0, int(took)))
        per_cam.setdefault(text(cast(bytes, cam)), []).append(every[-1])
    return _latency(every), {cam: _latency(v) for cam, v in per_cam.items()}


def system(state: DashboardState, now_ms: int) -> System:
    r, keys = state.r, state.keys
    live = workers(r, keys)
    configs, errors = state.registry.all()
    cams = sorted({*configs, *errors})
    raw = read_statuses(r, keys, cams)
    per_camera = queues.camera_queues(r, keys, cams)
    latency, per_camera_latency = state.latency.get()
    flows = []
    for cam in cams:
        st, q = camera_status(raw[cam], now_ms / 1000, state.stale_after_s), per_camera[cam]
        flows.append(CameraFlow(id=cam, state=st.state, fps=st.fps, sent=st.sent, skipped=st.skipped,
                                dropped=st.dropped, last_error=st.last_error, idle=st.idle,
                                quiet=is_quiet(st, now_ms), lag=q.lag, pending=q.pending, worker=q.worker,
                                latency=per_camera_latency.get(cam, _latency([]))))
    for w in live:
        w.cameras = [cam for cam in cams if per_camera[cam].worker == w.id]
    dead, dlq_length = dead_letters(r, keys)
    site = queues.site(r, keys, cams, (q.worker for q in per_camera.values()))
    children = processes(r, keys, now_ms)
    return System(generated_at=now_ms, queue=site, workers_alive=len(live), workers=live,
                  dead_lettered=dead, dlq_length=dlq_length, cameras=flows, latency=latency, processes=children,
                  supervised=any(p.state != "unknown" for p in children))
