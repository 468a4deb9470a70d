"""Read the health of the pipeline from Redis: live workers, the cameras' frames queues, dead letters, camera flow."""

from __future__ import annotations

from typing import TYPE_CHECKING

import redis

from dashboard import queues
from dashboard.models import CameraFlow, System, Worker
from dashboard.readers import camera_status, is_quiet, number_field, read_statuses
from maskwatch.keys import Keys
from maskwatch.utils import decode_hash

if TYPE_CHECKING:
    from dashboard.state import DashboardState

_INT_FIELDS = ("pid", "batch_size", "frames_total", "started", "last_seen")
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


def system(state: DashboardState, now_ms: int) -> System:
    r, keys = state.r, state.keys
    live = workers(r, keys)
    configs, errors = state.registry.all()
    cams = sorted({*configs, *errors})
    raw = read_statuses(r, keys, cams)
    per_camera = queues.camera_queues(r, keys, cams)
    flows = []
    for cam in cams:
        st, q = camera_status(raw[cam], now_ms / 1000, state.stale_after_s), per_camera[cam]
        flows.append(CameraFlow(id=cam, state=st.state, fps=st.fps, sent=st.sent, skipped=st.skipped,
                                dropped=st.dropped, last_error=st.last_error, idle=st.idle,
                                quiet=is_quiet(st, now_ms), lag=q.lag, pending=q.pending, worker=q.worker))
    for w in live:
        w.cameras = [cam for cam in cams if per_camera[cam].worker == w.id]
    dead, dlq_length = dead_letters(r, keys)
    site = queues.site(r, keys, cams, (q.worker for q in per_camera.values()))
    return System(generated_at=now_ms, queue=site, workers_alive=len(live), workers=live,
                  dead_lettered=dead, dlq_length=dlq_length, cameras=flows)
