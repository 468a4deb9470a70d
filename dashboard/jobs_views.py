"""The side-job views: jobs, compliance alerts, failed webhook deliveries, video analysis upload and reports.

Pages: ``/jobs`` (the upload form, alerts, queued / running / retrying / failed jobs with their
errors, failed deliveries, reports) and ``/jobs/analyses/{job}`` (a report with compliance over
time and the violations, or the job's progress while it runs). JSON under ``/api`` (tag
``jobs``); uploading needs the write token like every write endpoint, checked from the headers
before a byte of the video is read, and the video is capped (MASKWATCH_UPLOAD_MAX_MB) as it
arrives (:mod:`dashboard.bodylimits`).

The dashboard never imports the worker package: it queues the analysis job by its dotted name and
reads what the jobs wrote through :mod:`maskwatch.jobstore`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, status
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, Field
from rq.job import Job
from starlette.datastructures import FormData, UploadFile
from starlette.requests import ClientDisconnect

from dashboard.auth import ENABLE_HINT, WRITER_REFUSED, require_writer, write_mode
from dashboard.bodylimits import BODY_REFUSED
from dashboard.errors import REDIS_UNAVAILABLE, not_found, unprocessable
from dashboard.models import ErrorMessage, ValidationErrors
from dashboard.state import DashboardState, get_state
from dashboard.templating import Link, Moment, State, Table, render
from maskwatch import jobstore
from maskwatch.compliance import round_step
from maskwatch.exceptions import JobInputError
from maskwatch.jobstore import AlertState, FailedDelivery, JobInfo, JobsOverview
from maskwatch.keys import CAMERA_ID_PATTERN
from maskwatch.settings import Settings

log = logging.getLogger(__name__)
router = APIRouter(responses=REDIS_UNAVAILABLE)
LIST_LIMIT = 50
AXIS_TICKS = 6  # video-time labels under a report's chart, at most
UPLOAD_PATH = "/api/analyses"
FIELD_MAX = 1024  # the form's plain fields (camera, fps) are short
FORM_OVERHEAD = 64 * 1024  # multipart boundaries, part headers and the plain fields around the video
# RQ's job ids (its own pattern, with a length cap): anything else cannot name a job.
JobId = Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]{1,128}$", description="the job's id, as the upload returned it")]


class AnalysisForm(BaseModel):
    """The upload form, ``multipart/form-data`` (documented in the OpenAPI schema; read field by field)."""

    video: bytes = Field(description="the recorded video, at most MASKWATCH_UPLOAD_MAX_MB")
    camera: str = Field("", pattern=f"^$|{CAMERA_ID_PATTERN}", description=(
        "file the report under this camera (its ROI applies); empty: none"))
    fps: float = Field(5.0, gt=0, le=jobstore.MAX_FPS, description="frames per second to analyse")


class AnalysisQueued(BaseModel):
    job_id: str = Field(description="the analysis job's id")
    status_url: str = Field(description="the job's state and progress (JSON)")
    report_url: str = Field(description="the report (JSON) once the job has finished")
    page_url: str = Field(description="the report page; it shows the progress while the job runs")


# --- JSON

@router.get("/api/jobs", response_model=JobsOverview, tags=["jobs"], summary="Side jobs: queued, running, "
            "waiting to retry, failed (with their errors) and recently finished")
def list_jobs(state: DashboardState = Depends(get_state)) -> JobsOverview:
    return jobstore.jobs_overview(state.r, state.settings.prefix, LIST_LIMIT)


@router.get("/api/jobs/{job_id}", response_model=JobInfo, tags=["jobs"],
            responses={404: {"model": ErrorMessage, "description": "no such job"}},
            summary="One job: state, progress (analyses) and error")
def get_job(job_id: JobId, state: DashboardState = Depends(get_state)) -> JobInfo:
    return jobstore.job_info(_job(state, job_id))


@router.get("/api/alerts", response_model=list[AlertState], tags=["jobs"],
            summary="Each camera's compliance alert (firing first) and the figures it was last evaluated on")
def list_alerts(state: DashboardState = Depends(get_state)) -> list[AlertState]:
    return jobstore.alert_states(state.r, state.keys, sorted(state.registry.all()[0]))


@router.get("/api/deliveries/failed", response_model=list[FailedDelivery], tags=["jobs"],
            summary="Webhook deliveries that failed their last try, newest first")
def list_failed_deliveries(limit: int = Query(50, ge=1, le=500, description="at most this many"),
                           state: DashboardState = Depends(get_state)) -> list[FailedDelivery]:
    return jobstore.failed_deliveries(state.r, state.keys, limit)


@router.get("/api/analyses", tags=["jobs"], summary="Finished video analyses, newest first (totals only)")
def list_analyses(state: DashboardState = Depends(get_state)) -> list[dict[str, Any]]:
    return jobstore.list_reports(state.r, state.keys, LIST_LIMIT)


@router.get("/api/analyses/{job_id}", tags=["jobs"],
            responses={404: {"model": ErrorMessage, "description": "no report (yet: see the job)"}},
            summary="A video analysis report: totals, compliance over time, violations with snapshot URLs")
def get_analysis(job_id: JobId, state: DashboardState = Depends(get_state)) -> dict[str, Any]:
    report = jobstore.read_report(state.r, state.keys, job_id)
    if report is None:
        raise not_found(f"report of job {job_id!r} (a running job has none yet: GET /api/jobs/{job_id})")
    return report


@router.post(UPLOAD_PATH, response_model=AnalysisQueued, status_code=status.HTTP_202_ACCEPTED, tags=["jobs"],
             dependencies=[Depends(require_writer)], summary="Upload a video and queue its analysis",
             openapi_extra={"requestBody": {"required": True, "content": {
                 "multipart/form-data": {"schema": AnalysisForm.model_json_schema()}}}},
             responses={**REDIS_UNAVAILABLE, **BODY_REFUSED, **WRITER_REFUSED,
                        400: {"model": ErrorMessage, "description": "the multipart body cannot be parsed, or has "
                                                                    "more than one file or two fields"},
                        415: {"model": ErrorMessage, "description": "the body is not multipart/form-data"},
                        422: {"model": ValidationErrors, "description": "bad camera, fps or video (detail names "
                                                                        "the field)"}})
async def upload_analysis(request: Request, state: DashboardState = Depends(get_state)) -> AnalysisQueued:
    # No body parameters: FastAPI would read the whole form before the token check. require_writer has
    # checked the token from the headers; only now is the body read, bounded by dashboard.bodylimits.
    if request.headers.get("content-type", "").partition(";")[0].strip().lower() != "multipart/form-data":
        raise HTTPException(status.HTTP_415_UNSUPPORTED_MEDIA_TYPE, "send the video as multipart/form-data, the "
                            "file in a part named 'video'")
    cap = upload_cap(state.settings)
    try:
        async with request.form(max_files=1, max_fields=2, max_part_size=FIELD_MAX) as form:
            video, camera, fps = _form_values(form)
            if (video.size or 0) > cap:
                raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, f"the video is larger than "
                                    f"{state.settings.upload_max_mb} MiB (MASKWATCH_UPLOAD_MAX_MB); analyse it with "
                                    "`maskwatch analyze FILE`")
            data = await video.read()
    except ClientDisconnect:
        log.info("upload abandoned: the client went away before sending the whole video")
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "the client went away mid-upload") from None
    try:
        job = await anyio.to_thread.run_sync(_queue_analysis, state, data, video.filename or "upload", camera, fps)
    except JobInputError as exc:
        raise unprocessable("body", "video", str(exc)) from None
    return AnalysisQueued(job_id=job.id, status_url=f"/api/jobs/{job.id}", report_url=f"/api/analyses/{job.id}",
                          page_url=f"/jobs/analyses/{job.id}")


def upload_cap(settings: Settings) -> int:
    """The largest video taken, bytes."""
    return settings.upload_max_mb * 2**20


def body_caps(settings: Settings) -> dict[tuple[str, str], int]:
    """The body caps of this module's routes for :class:`dashboard.bodylimits.BodyLimits`: the upload's is the
    video's cap and room for the form around it."""
    return {("POST", UPLOAD_PATH): upload_cap(settings) + FORM_OVERHEAD}


def _form_values(form: FormData) -> tuple[UploadFile, str | None, float]:
    """The video, camera and fps of the upload form, checked; a 422 names the field that is wrong."""
    video = form.get("video")
    if not isinstance(video, UploadFile):
        raise unprocessable("body", "video", "send the video as a file part named 'video'")
    camera_field, fps_field = form.get("camera"), form.get("fps")
    if isinstance(camera_field, UploadFile) or isinstance(fps_field, UploadFile):
        raise unprocessable("body", "camera" if isinstance(camera_field, UploadFile) else "fps",
                            "camera and fps are plain fields, not files")
    camera = camera_field.strip() or None if camera_field else None
    try:
        fps = float(fps_field) if fps_field else AnalysisForm.model_fields["fps"].default
    except ValueError:
        raise unprocessable("body", "fps", f"fps must be a number, got {fps_field!r}") from None
    try:
        jobstore.check_analysis_options(camera, fps)
    except JobInputError as exc:
        raise unprocessable("body", "fps" if "fps" in str(exc) else "camera", str(exc)) from None
    return video, camera, fps


def _queue_analysis(state: DashboardState, data: bytes, name: str, camera: str | None, fps: float) -> Job:
    """Keep the video in Redis and queue its analysis (in a worker thread: the Redis client blocks)."""
    source = jobstore.store_upload(state.r, state.keys, data, name)
    return jobstore.enqueue_analysis(state.r, state.settings.prefix, source, camera, fps)


def _job(state: DashboardState, job_id: str) -> Job:
    job = jobstore.fetch_job(state.r, job_id)
    if job is None:
        raise not_found(f"job {job_id!r}")
    return job


# --- pages

def when(ms: int | None) -> Moment | None:
    """A time in a table or page, shown by the browser in the viewer's zone in the pages' one format."""
    return Moment(ms) if ms else None


def pct(ratio: float | None) -> str | None:
    return None if ratio is None else f"{100 * ratio:.0f}%"


def clock(t_s: float) -> str:
    """Video time as m:ss (h:mm:ss past an hour)."""
    m, s = divmod(int(t_s), 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def _job_link(job: JobInfo) -> Link:
    if job.func == jobstore.ANALYZE_FUNC:
        return Link(job.id[:8], f"/jobs/analyses/{job.id}")
    return Link(job.id[:8], f"/api/jobs/{job.id}")


def _job_tables(jobs: JobsOverview) -> list[Table]:
    return [
        Table("Running", ["job", "what", "started", "progress"],
              [[_job_link(j), j.description, when(j.started_ms), pct(j.progress)] for j in jobs.running],
              "no job running"),
        Table("Queued", ["job", "what", "queued"],
              [[_job_link(j), j.description, when(j.enqueued_ms)] for j in jobs.queued], "the queues are empty"),
        Table("Waiting to retry", ["job", "what", "last try"],
              [[_job_link(j), j.description, when(j.ended_ms)] for j in jobs.scheduled], "no retries pending"),
        Table("Failed", ["job", "what", "failed", "error"],
              [[_job_link(j), j.description, when(j.ended_ms), j.error] for j in jobs.failed], "no failed jobs"),
        Table("Recently finished", ["job", "what", "finished"],
              [[_job_link(j), j.description, when(j.ended_ms)] for j in jobs.finished], "none yet"),
    ]


@router.get("/jobs", response_class=HTMLResponse, include_in_schema=False)
def jobs_page(request: Request, state: DashboardState = Depends(get_state)) -> HTMLResponse:
    cams = sorted(state.registry.all()[0])
    s = state.settings
    alerts = Table("Compliance alerts", ["camera", "state", "since", "compliance", "judged by", "people", "faces",
                                         "times fired"],
                   [[Link(a.camera, f"/cameras/{a.camera}"), State(a.state), when(a.since_ms), pct(a.compliance),
                     a.basis, a.people, a.faces, a.episodes]
                    for a in jobstore.alert_states(state.r, state.keys, cams)], "no cameras registered")
    deliveries = Table("Failed webhook deliveries", ["failed", "camera", "kind", "to", "tries", "error"],
                       [[when(d.failed_ms), d.camera, d.kind, d.url, d.attempts, d.error]
                        for d in jobstore.failed_deliveries(state.r, state.keys, LIST_LIMIT)], "no failed deliveries")
    reports = Table("Video analyses", ["video", "camera", "finished", "frames", "faces", "compliance"],
                    [[Link(x["video"], f"/jobs/analyses/{x['job_id']}"), x["camera"], when(x["finished_ms"]),
                      x["totals"]["frames"], x["totals"]["faces"], pct(x["totals"]["compliance"])]
                     for x in jobstore.list_reports(state.r, state.keys, LIST_LIMIT)], "no analyses yet")
    intro = (f"Alerts fire when a camera's compliance over {s.alert_window_s // 60} min falls below "
             f"{pct(s.alert_threshold)} with at least {s.alert_min_faces} people counted (or, on a camera that does "
             "not track people, faces seen), and resolve when it recovers. "
             "Upload a recorded video for analysis at the bottom of the page.")
    mode = write_mode(s)
    jobs = _job_tables(jobstore.jobs_overview(state.r, s.prefix, LIST_LIMIT))
    return render(request, "jobs_index.html", "Jobs", "Jobs", intro=intro, cameras=cams, write_mode=mode,
                  enable_hint=ENABLE_HINT, upload_max_mb=s.upload_max_mb, tables=[alerts, *jobs, deliveries, reports])


@dataclass(frozen=True)
class Chart:
    """Compliance over video time as SVG geometry (viewBox units): threshold bands, face bars, the line."""

    width: int
    height: int
    bands: list[tuple[float, float, str]]  # y, height, grade
    bars: list[tuple[float, float, float, float]]  # x, y, w, h
    lines: list[str]  # polyline point lists; a step without faces breaks the line
    dots: list[tuple[float, float]]  # every point, so a lone one shows too
    xticks: list[tuple[float, str]]
    yticks: list[tuple[float, str]]
    left: int  # the plot's edges
    right: int
    bottom: int


def report_chart(report: dict[str, Any], good: float, warn: float, width: int = 800, height: int = 260) -> Chart:
    left, right, top, bottom = 44, width - 24, 10, height - 24  # the right margin fits the last time label
    series, step = report["series"], report["step_s"]
    span = max(step, len(series) * step)

    def x(t: float) -> float:
        return left + (right - left) * t / span

    def y(ratio: float) -> float:
        return bottom - (bottom - top) * ratio

    bands = [(y(1.0), y(good) - y(1.0), "good"), (y(good), y(warn) - y(good), "warn"), (y(warn), y(0) - y(warn), "bad")]
    most = max([p["faces"] for p in series] + [1])
    bars: list[tuple[float, float, float, float]] = []
    dots: list[tuple[float, float]] = []
    runs: list[list[str]] = [[]]
    for p in series:
        h = 0.35 * (bottom - top) * p["faces"] / most
        bars.append((x(p["t_s"]) + 1, bottom - h, max(1.0, x(step) - x(0) - 2), h))
        if p["compliance"] is None:
            runs.append([])
        else:
            dots.append((round(x(p["t_s"] + step / 2), 1), round(y(p["compliance"]), 1)))
            runs[-1].append("{},{}".format(*dots[-1]))
    tick = round_step(span, AXIS_TICKS)
    xticks = [(x(t), clock(t)) for t in range(0, int(span) + 1, tick)]
    yticks = [(y(v), pct(v) or "") for v in (0, 0.25, 0.5, 0.75, 1)]
    return Chart(width, height, bands, bars, [" ".join(run) for run in runs if run], dots, xticks, yticks, left, right,
                 bottom)


@router.get("/jobs/analyses/{job_id}", response_class=HTMLResponse, include_in_schema=False)
def report_page(job_id: str, request: Request, state: DashboardState = Depends(get_state)) -> HTMLResponse:
    report = jobstore.read_report(state.r, state.keys, job_id)
    if report is not None:
        s = state.settings
        return render(request, "jobs_report.html", f"Analysis of {report['video']}", "Jobs", report=report, pct=pct,
                      when=when, clock=clock, chart=report_chart(report, s.compliance_good, s.compliance_warn))
    job = jobstore.fetch_job(state.r, job_id)
    if job is None:
        return render(request, "message.html", "Unknown analysis", "Jobs", status_code=404,
                      message=f"There is no analysis job {job_id!r} (reports expire with their snapshots).",
                      link=("Back to the jobs", "/jobs"))
    info = jobstore.job_info(job)
    return render(request, "jobs_progress.html", f"Analysis {info.status}", "Jobs", job=info, pct=pct, when=when)
