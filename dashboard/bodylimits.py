"""Request bodies bounded in size and in time, as their bytes arrive (docs/security.md).

uvicorn hands a body to the app only as fast as the app reads it, and has no timeout of its own
for a client that stops sending one. This ASGI middleware wraps ``receive``:

* a declared ``Content-Length`` past the route's cap is refused with 413 at the first read, before
  a byte of the body is taken; counted bytes past the cap (a chunked body, a lying length) are
  refused with 413 as soon as they arrive;
* a body that sends nothing for ``idle_s`` while more is announced is cut off with 408;
* a response that starts before the body was read to its end (a 401 of a route that checks the
  token before reading, or the 413 and 408 above) carries ``Connection: close``, so uvicorn closes
  the connection rather than reading the rest of the body to throw it away.

The checks run when the app reads, so a route that answers before reading reads nothing at all:
the upload route checks the token from the headers first (:mod:`dashboard.jobs_views`), and a
client that sends ``Expect: 100-continue`` is then refused without sending its body.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import anyio
from fastapi import HTTPException, status
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dashboard.models import ErrorMessage

JSON_BODY_MAX = 64 * 1024  # a camera's config is well under 1 KiB
# What every endpoint that reads a body may answer, for its OpenAPI responses: BodyLimits' 408 and 413, and
# the 400 of a body that cannot be parsed at all (FastAPI's for JSON that is not UTF-8, Starlette's for a broken form).
BODY_REFUSED: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorMessage, "description": "the body cannot be parsed: JSON that is not UTF-8, or a broken "
                                                "multipart form (the detail says what)"},
    408: {"model": ErrorMessage, "description": "the body stalled (MASKWATCH_BODY_TIMEOUT_S); the connection is "
                                                "closed"},
    413: {"model": ErrorMessage, "description": "the body is larger than this endpoint takes"},
}


def too_large(cap: int) -> HTTPException:
    return HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, f"the request body is larger than this endpoint takes: "
                         f"{cap} bytes ({cap / 2**20:.1f} MiB)")


def _declared_length(scope: Scope) -> tuple[int | None, bool]:
    """The body's declared length (None: chunked, or not a number) and whether a body is announced at all."""
    headers = dict(scope["headers"])
    if b"content-length" in headers:
        try:
            length = int(headers[b"content-length"])
        except ValueError:  # h11 refuses such a request before the app sees it; be safe anyway
            return None, True
        return length, length > 0
    return None, b"chunked" in headers.get(b"transfer-encoding", b"").lower()


class BodyLimits:
    """ASGI middleware: per-route body caps (``routes``: (method, path) -> bytes; others ``max_bytes``) and a body
    idle timeout."""

    def __init__(self, app: ASGIApp, max_bytes: int, idle_s: float, routes: Mapping[tuple[str, str], int]) -> None:
        self.app, self.max_bytes, self.idle_s, self.routes = app, max_bytes, idle_s, dict(routes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        cap = self.routes.get((scope["method"], scope["path"]), self.max_bytes)
        declared, pending = _declared_length(scope)
        received = 0

        async def bounded_receive() -> Message:
            nonlocal received, pending
            if not pending:  # no body, or all of it read: only a disconnect can come, whenever it does
                return await receive()
            if declared is not None and declared > cap:
                raise too_large(cap)
            try:
                with anyio.fail_after(self.idle_s):
                    message = await receive()
            except TimeoutError:
                raise HTTPException(status.HTTP_408_REQUEST_TIMEOUT, f"the request body sent nothing for "
                                    f"{self.idle_s:g} s; the connection is closed") from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > cap:
                    raise too_large(cap)
                pending = message.get("more_body", False)
            else:  # http.disconnect: nothing more comes
                pending = False
            return message

        async def closing_send(message: Message) -> None:
            if message["type"] == "http.response.start" and pending:
                message = {**message, "headers": [*message.get("headers", []), (b"connection", b"close")]}
            await send(message)

        await self.app(scope, bounded_receive, closing_send)
