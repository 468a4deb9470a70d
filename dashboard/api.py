"""The read-only JSON API: cameras, their compliance series, people, frames, violations, workers and the system."""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Response

from dashboard import durations, readers, system_reader
from dashboard.errors import REDIS_UNAVAILABLE, camera_id, not_found, unprocessable
from dashboard.models import (
    MAX_EPOCH_MS,
    CameraDetail,
    CameraSummary,
    ErrorMessage,
    Overview,
    PeoplePage,
    Series,
    System,
    ViolationEvent,
    Worker,
)
from dashboard.state import DashboardState, get_state
from maskwatch.keys import CAMERA_ID_PATTERN
from maskwatch.people import Cursor
from maskwatch.utils import now_ms

router = APIRouter(prefix="/api", tags=["read"], responses=REDIS_UNAVAILABLE)
_NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": ErrorMessage, "description": "no such camera"}}
_JPEG: dict[int | str, dict[str, Any]] = {200: {"content": {"image/jpeg": {}}, "description": "a JPEG image"},
                                          404: {"model": ErrorMessage, "description": "no image (yet, or expired)"}}
# Each parameter's schema states what the endpoint takes, so a client (or a fuzzer) can tell a 422 coming.
_DURATION = {"pattern": durations.DURATION_PATTERN}
EventId = Annotated[str, Path(pattern=r"^[A-Za-z0-9_.:-]{1,128}$", description=(
    "a violation's id, or person-{camera}-{n} for a person's best look"))]
# {epoch ms} or {epoch ms}:{person id}, as next_before gives it (maskwatch.people.Cursor)
_CURSOR = re.compile(r"^[0-9]{1,15}(:[A-Za-z0-9][A-Za-z0-9_.-]{0,63}-[0-9]{1,20})?$")


def _jpeg(data: bytes | str | None, what: str) -> Response:
    """A Redis GET reply as a JPEG response (bytes: the client never decodes replies); 404 when missing."""
    if data is None:
        raise not_found(what)
    # frames change every second and snapshots are evidence: never serve a cached copy
    return Response(data, media_type="image/jpeg", headers={"Cache-Control": "no-store"})


@router.get("/overview", response_model=Overview, summary="Site headline and every camera's figures")
def get_overview(state: DashboardState = Depends(get_state)) -> Overview:
    return readers.overview(state, now_ms())


@router.get("/cameras", response_model=list[CameraSummary], summary="Every registered camera with its compliance")
def list_cameras(state: DashboardState = Depends(get_state)) -> list[CameraSummary]:
    return readers.overview(state, now_ms()).cameras


@router.get("/cameras/{camera_id}", response_model=CameraDetail, responses=_NOT_FOUND,
            summary="One camera: figures, config (credentials masked) and the producer's report")
def get_camera(cam: str = Depends(camera_id), state: DashboardState = Depends(get_state)) -> CameraDetail:
    detail = readers.camera_detail(state, cam, now_ms())
    if detail is None:
        raise not_found(f"camera {cam!r}")
    return detail


@router.get("/cameras/{camera_id}/compliance", response_model=Series, responses=_NOT_FOUND,
            summary="Compliance over time, bucketed by capture time")
def get_compliance(
    cam: str = Depends(camera_id),
    window: str = Query("1h", json_schema_extra=_DURATION,
                        description="how far back: 15m to 7d (a number with unit s, m, h or d)"),
    step: str | None = Query(None, json_schema_extra=_DURATION, description=(
        "length of one point, whole minutes (e.g. 5m); default: a round step giving about 120 points")),
    state: DashboardState = Depends(get_state),
) -> Series:
    try:
        window_s = durations.parse_duration(window)
        durations.check_window(window_s)
    except ValueError as exc:
        raise unprocessable("query", "window", str(exc)) from None
    try:
        step_s = durations.auto_step(window_s) if step is None else durations.parse_duration(step)
        durations.check_step(window_s, step_s)
    except ValueError as exc:
        raise unprocessable("query", "step", str(exc)) from None
    if not state.r.hexists(state.keys.cameras, cam):
        raise not_found(f"camera {cam!r}")
    return readers.compliance_series(state, cam, window_s, step_s, now_ms())


@router.get("/cameras/{camera_id}/latest.jpg", response_class=Response, responses=_JPEG,
            summary="The newest annotated frame (kept for a short while after the worker wrote it)")
def get_latest(cam: str = Depends(camera_id), state: DashboardState = Depends(get_state)) -> Response:
    return _jpeg(state.r.get(state.keys.latest(cam)), f"recent frame of camera {cam!r}")


class PeopleQuery:
    """The paging parameters both people lists take."""

    def __init__(
        self,
        limit: int = Query(24, ge=1, le=200, description="at most this many people"),
        before: str | None = Query(None, json_schema_extra={"pattern": _CURSOR.pattern}, description=(
            "only people last seen before this point: an epoch ms, or the next_before of the previous page")),
        unmasked_first: bool = Query(False, description=(
            "put the page's people without a mask first (each group newest first); pages still go by time")),
    ):
        if before is not None and not _CURSOR.fullmatch(before):
            raise unprocessable("query", "before", f"{before!r} is not a cursor: give an epoch ms (at most 15 digits), "
                                                   "or the next_before of the previous page")
        self.before = Cursor.parse(before) if before is not None else None
        self.limit, self.unmasked_first = limit, unmasked_first


@router.get("/cameras/{camera_id}/people", response_model=PeoplePage, responses=_NOT_FOUND,
            summary="The camera's people (tracked persons), newest first, one page")
def list_camera_people(cam: str = Depends(camera_id), q: PeopleQuery = Depends(),
                       state: DashboardState = Depends(get_state)) -> PeoplePage:
    if not state.r.hexists(state.keys.cameras, cam):
        raise not_found(f"camera {cam!r}")
    return readers.people_page(state, [cam], q.limit, q.before, q.unmasked_first)


@router.get("/people", response_model=PeoplePage, summary="People of every registered camera, newest first, one page")
def list_people(q: PeopleQuery = Depends(), state: DashboardState = Depends(get_state)) -> PeoplePage:
    configs, errors = state.registry.all()
    return readers.people_page(state, sorted({*configs, *errors}), q.limit, q.before, q.unmasked_first)


@router.get("/events", response_model=list[ViolationEvent], summary="Violations, newest first")
def list_events(
    camera: str | None = Query(None, pattern=CAMERA_ID_PATTERN, description="only this camera's violations"),
    since: int | None = Query(None, ge=0, le=MAX_EPOCH_MS,
                              description="only violations captured at or after this time, epoch ms"),
    limit: int = Query(50, ge=1, le=500, description="at most this many"),
    state: DashboardState = Depends(get_state),
) -> list[ViolationEvent]:
    return readers.recent_events(state, camera, since, limit)


@router.get("/events/{event_id}/snapshot.jpg", response_class=Response, responses=_JPEG,
            summary="The JPEG of a violation, or of a person's best look (id person-{camera}-{n}); expires with the "
                    "retention")
def get_snapshot(event_id: EventId, state: DashboardState = Depends(get_state)) -> Response:
    return _jpeg(state.r.get(state.keys.snap(event_id)), f"snapshot of event {event_id!r}")


@router.get("/workers", response_model=list[Worker], summary="Workers with a live heartbeat")
def list_workers(state: DashboardState = Depends(get_state)) -> list[Worker]:
    return system_reader.workers(state.r, state.keys)


@router.get("/system", response_model=System, summary="Queue lag, workers, dead letters and per-camera frame flow")
def get_system(state: DashboardState = Depends(get_state)) -> System:
    return system_reader.system(state, now_ms())
