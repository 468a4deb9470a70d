"""The HTML pages: overview, camera, system and an offline API reference.

Pages are rendered with their first figures embedded as JSON; the page scripts draw them and
then keep them current from the live stream (:mod:`dashboard.live`), so the same code draws the
first view and every update.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse

from dashboard import readers, system_reader
from dashboard.models import WINDOWS
from dashboard.state import DashboardState, get_state
from dashboard.templating import render
from maskwatch.keys import check_camera_id
from maskwatch.utils import now_ms

router = APIRouter(include_in_schema=False)
EVENTS_ON_PAGE = 24
OVERVIEW_EVENTS = 12  # the overview's strip of recent violations, all cameras


def _json(model: Any) -> Any:
    return model.model_dump(mode="json", by_alias=True)


@router.get("/", response_class=HTMLResponse)
def overview_page(request: Request, state: DashboardState = Depends(get_state)) -> HTMLResponse:
    events = readers.recent_events(state, None, None, OVERVIEW_EVENTS)
    return render(request, "overview.html", "Overview", "Overview", initial=_json(state.overview.get()),
                  events=[_json(e) for e in events], windows=list(WINDOWS))


@router.get("/cameras/{camera_id}", response_class=HTMLResponse)
def camera_page(camera_id: str, request: Request, state: DashboardState = Depends(get_state)) -> HTMLResponse:
    try:
        detail = readers.camera_detail(state, check_camera_id(camera_id), now_ms())
    except ValueError:
        detail = None
    if detail is None:
        return render(request, "message.html", "Unknown camera", "Overview", status_code=404,
                      message=f"There is no camera {camera_id!r}.", link=("Back to the overview", "/"))
    events = readers.recent_events(state, detail.id, None, EVENTS_ON_PAGE)
    return render(request, "camera.html", detail.id, "Overview", camera=detail, initial=_json(detail),
                  events=[_json(e) for e in events], windows=list(WINDOWS))


@router.get("/system", response_class=HTMLResponse)
def system_page(request: Request, state: DashboardState = Depends(get_state)) -> HTMLResponse:
    return render(request, "system.html", "System", "System", initial=_json(system_reader.system(state, now_ms())))
