"""Who may change the camera registry: a bearer token from the settings guards every write endpoint.

Three modes, fixed at start from the settings:

* ``token``: ``MASKWATCH_API_TOKEN`` is set; a request needs ``Authorization: Bearer <token>``
  (401 without it or with a wrong one).
* ``open``: no token but ``MASKWATCH_ALLOW_NO_TOKEN`` / ``--allow-no-token``: anyone who can reach
  the port may write. For a laptop only; the start-up log says so.
* ``disabled``: no token and no explicit permission: the write endpoints are not started; they
  answer 403 saying how to enable them, and everything read-only works as usual.
"""

from __future__ import annotations

import hmac
import logging
from typing import Any, Literal

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from dashboard.models import ErrorMessage
from maskwatch.settings import Settings

log = logging.getLogger(__name__)
WriteMode = Literal["token", "open", "disabled"]
ENABLE_HINT = ("the write API is disabled because no API token is configured: set MASKWATCH_API_TOKEN and send "
               "'Authorization: Bearer <token>', or, for local use only, start the dashboard with --allow-no-token "
               "(MASKWATCH_ALLOW_NO_TOKEN=1)")

# The answers of require_writer, for the OpenAPI responses of every write endpoint.
WRITER_REFUSED: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorMessage, "description": "missing or wrong bearer token"},
    403: {"model": ErrorMessage, "description": "the write API is disabled: no token is configured (the message says "
                                                "how to enable it)"},
}

_bearer = HTTPBearer(auto_error=False, description="the dashboard's MASKWATCH_API_TOKEN")


def write_mode(settings: Settings) -> WriteMode:
    if settings.api_token:
        return "token"
    return "open" if settings.allow_no_token else "disabled"


def log_write_mode(mode: WriteMode) -> None:
    if mode == "open":
        log.warning("write API open WITHOUT a token (--allow-no-token): anyone who can reach this port can "
                    "change the cameras; use it on a private machine only")
    elif mode == "disabled":
        log.warning("%s", ENABLE_HINT)


def require_writer(request: Request, cred: HTTPAuthorizationCredentials | None = Depends(_bearer)) -> None:
    """FastAPI dependency of every write endpoint."""
    settings: Settings = request.app.state.dashboard.settings
    mode = write_mode(settings)
    if mode == "open":
        return
    if mode == "disabled":
        raise HTTPException(status.HTTP_403_FORBIDDEN, ENABLE_HINT)
    challenge = {"WWW-Authenticate": 'Bearer realm="maskwatch"'}
    if cred is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "missing bearer token: send 'Authorization: Bearer <token>' "
                            "with the dashboard's MASKWATCH_API_TOKEN", headers=challenge)
    assert settings.api_token is not None  # mode "token"
    if not hmac.compare_digest(cred.credentials.encode(), settings.api_token.encode()):
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "wrong bearer token",
                            headers={"WWW-Authenticate": 'Bearer realm="maskwatch", error="invalid_token"'})
