"""What the jobs share: the runner's settings, Redis client and, loaded once, the vision pipeline.

RQ calls a job function with its JSON arguments only (the queues use RQ's JSON serializer, never
pickle: see :func:`maskwatch.jobstore.queue`). Settings, the connection and the models come from
the process that runs the job: `maskwatch jobs` installs them with :func:`install`; a job run by
any other RQ worker falls back to settings from the environment.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import redis

from maskwatch import jobstore
from maskwatch.keys import Keys
from maskwatch.redis_conn import connect
from maskwatch.service import StopSignal
from maskwatch.settings import Settings
from worker.jobs.metrics import JobsMetrics

if TYPE_CHECKING:
    from maskwatch.vision.pipeline import Pipeline


@dataclass
class JobContext:
    settings: Settings
    r: redis.Redis
    keys: Keys = field(init=False)
    metrics: JobsMetrics = field(default_factory=JobsMetrics, init=False)
    stop: StopSignal | None = field(default=None, init=False)  # the runner's: long jobs end early once it is set
    _pipeline: Pipeline | None = field(default=None, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)

    def __post_init__(self) -> None:
        self.keys = Keys(self.settings.prefix)

    def pipeline(self) -> Pipeline:
        """The detector and classifier, loaded on first use (seconds) and kept for the next analysis."""
        with self._lock:
            if self._pipeline is None:
                from maskwatch.vision.pipeline import Pipeline  # onnxruntime loads only if an analysis runs

                self._pipeline = Pipeline.from_settings(self.settings)
            return self._pipeline

    def snapshot_url(self, event_id: str) -> str:
        """Where the dashboard serves a snapshot: absolute if MASKWATCH_DASHBOARD_URL is set, else a path."""
        return jobstore.snapshot_url(event_id, self.settings.dashboard_url)


_current: JobContext | None = None


def install(settings: Settings, r: redis.Redis) -> JobContext:
    """Make ``settings`` and ``r`` the context of the jobs this process runs."""
    global _current
    _current = JobContext(settings, r)
    return _current


def context() -> JobContext:
    return _current if _current is not None else install(*_from_env())


def _from_env() -> tuple[Settings, redis.Redis]:
    s = Settings.from_env()
    return s, connect(s)
