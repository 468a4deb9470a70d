"""Side-job records shared by the job runner (``worker.jobs``) and the dashboard.

The dashboard may not import the worker package, so everything both sides need lives here: the
RQ queues (JSON serializer, never pickle), enqueueing an analysis by the job's dotted name,
uploaded videos, analysis reports, failed webhook deliveries, alert states and a summary of the
jobs. The runner writes these records through this module and the dashboard reads them through
it, so each record has one format.

>>> queue_name("mw", NOTIFY), queue_name("mw", ANALYSIS)
('mw-notify', 'mw-analysis')
>>> AlertState.from_hash("lobby", AlertState("lobby", "firing", 5, 0.5, 12, 6, 1).to_hash()).state
'firing'
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import redis
from rq import Queue
from rq.job import Job
from rq.serializers import JSONSerializer

from maskwatch.exceptions import JobInputError
from maskwatch.keys import Keys, check_camera_id
from maskwatch.utils import decode_hash, now_ms, text

NOTIFY = "notify"  # webhook deliveries: short, retried, listed first so they never wait behind a backlog
ANALYSIS = "analysis"  # offline video analysis: long
# RQ calls a job by its dotted name in another process. This is the one arrow no import shows
# (the dashboard may not import the worker); tests/test_architecture.py checks that it resolves.
ANALYZE_FUNC = "worker.jobs.analysis.analyze_video"
ANALYSIS_TIMEOUT_S = 6 * 3600
JOB_RESULT_TTL_S = 86_400
JOB_FAILURE_TTL_S = 7 * 86_400
MAX_UPLOAD_BYTES = 256 * 1024 * 1024  # the upload travels through Redis to whichever runner takes the job
UPLOAD_TTL_S = 86_400
FAILED_DELIVERIES_MAXLEN = 1000
MAX_FPS = 60.0


def queue_name(prefix: str, kind: str) -> str:
    return f"{prefix}-{kind}"


def queue(r: redis.Redis, prefix: str, kind: str) -> Queue:
    """One of MaskWatch's RQ queues; the JSON serializer means no job payload is ever pickled."""
    return Queue(queue_name(prefix, kind), connection=r, serializer=JSONSerializer)


def queues(r: redis.Redis, prefix: str) -> list[Queue]:
    """All queues in the order a runner serves them (deliveries first)."""
    return [queue(r, prefix, NOTIFY), queue(r, prefix, ANALYSIS)]


def snapshot_url(event_id: str, base_url: str | None = None) -> str:
    """Where the dashboard serves a violation's snapshot: a path, or absolute under ``base_url``.

    >>> snapshot_url("lobby-1-2"), snapshot_url("lobby-1-2", "https://mw.example/")
    ('/api/events/lobby-1-2/snapshot.jpg', 'https://mw.example/api/events/lobby-1-2/snapshot.jpg')
    """
    return (base_url or "").rstrip("/") + f"/api/events/{event_id}/snapshot.jpg"


# --- offline analysis: input and reports

def store_upload(r: redis.Redis, keys: Keys, data: bytes, filename: str) -> dict[str, str]:
    """Keep an uploaded video in Redis for the job; returns the job's ``source`` argument."""
    if not data:
        raise JobInputError(f"the uploaded file {filename!r} is empty")
    if len(data) > MAX_UPLOAD_BYTES:
        raise JobInputError(f"the uploaded file {filename!r} is {len(data) / 2**20:.0f} MiB; the limit is "
                            f"{MAX_UPLOAD_BYTES // 2**20} MiB (analyse bigger files with `maskwatch analyze FILE`)")
    upload_id = uuid.uuid4().hex
    r.set(keys.upload(upload_id), data, ex=UPLOAD_TTL_S)
    return {"upload": upload_id, "name": filename}


def check_analysis_options(camera: str | None, fps: float) -> None:
    """Raise :class:`JobInputError` naming the option that an analysis cannot take."""
    if camera is not None:
        try:
            check_camera_id(camera)
        except ValueError as exc:
            raise JobInputError(str(exc)) from None
    if not 0 < fps <= MAX_FPS:
        raise JobInputError(f"fps must be in (0, {MAX_FPS:g}], got {fps!r}")


def enqueue_analysis(r: redis.Redis, prefix: str, source: Mapping[str, str], camera: str | None = None,
                     fps: float = 5.0) -> Job:
    """Queue an analysis of ``source`` (``{"path": ...}`` or what :func:`store_upload` returned)."""
    if not ("path" in source or "upload" in source):
        raise JobInputError(f"source must name a 'path' or an 'upload', got {dict(source)!r}")
    check_analysis_options(camera, fps)
    name = source.get("name") or source.get("path", "")
    return queue(r, prefix, ANALYSIS).enqueue(
        ANALYZE_FUNC, kwargs={"source": dict(source), "camera": camera, "fps": fps},
        job_timeout=ANALYSIS_TIMEOUT_S, result_ttl=JOB_RESULT_TTL_S, failure_ttl=JOB_FAILURE_TTL_S,
        description=f"analyse {name}" + (f" for camera {camera}" if camera else ""))


def save_report(r: redis.Redis, keys: Keys, job_id: str, report: Mapping[str, Any], ttl_s: int) -> None:
    """Store a finished report and list it; reports (and their snapshots) expire after ``ttl_s``."""
    created = now_ms()
    with r.pipeline() as p:
        p.set(keys.analysis(job_id), json.dumps(report, separators=(",", ":")), ex=ttl_s)
        p.zadd(keys.analyses, {job_id: created})
        p.zremrangebyscore(keys.analyses, "-inf", created - ttl_s * 1000)
        p.execute()


def read_report(r: redis.Redis, keys: Keys, job_id: str) -> dict[str, Any] | None:
    raw = r.get(keys.analysis(job_id))
    return json.loads(raw) if raw is not None else None


def list_reports(r: redis.Redis, keys: Keys, limit: int = 50) -> list[dict[str, Any]]:
    """The newest reports without their series and violations: job id, video, camera, times, totals."""
    found: Any = r.zrevrange(keys.analyses, 0, limit - 1)
    ids = [text(i) for i in found]
    raws: Any = r.mget([keys.analysis(i) for i in ids]) if ids else []
    summary_fields = ("job_id", "video", "camera", "started_ms", "finished_ms", "duration_s", "totals")
    return [{k: rep.get(k) for k in summary_fields} for rep in (json.loads(x) for x in raws if x is not None)]


# --- webhook deliveries that failed for good

@dataclass(frozen=True)
class FailedDelivery:
    """A webhook delivery that failed its last try."""

    id: str
    kind: str  # violation | alert
    camera: str
    url: str  # credentials masked
    attempts: int
    error: str
    failed_ms: int
    payload: dict[str, Any] = field(default_factory=dict)


def record_failed_delivery(r: redis.Redis, keys: Keys, d: FailedDelivery) -> None:
    fields: Any = {**asdict(d), "payload": json.dumps(d.payload, separators=(",", ":"))}
    r.xadd(keys.deliveries, fields, maxlen=FAILED_DELIVERIES_MAXLEN, approximate=True)


def failed_deliveries(r: redis.Redis, keys: Keys, limit: int = 50) -> list[FailedDelivery]:
    """Failed deliveries, newest first."""
    out = []
    entries: Any = r.xrevrange(keys.deliveries, count=limit)
    for _, raw in entries:
        f = decode_hash(raw)
        out.append(FailedDelivery(id=f.get("id", "?"), kind=f.get("kind", "?"), camera=f.get("camera", ""),
                                  url=f.get("url", ""), attempts=int(f.get("attempts", 0)), error=f.get("error", ""),
                                  failed_ms=int(f.get("failed_ms", 0)), payload=json.loads(f.get("payload") or "{}")))
    return out


# --- compliance alerts

@dataclass(frozen=True)
class AlertState:
    """A camera's alert: ``firing`` since ``since_ms`` or ``ok``, and the figures of the last evaluation.

    ``compliance`` is the figure judged, on ``basis``: ``people`` with tracking on or when the window
    counted people, else ``observations`` (faces in frames)."""

    camera: str
    state: str = "ok"  # ok | firing
    since_ms: int = 0
    compliance: float | None = None
    faces: int = 0
    evaluated_ms: int = 0
    episodes: int = 0  # how many times it has fired
    basis: str = "observations"  # people | observations
    people: int = 0

    def to_hash(self) -> dict[str, str]:
        return {"state": self.state, "since_ms": str(self.since_ms), "episodes": str(self.episodes),
                "compliance": "" if self.compliance is None else f"{self.compliance:.4f}", "faces": str(self.faces),
                "evaluated_ms": str(self.evaluated_ms), "basis": self.basis, "people": str(self.people)}

    @classmethod
    def from_hash(cls, camera: str, raw: Mapping[bytes | str, bytes | str]) -> AlertState:
        f = decode_hash(raw)
        compliance = f.get("compliance") or None
        return cls(camera=camera, state=f.get("state", "ok"), since_ms=int(f.get("since_ms", 0)),
                   compliance=float(compliance) if compliance else None, faces=int(f.get("faces", 0)),
                   evaluated_ms=int(f.get("evaluated_ms", 0)), episodes=int(f.get("episodes", 0)),
                   basis=f.get("basis", "observations"), people=int(f.get("people", 0)))


def alert_states(r: redis.Redis, keys: Keys, cams: Sequence[str]) -> list[AlertState]:
    """The alert state of each camera (``ok`` for a camera never evaluated), firing ones first."""
    with r.pipeline(transaction=False) as p:
        for cam in cams:
            p.hgetall(keys.alert(cam))
        states = [AlertState.from_hash(cam, raw) for cam, raw in zip(cams, p.execute())]
    return sorted(states, key=lambda a: (a.state != "firing", a.camera))


# --- the jobs themselves

@dataclass(frozen=True)
class JobInfo:
    id: str
    queue: str
    func: str
    description: str
    status: str
    enqueued_ms: int | None
    started_ms: int | None
    ended_ms: int | None
    error: str | None  # a failed job's exception and message (the traceback's last line)
    progress: float | None  # 0..1, for jobs that report it


@dataclass(frozen=True)
class JobsOverview:
    queued: list[JobInfo]
    running: list[JobInfo]
    scheduled: list[JobInfo]  # waiting for a retry
    failed: list[JobInfo]
    finished: list[JobInfo]


def _ms(t: datetime | None) -> int | None:
    return int(t.timestamp() * 1000) if t is not None else None


def _error(job: Job) -> str | None:
    result = job.latest_result()
    text = result.exc_string if result is not None and result.exc_string else None
    if not text:
        return None
    last = next((ln for ln in reversed(text.strip().splitlines()) if ln.strip()), None)
    if last is None:
        return None
    name, sep, message = last.partition(": ")  # "pkg.module.SomeError: msg" -> "SomeError: msg"
    return f"{name.rsplit('.', 1)[-1]}{sep}{message}" if " " not in name else last


def job_info(job: Job) -> JobInfo:
    status = job.get_status(refresh=False)
    progress = job.meta.get("progress", {}).get("fraction") if isinstance(job.meta.get("progress"), dict) else None
    return JobInfo(id=job.id, queue=job.origin, func=job.func_name or "", description=job.description or "",
                   status=str(status.value if status is not None else "unknown"), enqueued_ms=_ms(job.enqueued_at),
                   started_ms=_ms(job.started_at), ended_ms=_ms(job.ended_at),
                   error=_error(job) if status is not None and status.value == "failed" else None, progress=progress)


def fetch_job(r: redis.Redis, job_id: str) -> Job | None:
    jobs = Job.fetch_many([job_id], connection=r, serializer=JSONSerializer)
    return jobs[0] if jobs else None


def jobs_overview(r: redis.Redis, prefix: str, limit: int = 50) -> JobsOverview:
    """Up to ``limit`` jobs of each state over all queues; newest first for finished and failed ones."""
    groups: dict[str, list[str]] = {"queued": [], "running": [], "scheduled": [], "failed": [], "finished": []}
    for q in queues(r, prefix):
        groups["queued"] += q.get_job_ids(0, limit - 1)
        groups["running"] += q.started_job_registry.get_job_ids(0, limit - 1)
        groups["scheduled"] += q.scheduled_job_registry.get_job_ids(0, limit - 1)
        groups["failed"] += q.failed_job_registry.get_job_ids(0, limit - 1, desc=True)
        groups["finished"] += q.finished_job_registry.get_job_ids(0, limit - 1, desc=True)
    out = {}
    for state, ids in groups.items():
        jobs = [j for j in Job.fetch_many(ids, connection=r, serializer=JSONSerializer) if j is not None]
        infos = [job_info(j) for j in jobs]
        if state in ("failed", "finished"):
            infos.sort(key=lambda i: i.ended_ms or 0, reverse=True)
        out[state] = infos[:limit]
    return JobsOverview(**out)
