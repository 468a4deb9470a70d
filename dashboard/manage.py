"""The write API: add, change and remove cameras in the registry (bearer token; see :mod:`dashboard.auth`).

Producers poll the registry's version and pick changes up without a restart. Bodies are the
core's :class:`~maskwatch.cameras.CameraConfig` (a 422 whose ``loc`` names the field), so the API,
the CLI and camera files accept exactly the same configs; a change is checked again once merged
with the stored config.
"""

from __future__ import annotations

import typing
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Response, status

from dashboard.auth import require_writer
from dashboard.errors import camera_id, not_found, unprocessable
from dashboard.models import CameraCreate, CameraPatch, CameraSettings
from dashboard.state import DashboardState, get_state
from maskwatch.cameras import CameraConfig
from maskwatch.exceptions import CameraError

router = APIRouter(prefix="/api/cameras", tags=["manage"], dependencies=[Depends(require_writer)], responses={
    401: {"description": "missing or wrong bearer token"},
    403: {"description": "the write API is disabled: no token is configured (the message says how to enable it)"},
    422: {"description": "malformed body; the message names the field"},
})


def _config(cam: str, data: dict[str, Any], state: DashboardState | None = None) -> CameraConfig:
    """The camera ``data`` describes (a new one, when ``state`` gives the settings' defaults), else a 422."""
    try:
        return CameraConfig.added(state.settings, cam, **data) if state else CameraConfig.from_dict(cam, data)
    except (CameraError, ValueError) as exc:
        raise unprocessable("body", "", str(exc)) from None


def _nullable(name: str) -> bool:
    return type(None) in typing.get_args(CameraCreate.model_fields[name].annotation)


@router.post("", status_code=status.HTTP_201_CREATED, response_model=CameraSettings,
             responses={409: {"description": "a camera with this id exists"}}, summary="Add a camera")
def add_camera(body: CameraCreate, state: DashboardState = Depends(get_state)) -> CameraSettings:
    cam = _config(body.id, body.model_dump(exclude={"id"}, exclude_unset=True), state)
    if state.r.hexists(state.keys.cameras, cam.id):
        raise HTTPException(status.HTTP_409_CONFLICT,
                            f"camera {cam.id!r} exists; PATCH /api/cameras/{cam.id} to change it")
    state.registry.put(cam)
    return CameraSettings.model_validate(cam.public())


@router.patch("/{camera_id}", response_model=CameraSettings, responses={404: {"description": "no such camera"}},
              summary="Change some fields of a camera")
def change_camera(body: CameraPatch, cam_id: str = Depends(camera_id),
                  state: DashboardState = Depends(get_state)) -> CameraSettings:
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
    state.registry.put(cam)
    return CameraSettings.model_validate(cam.public())


@router.delete("/{camera_id}", status_code=status.HTTP_204_NO_CONTENT, response_class=Response,
               responses={404: {"description": "no such camera"}}, summary="Remove a camera (its statistics stay)")
def remove_camera(cam_id: str = Depends(camera_id), state: DashboardState = Depends(get_state)) -> Response:
    if not state.registry.remove(cam_id):
        raise not_found(f"camera {cam_id!r}")
    return Response(status_code=status.HTTP_204_NO_CONTENT)
