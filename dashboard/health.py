"""Probes: ``/livez`` (and its older name ``/healthz``) says the process serves requests, ``/readyz`` that Redis
answers too. Liveness never depends on Redis: the dashboard rides an outage out, so restarting it would not help."""

from __future__ import annotations

import redis
from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from dashboard.models import Health
from dashboard.state import DashboardState, get_state

router = APIRouter(tags=["health"])


@router.get("/livez", response_model=Health, summary="Liveness: the process is up")
@router.get("/healthz", response_model=Health, summary="Liveness: the process is up (the older name of /livez)")
def livez() -> Health:
    return Health(status="ok")


@router.get("/readyz", response_model=Health, responses={503: {"model": Health, "description": "Redis unreachable"}},
            summary="Readiness: Redis is reachable")
def readyz(state: DashboardState = Depends(get_state)) -> Health | JSONResponse:
    try:
        state.r.ping()
    except redis.RedisError as exc:
        state.redis_error(exc, "/readyz")
        return JSONResponse(Health(status="unavailable", detail=f"Redis: {exc}").model_dump(), status_code=503)
    state.outage.ok()
    return Health(status="ready")
