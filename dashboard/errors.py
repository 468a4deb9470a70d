"""Errors the API answers with, shaped like FastAPI's own so clients parse one format."""

from __future__ import annotations

from typing import Any

from fastapi import HTTPException, Path, status

from dashboard.models import ErrorMessage
from maskwatch.keys import CAMERA_ID_PATTERN, check_camera_id

# What every endpoint that reads Redis may answer (the app's RedisError handler), for the OpenAPI schema.
REDIS_UNAVAILABLE: dict[int | str, dict[str, Any]] = {
    503: {"model": ErrorMessage, "description": "Redis cannot be read (the detail says why); /readyz tells when it "
                                                "can"},
}


def unprocessable(where: str, name: str, message: str) -> HTTPException:
    """A 422 in FastAPI's validation format: ``detail`` lists ``loc`` (e.g. ["query", "window"]) and ``msg``."""
    loc = [where, name] if name else [where]
    return HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, [{"loc": loc, "msg": message, "type": "value_error"}])


def not_found(what: str) -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, f"{what} not found")


def camera_id(camera_id: str = Path(description="camera id, as registered",
                                    json_schema_extra={"pattern": CAMERA_ID_PATTERN})) -> str:
    """Path parameter dependency: a camera id that can be part of a Redis key, else a 422 naming it."""
    try:
        return check_camera_id(camera_id)
    except ValueError as exc:
        raise unprocessable("path", "camera_id", str(exc)) from None
