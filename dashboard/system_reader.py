"""Read the health of the pipeline from Redis: live workers, the frames queue, dead letters, camera flow."""

from __future__ import annotations

from typing import TYPE_CHECKING

import redis

from dashboard.models import CameraFlow, Queue, System, Worker
from dashboard.readers import camera_status, read_statuses
from maskwatch.keys import Keys
from maskwatch.streams import group_info

if TYPE_CHECKING:
    from dashboard.state import DashboardState

_INT_FIELDS = ("pid", "batch_size", "frames_total", "started", "last_seen")
_FLOAT_FIELDS = ("fps", "crops_per_s")


def _worker(worker_id: str, raw: dict[bytes, bytes]) -> Worker:
    text = {k.decode(errors="replace"): v.decode(errors="replace") for k, v in raw.items()}

    def number(name: str, kind: type[int | float]) -> int | float | None:
        try:
            return kind(float(text[name])) if text.get(name) else None
        except ValueError:
            return None

    return Worker(id=text.get("id") or worker_id, host=text.get("host"), device=text.get("device"),
                  runtime=text.get("runtime"), alive=True,
                  **{f: number(f, int) for f in _INT_FIELDS}, **{f: number(f, float) for f in _FLOAT_FIELDS})


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


def queue(r: redis.Redis, keys: Keys) -> Queue:
    """Length of the frames stream and, from XINFO GROUPS, the workers group's lag and pending count."""
    info = group_info(r, keys)
    if info is None:  # no stream or group yet: nothing was ever sent
        return Queue(length=int(r.xlen(keys.frames)), lag=None, pending=0, consumers=0)
    return Queue(length=int(r.xlen(keys.frames)), lag=info.lag, pending=info.pending, consumers=info.consumers)


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
    flows = []
    for cam in cams:
        st = camera_status(raw[cam], now_ms / 1000, state.stale_after_s)
        flows.append(CameraFlow(id=cam, state=st.state, fps=st.fps, sent=st.sent, skipped=st.skipped,
                                dropped=st.dropped, last_error=st.last_error))
    dead, dlq_length = dead_letters(r, keys)
    return System(generated_at=now_ms, queue=queue(r, keys), workers_alive=len(live), workers=live,
                  dead_lettered=dead, dlq_length=dlq_length, cameras=flows)
