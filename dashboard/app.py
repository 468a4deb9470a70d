"""The dashboard's FastAPI application: routers, static files, the shared state, error handling."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import redis
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles

from dashboard import api, apidocs, health, jobs_views, live, manage, metrics, pages, violations
from dashboard.auth import log_write_mode, write_mode
from dashboard.bodylimits import JSON_BODY_MAX, BodyLimits
from dashboard.state import DashboardState
from dashboard.templating import render
from maskwatch import __version__
from maskwatch.redis_conn import connect
from maskwatch.settings import Settings

log = logging.getLogger(__name__)
STATIC = Path(__file__).parent / "static"
DESCRIPTION = """Live face-mask compliance per camera, violations, workers and queue health, read from Redis.

Compliance is the share of detected faces wearing a mask (with_mask / faces), null when no face
was seen. Write endpoints need `Authorization: Bearer <MASKWATCH_API_TOKEN>`. A readable version of
this schema is at [/api-docs](/api-docs)."""


def create_app(settings: Settings) -> FastAPI:
    """The app for ``settings``; Redis need not be up yet (``/readyz`` says when it is)."""
    state = DashboardState(settings, connect(settings, check=False))
    mode = write_mode(settings)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        log_write_mode(mode)
        yield
        state.r.close()

    app = FastAPI(title="MaskWatch dashboard", version=__version__, description=DESCRIPTION, lifespan=lifespan,
                  docs_url=None, redoc_url=None)  # /docs and /redoc load their scripts from a CDN
    app.state.dashboard = state
    app.state.metrics = metrics.registry_for(state)
    app.state.nav = [("Overview", "/"), ("Violations", "/violations"), ("System", "/system")]
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    for module in (health, api, manage, live, metrics, pages, violations, apidocs, jobs_views):
        app.include_router(module.router)
    app.state.nav += [("Jobs", "/jobs"), ("API", "/api-docs")]
    app.add_middleware(BodyLimits, max_bytes=JSON_BODY_MAX, idle_s=settings.body_timeout_s,
                       routes=jobs_views.body_caps(settings))

    @app.exception_handler(redis.RedisError)
    async def redis_unavailable(request: Request, exc: redis.RedisError) -> Response:
        state.redis_error(exc, request.url.path)
        if "text/html" in request.headers.get("accept", ""):  # a person at a browser, not an API client
            return render(request, "message.html", "Redis unavailable", "", status_code=503,
                          message=f"The dashboard cannot read Redis ({exc}). This page works again as soon as "
                                  "Redis answers; /readyz tells when.", link=("Try again", str(request.url)))
        return JSONResponse({"detail": f"Redis unavailable: {exc}"}, status_code=503)

    return app
