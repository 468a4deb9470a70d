"""What every route needs: settings, the Redis client, key names, the camera registry, a short cache."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import redis
from fastapi import Request

from dashboard import readers, system_reader
from dashboard.models import Latency, Overview
from maskwatch.cameras import Registry
from maskwatch.compliance import Counts
from maskwatch.keys import Keys
from maskwatch.service import OUTAGE_ERRORS, RedisOutage, redis_address
from maskwatch.settings import Settings
from maskwatch.utils import now_ms

log = logging.getLogger(__name__)
T = TypeVar("T")
OVERVIEW_MAX_AGE_S = 1.0  # live pages tick once a second


class Cached(Generic[T]):
    """The last value of ``compute``, recomputed when older than ``max_age_s``.

    Every open live page asks for the overview each second; the cache makes that one Redis read
    per second however many screens are watching.
    """

    def __init__(self, compute: Callable[[], T], max_age_s: float):
        self.compute, self.max_age_s = compute, max_age_s
        self._lock = threading.Lock()
        self._value: T | None = None
        self._at = float("-inf")

    def get(self) -> T:
        with self._lock:
            if time.monotonic() - self._at > self.max_age_s or self._value is None:
                self._value = self.compute()
                self._at = time.monotonic()
            return self._value


class BinCache:
    """Per camera, bins of minute counts computed for the latest bounds; all dropped when the bounds move."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._bounds: tuple[int, ...] = ()
        self._bins: dict[str, list[Counts]] = {}

    def get(self, bounds: Sequence[int], cams: Sequence[str],
            compute: Callable[[list[str]], dict[str, list[Counts]]]) -> dict[str, list[Counts]]:
        with self._lock:
            if tuple(bounds) != self._bounds:
                self._bounds, self._bins = tuple(bounds), {}
            missing = [c for c in cams if c not in self._bins]
            if missing:
                self._bins.update(compute(missing))
            return {c: self._bins[c] for c in cams}


@dataclass
class DashboardState:
    settings: Settings
    r: redis.Redis
    keys: Keys = field(init=False)
    registry: Registry = field(init=False)
    overview: Cached[Overview] = field(init=False)
    latency: Cached[tuple[Latency, dict[str, Latency]]] = field(init=False)  # all cameras, and per camera
    stopping: threading.Event = field(default_factory=threading.Event)  # set when the server shuts down
    older_bins: BinCache = field(default_factory=BinCache)
    outage: RedisOutage = field(init=False)  # said once when Redis goes away, once when it is back

    def __post_init__(self) -> None:
        self.keys = Keys(self.settings.prefix)
        self.outage = RedisOutage("dashboard", redis_address(self.r),
                                  "pages and the API answer 503 and /readyz too, until it is back")
        self.registry = Registry(self.r, self.keys)
        self.overview = Cached(lambda: readers.overview(self, now_ms()), max_age_s=OVERVIEW_MAX_AGE_S)
        self.latency = Cached(lambda: system_reader.latencies(self.r, self.keys, now_ms()),
                              max_age_s=system_reader.LATENCY_MAX_AGE_S)

    def redis_error(self, exc: redis.RedisError, where: str) -> None:
        """Say a Redis error met by ``where``: unreachable once per outage (not once a request, a scrape
        or a live tick), any other error (a refused command) each time."""
        if isinstance(exc, OUTAGE_ERRORS):
            self.outage.failed(exc)
        else:
            log.warning("%s: Redis error: %s", where, exc)

    @property
    def stale_after_s(self) -> float:
        """A producer silent this long is gone: its camera lease has expired twice over."""
        return 2 * self.settings.lease_ttl_ms / 1000


def get_state(request: Request) -> DashboardState:
    """FastAPI dependency: the app's :class:`DashboardState`."""
    return request.app.state.dashboard


