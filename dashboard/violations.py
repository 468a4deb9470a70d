"""Violations, filtered and paged: the page ``/violations`` and its JSON, ``GET /api/violations``.

Both take the same filters: ``camera`` (repeat it for several), a time range of capture times
(``last``, e.g. ``24h``, or ``since`` / ``until`` in epoch ms) and the page (``limit``, and ``before``:
the ``next_before`` of the previous page, an events-stream entry id, so paging is exact however many
violations arrive meanwhile). A parameter that is not one of these is refused with a 422 naming it,
so a misspelt filter never silently returns everything.
"""

from __future__ import annotations

import re

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse

from dashboard import durations, readers
from dashboard.errors import REDIS_UNAVAILABLE, unprocessable
from dashboard.models import MAX_EPOCH_MS, ValidationErrors, ViolationsPage
from dashboard.state import DashboardState, get_state
from dashboard.templating import render
from maskwatch.keys import CAMERA_ID_PATTERN, check_camera_id
from maskwatch.utils import now_ms

router = APIRouter()
FILTERS = ("camera", "last", "since", "until", "before", "limit")
RANGES = ("1h", "24h", "7d")  # the page's quick choices besides "everything kept" and a custom range
# An events-stream entry id, as next_before gives it: ms and sequence within Redis' 64 bits, and never 0-0 (no
# entry comes before it; Redis refuses the range).
ENTRY_ID_PATTERN = r"^[0-9]{1,15}-[0-9]{1,19}$"
_ENTRY_ID = re.compile(ENTRY_ID_PATTERN)
# The schema shows each pattern; the checks below enforce them with messages that say how to fix the request.
_CAMERA = {"items": {"type": "string", "pattern": CAMERA_ID_PATTERN}}


class ViolationsQuery:
    """The filters and page of a violations request, checked; every error is a 422 naming its parameter."""

    def __init__(
        self,
        request: Request,
        camera: list[str] | None = Query(None, json_schema_extra=_CAMERA,
                                         description="only these cameras' violations; repeat for several"),
        last: str | None = Query(None, json_schema_extra={"pattern": durations.DURATION_PATTERN}, description=(
            "only violations captured this long ago at most: a number with unit m, h or d (e.g. 24h); "
            "instead of since")),
        since: int | None = Query(None, ge=0, le=MAX_EPOCH_MS,
                                  description="only violations captured at or after this time, epoch ms"),
        until: int | None = Query(None, ge=0, le=MAX_EPOCH_MS,
                                  description="only violations captured at or before this time, epoch ms"),
        before: str | None = Query(None, json_schema_extra={"pattern": ENTRY_ID_PATTERN},
                                   description="the next_before of the previous page: the page after it"),
        limit: int = Query(24, ge=1, le=200, description="at most this many violations a page"),
    ):
        unknown = sorted(set(request.query_params) - set(FILTERS))
        if unknown:
            raise unprocessable("query", unknown[0], f"{unknown[0]!r} is not a filter of violations: use "
                                                     f"{', '.join(FILTERS)}")
        try:
            self.cameras = sorted({check_camera_id(c) for c in camera}) if camera else None
        except ValueError as exc:
            raise unprocessable("query", "camera", str(exc)) from None
        if last is not None:
            if since is not None:
                raise unprocessable("query", "last", "give either last or since, not both")
            try:
                since = now_ms() - 1000 * durations.parse_duration(last)
            except ValueError as exc:
                raise unprocessable("query", "last", str(exc)) from None
        if since is not None and until is not None and until < since:
            raise unprocessable("query", "until", f"until ({until}) is before since ({since})")
        if before is not None and (not _ENTRY_ID.fullmatch(before) or not before.strip("0-")):
            raise unprocessable("query", "before", f"{before!r} is not a cursor: pass the next_before of the "
                                                   "previous page")
        self.last, self.since, self.until, self.before, self.limit = last, since, until, before, limit

    def page(self, state: DashboardState) -> ViolationsPage:
        return readers.violations_page(state, self.cameras, self.since, self.until, self.before, self.limit)


@router.get("/api/violations", response_model=ViolationsPage, tags=["read"],
            summary="Violations newest first, filtered by camera and capture time, one page",
            responses={**REDIS_UNAVAILABLE,
                       422: {"model": ValidationErrors, "description": "a filter is malformed or unknown (detail "
                                                                       "names it)"}})
def list_violations(q: ViolationsQuery = Depends(), state: DashboardState = Depends(get_state)) -> ViolationsPage:
    return q.page(state)


@router.get("/violations", response_class=HTMLResponse, include_in_schema=False)
def violations_page(request: Request, q: ViolationsQuery = Depends(),
                    state: DashboardState = Depends(get_state)) -> HTMLResponse:
    configs, errors = state.registry.all()
    cams = sorted({*configs, *errors, *(q.cameras or ())})
    filters = {"camera": q.cameras[0] if q.cameras else "", "last": q.last or "", "since": q.since if not q.last else
               None, "until": q.until, "limit": q.limit, "before": q.before}
    return render(request, "violations.html", "Violations", "Violations", cameras=cams, ranges=RANGES,
                  filters=filters, initial=q.page(state).model_dump(mode="json"))
