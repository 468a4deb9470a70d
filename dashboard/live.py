"""Live updates for open pages: one Server-Sent Events stream, ``GET /api/live``.

Once a second the stream sends the topics a page asked for:

* ``overview``: the :class:`~dashboard.models.Overview` (shared by all viewers through a 1 s cache);
* ``results``: per camera, the newest result the workers wrote since the last tick (the page then
  fetches the new annotated frame);
* ``violations``: each new violation event, oldest first;
* ``system``: the :class:`~dashboard.models.System` figures.

When Redis cannot be read the stream sends ``unavailable`` and keeps trying; browsers reconnect
by themselves if the stream drops.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import cast

import anyio
import redis
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse

from dashboard import readers, system_reader
from dashboard.errors import unprocessable
from dashboard.state import DashboardState, get_state
from maskwatch.codec import decode_result
from maskwatch.exceptions import MessageError
from maskwatch.utils import now_ms

router = APIRouter(tags=["live"])
TICK_S = 1.0
TOPICS = ("overview", "results", "violations", "system")
RESULTS_PER_TICK = 1000  # newest results read per tick; older ones of a busy second only matter per camera
# XRANGE/XREVRANGE replies as the dashboard's client returns them (it never decodes replies);
# redis-py types them loosely (str | bytes | None).
Entries = list[tuple[bytes, dict[bytes, bytes]]]


def _sse(event: str, payload: str) -> str:
    return f"event: {event}\ndata: {payload}\n\n"


def _last_id(r: redis.Redis, stream: str) -> str:
    newest = cast(Entries, r.xrevrange(stream, count=1))
    return newest[0][0].decode() if newest else "0-0"


@dataclass
class Follower:
    """Where one viewer is in the results and events streams."""

    results_id: str
    events_id: str

    @classmethod
    def at_end(cls, state: DashboardState) -> Follower:
        return cls(_last_id(state.r, state.keys.results), _last_id(state.r, state.keys.events))

    def new_results(self, state: DashboardState) -> dict[str, dict[str, object]]:
        entries = cast(Entries, state.r.xrevrange(state.keys.results, min="(" + self.results_id,
                                                  count=RESULTS_PER_TICK))
        if entries:
            self.results_id = entries[0][0].decode()
        newest: dict[str, dict[str, object]] = {}
        for _, fields in entries:  # newest first: the first result seen of a camera is its newest
            try:
                res = decode_result(fields)
            except MessageError:
                continue  # the worker never writes these; a foreign entry must not stall the page
            if res.cam not in newest:
                without = sum(f.label == "without_mask" for f in res.faces)
                newest[res.cam] = {"seq": res.seq, "ts": res.ts, "done_ts": res.done_ts, "faces": len(res.faces),
                                   "without_mask": without, "worker": res.worker}
        return newest

    def new_violations(self, state: DashboardState) -> list[str]:
        entries = cast(Entries, state.r.xrange(state.keys.events, min="(" + self.events_id, count=100))
        out = []
        for entry_id, fields in entries:
            self.events_id = entry_id.decode()
            try:
                out.append(readers.violation(fields).model_dump_json())
            except MessageError:
                continue
        return out


def _tick(state: DashboardState, follower: Follower, topics: set[str]) -> list[str]:
    """The messages of one tick (runs in a worker thread: the Redis client blocks)."""
    try:
        messages = []
        if "overview" in topics:
            messages.append(_sse("overview", state.overview.get().model_dump_json(by_alias=True)))
        if "results" in topics:
            newest = follower.new_results(state)
            if newest:
                messages.append(_sse("results", json.dumps(newest)))
        if "violations" in topics:
            messages += [_sse("violation", v) for v in follower.new_violations(state)]
        if "system" in topics:
            messages.append(_sse("system", system_reader.system(state, now_ms()).model_dump_json()))
        state.outage.ok()
        return messages
    except redis.RedisError as exc:
        state.redis_error(exc, "live updates")
        return [_sse("unavailable", json.dumps({"detail": f"Redis: {exc}"}))]


async def _stream(request: Request, state: DashboardState, topics: set[str]) -> AsyncIterator[str]:
    try:
        follower = await anyio.to_thread.run_sync(Follower.at_end, state)
    except redis.RedisError:  # follow from now on; the first tick reports Redis as unavailable
        follower = Follower(f"{now_ms()}-0", f"{now_ms()}-0")
    yield "retry: 2000\n\n"
    while not state.stopping.is_set() and not await request.is_disconnected():
        for message in await anyio.to_thread.run_sync(_tick, state, follower, topics):
            yield message
        await anyio.sleep(TICK_S)


@router.get("/api/live", response_class=StreamingResponse, summary="Server-Sent Events: live figures for open pages",
            responses={200: {"content": {"text/event-stream": {}},
                             "description": "events overview, results, violation, system and unavailable"}})
async def live(request: Request,
               topics: str = Query(",".join(TOPICS[:3]), description=f"comma-separated: {', '.join(TOPICS)}"),
               state: DashboardState = Depends(get_state)) -> StreamingResponse:
    wanted = {t.strip() for t in topics.split(",") if t.strip()}
    unknown = wanted - set(TOPICS)
    if unknown or not wanted:
        raise unprocessable("query", "topics", f"unknown topic(s) {sorted(unknown)}; choose from {', '.join(TOPICS)}")
    return StreamingResponse(_stream(request, state, wanted), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
