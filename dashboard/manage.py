"""The write API: add, change and remove cameras in the registry (bearer token; see :mod:`dashboard.auth`).

Producers poll the registry's version and pick changes up without a restart. Bodies are the
core's :class:`~maskwatch.cameras.CameraConfig` (a 422 whose ``loc`` names the field), so the API,
the CLI and camera files accept exactly the same configs; a change is checked again once merged
with the stored config. A new or changed URL passes the site's allow-list (a 422 naming ``url``:
another scheme, a file outside the media folder or missing, MaskWatch's own Redis) and is opened
once with a short timeout (:func:`maskwatch.camera_open.first_open`): when that fails the camera is
saved all the same and the answer's ``warning`` says why, in the words its status will use, which
never tell how a network camera failed (the dashboard's log has that).
"""

from __future__ import annotations

import logging
import typing
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Response, status
from pydantic import Field

from dashboard.auth import WRITER_REFUSED, require_writer
from dashboard.bodylimits import BODY_REFUSED
from dashboard.errors import REDIS_UNAVAILABLE, camera_id, not_found, unprocessable
from dashboard.models import CameraCreate, CameraPatch, CameraSettings, ErrorMessage
from dashboard.state import DashboardState, get_state
from maskwatch.camera_open import first_open
from maskwatch.camera_urls import UrlPolicy
from maskwatch.cameras import CameraConfig
from maskwatch.exceptions import CameraError
from maskwatch.redaction import mask_text

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api/cameras", tags=["manage"], dependencies=[Depends(require_writer)], responses={
    **WRITER_REFUSED, **REDIS_UNAVAILABLE, 422: {"description": "malformed body; the message names the field"},
})


def _config(cam: str, data: dict[str, Any], state: DashboardState | None = None) -> CameraConfig:
    """The camera ``data`` describes (a new one, when ``state`` gives the settings' defaults), else a 422."""
    try:
        return CameraConfig.added(state.settings, cam, **data) if state else CameraConfig.from_dict(cam, data)
    except (CameraError, ValueError) as exc:
        raise unprocessable("body", "", str(exc)) from None


class CameraSaved(CameraSettings):
    """The camera as saved (credentials masked), and what its first open found."""

    warning: str | None = Field(None, description=(
        "set when the URL did not open within a few seconds from the dashboard's machine: why, as the camera's "
        "status will say it (the camera is saved; producers keep trying); null when it opened or did not change"))


def _first_open(cam: CameraConfig, state: DashboardState) -> str | None:
    """A 422 naming ``url`` when the site's allow-list refuses it; else opened once: why it did not open, or None."""
    try:
        failed = first_open(cam.url, UrlPolicy.from_settings(state.settings))
    except CameraError as exc:
        raise unprocessable("body", "url", f"camera {cam.id!r}: field 'url': {exc}") from None
    if failed is None:
        return None
    log.info("camera %s did not open when saved: %s", cam.id, mask_text(failed.detail, cam.url))
    return failed.reason


def _saved(cam: CameraConfig, warning: str | None) -> CameraSaved:
    return CameraSaved.model_validate({**cam.public(), "warning": warning})


def _nullable(name: str) -> bool:
    return type(None) in typing.get_args(CameraCreate.model_fields[name].annotation)


@router.post("", status_code=status.HTTP_201_CREATED, response_model=CameraSaved,
             responses={**BODY_REFUSED, 409: {"model": ErrorMessage, "description": "a camera with this id exists"}},
             summary="Add a camera")
def add_camera(body: CameraCreate, state: DashboardState = Depends(get_state)) -> CameraSaved:
    cam = _config(body.id, body.model_dump(exclude={"id"}, exclude_unset=True), state)
    if state.r.hexists(state.keys.cameras, cam.id):
        raise HTTPException(status.HTTP_409_CONFLICT,
                            f"camera {cam.id!r} exists; PATCH /api/cameras/{cam.id} to change it")
    warning = _first_open(cam, state)
    state.registry.put(cam)
    return _saved(cam, warning)


@router.patch("/{camera_id}", response_model=CameraSaved, summary="Change some fields of a camera", responses={
    **BODY_REFUSED, 404: {"model": ErrorMessage, "description": "no such camera"},
    409: {"model": ErrorMessage, "description": "the stored config cannot be read (delete the camera, add it again)"}})
def change_camera(body: CameraPatch, cam_id: str = Depends(camera_id),
                  state: DashboardState = Depends(get_state)) -> CameraSaved:
    try:
        current = state.registry.get(cam_id)
    except CameraError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, f"the stored config cannot be read ({exc}); "
                            f"DELETE /api/cameras/{cam_id} and add it again") from None
    if current is None:
        raise not_found(f"camera {cam_id!r}")
    changes = body.model_dump(exclude_unset=True)
    for name, value in changes.items():
        if value is None and not _nullable(name):
            raise unprocessable("body", name, f"field {name!r} cannot be null")
    cam = _config(cam_id, {**current.model_dump(exclude={"id"}), **changes})
    warning = _first_open(cam, state) if cam.url != current.url else None
    state.registry.put(cam)
    return _saved(cam, warning)


@router.delete("/{camera_id}", status_code=status.HTTP_204_NO_CONTENT, response_class=Response,
               responses={404: {"description": "no such camera"}}, summary="Remove a camera (its statistics stay)")
def remove_camera(cam_id: str = Depends(camera_id), state: DashboardState = Depends(get_state)) -> Response:
    if not state.registry.remove(cam_id):
        raise not_found(f"camera {cam_id!r}")
    return Response(status_code=status.HTTP_204_NO_CONTENT)
