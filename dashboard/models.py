"""The JSON API's shapes: pydantic models whose every field is described in the OpenAPI schema.

A camera's config is the core's :class:`~maskwatch.cameras.CameraConfig`: the API takes and shows the
same model, with the same ranges, that the registry stores and the CLI builds.
"""

from __future__ import annotations

from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, create_model
from pydantic.fields import FieldInfo

from maskwatch.cameras import CameraConfig
from maskwatch.keys import CAMERA_ID_PATTERN

V = TypeVar("V")
CameraState = Literal["online", "reconnecting", "offline"]
WINDOWS = {"1m": 60, "15m": 900, "1h": 3600, "24h": 86_400}  # the overview's windows, label -> seconds
# The latest time a query takes, epoch ms (9999-12-31T23:59:59.999Z): later ones are no capture time, and
# past 2**64 - 1 Redis cannot even compare them with a stream entry id.
MAX_EPOCH_MS = 253_402_300_799_999

# Two kinds of figure (docs/dashboard.md): people, one count a tracked person by their voted label, and
# observations, every face of every frame. JSON keys without "people" are the observations'.
_RATIO = "share of face observations (faces in frames) wearing a mask, 0..1; null when no face was seen"
_PEOPLE_RATIO = ("share of people (tracked persons, by their voted label) wearing a mask, 0..1; "
                 "null when nobody was counted")


class ByWindow(BaseModel, Generic[V]):
    """One value per overview window; the keys are the window names."""

    model_config = ConfigDict(populate_by_name=True)
    m1: V = Field(alias="1m", description="over the last minute")
    m15: V = Field(alias="15m", description="over the last 15 minutes")
    h1: V = Field(alias="1h", description="over the last hour")
    h24: V = Field(alias="24h", description="over the last 24 hours")


class Compliance(ByWindow[float | None]):
    """Compliance per window: with_mask / faces (observations) or people_with_mask / people; null when none."""


class FacesByWindow(ByWindow[int]):
    """Faces detected per window."""


class PeopleByWindow(ByWindow[int]):
    """People counted per window (a person counts in the minute their track ended)."""


class Counters(BaseModel):
    frames: int = Field(description="frames analysed")
    faces: int = Field(description="faces detected in them (observations)")
    with_mask: int = Field(description="face observations classified as wearing a mask")
    without_mask: int = Field(description="face observations classified as not wearing a mask")
    people: int = Field(0, description="people counted: tracked faces whose track ended, each once")
    people_with_mask: int = Field(0, description="people whose voted label is wearing a mask")
    people_without_mask: int = Field(0, description="people whose voted label is not wearing a mask")


class PeopleFigures(BaseModel):
    """People per window: how many, how many without a mask, and their compliance."""

    people: PeopleByWindow = Field(description="people counted per window")
    people_without_mask: PeopleByWindow = Field(description="people without a mask per window")
    people_compliance: Compliance = Field(description=f"per window, the {_PEOPLE_RATIO}")


class CameraSummary(PeopleFigures):
    id: str = Field(description="camera id, as registered")
    status: CameraState = Field(description="producer's view of the camera: online, reconnecting or offline "
                                            "(offline too when no producer has reported for a while)")
    last_frame_age_s: float | None = Field(description="seconds since the newest captured frame; null if none yet")
    compliance: Compliance = Field(description=f"per window, the {_RATIO}")
    faces: FacesByWindow = Field(description="faces detected per window (observations)")
    totals: Counters = Field(description="counters since the camera was added")
    enabled: bool = Field(description="false when the camera is registered but switched off")
    error: str | None = Field(None, description=(
        "why the camera is not sending: its registered config cannot be used, or (enabled and not online) the "
        "producer's last failure to open or read it; null otherwise"))
    quiet: bool = Field(False, description=(
        "online, but nothing has moved in front of it for a while: its frames are counted idle rather than sent, "
        "so no new frame is no fault"))
    last_motion_age_s: float | None = Field(None, description=(
        "seconds since the producer last saw motion; null if it never has or does not gate on motion"))


class Thresholds(BaseModel):
    good: float = Field(description="compliance at or above this is shown as good (green)")
    warn: float = Field(description=(
        "compliance at or above this (and below good) is a warning (amber); below is bad (red)"))


class Site(PeopleFigures):
    compliance: Compliance = Field(description=f"all cameras together, per window: the {_RATIO}")
    faces: FacesByWindow = Field(description="faces detected by all cameras, per window (observations)")
    cameras: int = Field(description="cameras registered")
    online: int = Field(description="cameras whose producer reports them online")


class Overview(BaseModel):
    generated_at: int = Field(description="when these figures were read, epoch ms")
    thresholds: Thresholds = Field(description="colour thresholds from the settings")
    site: Site = Field(description="the headline figures of the whole site")
    cameras: list[CameraSummary] = Field(description="one entry per registered camera, by id")
    alerts: list[FiringAlert] = Field(default_factory=list, description=(
        "compliance alerts firing now, one per camera (empty when none is, or when `maskwatch jobs` does not run)"))
    failing: list[ProcessInfo] = Field(default_factory=list, description=(
        "children of `maskwatch up` that are failing now, were given up on (stopped with an error) or whose "
        "supervisor stopped reporting, with their last error; empty when all run or the site does not run under "
        "`maskwatch up`"))


def _camera_schema(schema: dict[str, Any]) -> None:
    """A camera model's schema as the API documents it: with the id's pattern (CameraConfig checks it in code), and
    the ROI's tuple of four fractions as an array of four fractions, the same constraint in the form every OpenAPI
    tool reads (``prefixItems`` is new in OpenAPI 3.1)."""
    properties = schema.get("properties", {})
    if "id" in properties:
        properties["id"]["pattern"] = CAMERA_ID_PATTERN
    for option in properties.get("roi", {}).get("anyOf", []):
        if "prefixItems" in option:
            option["items"] = option.pop("prefixItems")[0]  # four alike: x, y, w, h are each 0..1


class CameraCreate(CameraConfig):
    """A camera to add. Unknown fields are refused; omitted ones take their defaults, fps, max_width and
    jpeg_quality the dashboard's settings (MASKWATCH_FPS, MASKWATCH_MAX_WIDTH, MASKWATCH_JPEG_QUALITY)."""

    model_config = ConfigDict(json_schema_extra=_camera_schema)


class CameraSettings(CameraConfig):
    """A registered camera's config as shown: credentials in the URL masked with ***."""

    model_config = ConfigDict(json_schema_extra=_camera_schema)


class CameraStatus(BaseModel):
    """What the producer last reported about the camera (``mw:{cam}:status``)."""

    state: CameraState = Field(description="online, reconnecting or offline")
    detail: str | None = Field(None, description="why, in a word: connecting, retrying, ended, disabled, stopped")
    last_frame_ts: int | None = Field(None, description="capture time of the newest frame, epoch ms")
    fps: float | None = Field(None, description="frames per second actually captured")
    sent: int | None = Field(None, description="frames sent to the frames stream")
    skipped: int | None = Field(None, description="frames skipped at the source because the workers lagged")
    dropped: int | None = Field(None, description="frames captured but not written (Redis unreachable, lease lost)")
    reconnects: int | None = Field(None, description="failed opens or dropped streams, each followed by a reconnect")
    idle: int | None = Field(None, description="frames not sent because nothing moved (motion gating)")
    keyframes: int | None = Field(None, description="of the frames sent, those sent whole (every few seconds, "
                                                    "so people standing still stay seen)")
    last_motion_ts: int | None = Field(None, description="capture time of the newest frame with motion, epoch ms")
    last_error: str | None = Field(None, description="the latest capture error, credentials masked")
    producer: str | None = Field(None, description="id of the producer holding the camera's lease")
    updated: float | None = Field(None, description="when the producer last wrote this status, epoch seconds")


class CameraQueue(BaseModel):
    """The camera's own frames stream (one stream a camera) and the worker that holds it."""

    length: int = Field(description="entries in the camera's frames stream (read or not, until trimmed)")
    lag: int | None = Field(description="of them, frames no worker has read yet; null when Redis cannot tell")
    pending: int = Field(description="frames read by its worker but not yet acknowledged")
    worker: str | None = Field(description="id of the worker holding the camera's worker lease; null when none does")


class CameraDetail(CameraSummary):
    config: CameraSettings | None = Field(description="the registered config (null if it cannot be parsed)")
    status_detail: CameraStatus = Field(description="the producer's report")
    queue: CameraQueue | None = Field(None, description="the camera's frames stream and the worker reading it")


class SeriesPoint(BaseModel):
    start: int = Field(description="start of the step, epoch ms (UTC, aligned to the step)")
    frames: int = Field(description="frames captured in the step")
    faces: int = Field(description="faces detected in the step (observations)")
    with_mask: int = Field(description="face observations wearing a mask")
    without_mask: int = Field(description="face observations not wearing a mask")
    compliance: float | None = Field(description=f"the {_RATIO}")
    people: int = Field(description="people whose track ended in the step")
    people_with_mask: int = Field(description="of them, people wearing a mask")
    people_without_mask: int = Field(description="of them, people not wearing a mask")
    people_compliance: float | None = Field(description=f"the {_PEOPLE_RATIO}")
    partial: bool = Field(False, description=(
        "the step is still filling (it ends after now): its figures will change, so a chart marks it and a "
        "headline leaves it out"))


class Series(BaseModel):
    camera: str = Field(description="camera id")
    window_s: int = Field(description="length of the window, seconds")
    step_s: int = Field(description="length of one step, seconds (whole minutes)")
    thresholds: Thresholds = Field(description="colour thresholds from the settings")
    points: list[SeriesPoint] = Field(description="steps by capture time, oldest first; empty steps included")
    data_since: int | None = Field(None, description=(
        "start of the camera's first counted minute, epoch ms, when it falls inside the window (its statistics "
        "begin there, so a chart starts there too); null when they begin before the window or there are none"))


class PersonRecord(BaseModel):
    """One tracked person (a face track that ended), from its record ``mw:{cam}:person:{n}``."""

    id: str = Field(description="person id, {camera}-{track number}")
    camera: str = Field(description="camera id")
    first_ts: int = Field(description="first seen, capture time, epoch ms")
    last_ts: int = Field(description="last seen, capture time, epoch ms")
    duration_ms: int = Field(description="how long they were seen, ms")
    frames: int = Field(description="frames in which their face was detected")
    looks: int = Field(description="of those, frames in which their face was classified")
    label: Literal["with_mask", "without_mask"] = Field(description="the label voted from their best looks")
    confidence: float = Field(description="the vote's probability of that label, 0.5..1")
    best_ts: int = Field(description="capture time of their best look, epoch ms")
    best_box: list[int] | None = Field(description="face box [x, y, w, h] of the best look in frame pixels")
    snapshot_url: str | None = Field(description=(
        "URL of the best look's JPEG; null when the privacy setting (MASKWATCH_STORE) kept no image of this person"))


class PeoplePage(BaseModel):
    people: list[PersonRecord] = Field(description=(
        "people newest first by last-seen time (with unmasked_first, the page's unmasked people first)"))
    next_before: str | None = Field(description=(
        "pass as `before` for the next, older page; null when this page reached the oldest record kept"))


class ViolationEvent(BaseModel):
    id: str = Field(description="event id; the snapshot is at snapshot_url")
    camera: str = Field(description="camera id")
    seq: int = Field(description="sequence number of the frame within the camera")
    ts: int = Field(description="capture time of the frame (a person's: of their best look), epoch ms")
    score: float = Field(description="probability that the face wears no mask")
    box: list[int] = Field(description="face box [x, y, w, h] in frame pixels")
    snapshot_url: str = Field(description="URL of the violation's JPEG (it expires after the retention)")
    person: str | None = Field(None, description="with tracking: the unmasked person's id; null for a frame's event")
    duration_ms: int | None = Field(None, description="with tracking: how long the person was seen, ms")
    confidence: float | None = Field(None, description="with tracking: how sure the vote is that they wore no mask")


class ViolationsPage(BaseModel):
    violations: list[ViolationEvent] = Field(description="violations matching the filters, newest first")
    next_before: str | None = Field(description=(
        "pass as `before` for the next, older page; null when this page reached the oldest violation kept"))


class FiringAlert(BaseModel):
    """A camera's compliance alert while it fires (``mw:{cam}:alert``, moved by the side jobs)."""

    camera: str = Field(description="camera id")
    since: int = Field(description="when it fired, epoch ms")
    compliance: float | None = Field(description="the figure judged at the last evaluation, 0..1")
    basis: Literal["people", "observations"] = Field(description=(
        "what was judged: people (tracked persons) with tracking on or when the window counted any, "
        "else face observations"))
    people: int = Field(description="people counted in the alert window at the last evaluation")
    faces: int = Field(description="faces seen in the alert window at the last evaluation")
    threshold: float = Field(description="it fired below this compliance (MASKWATCH_ALERT_THRESHOLD)")
    window_s: int = Field(description="the window judged, seconds (MASKWATCH_ALERT_WINDOW_S)")
    evaluated: int = Field(description="when it was last evaluated, epoch ms")


class Worker(BaseModel):
    id: str = Field(description="worker id (consumer name in the group)")
    host: str | None = Field(None, description="host name")
    pid: int | None = Field(None, description="process id")
    device: str | None = Field(None, description="cpu or cuda device")
    runtime: str | None = Field(None, description="inference runtime (onnx or torch)")
    batch_size: int | None = Field(None, description="frames per batch")
    fps: float | None = Field(None, description="frames per second over the last heartbeat interval")
    crops_per_s: float | None = Field(None, description="face crops classified per second")
    frames_total: int | None = Field(None, description="frames processed since the worker started")
    started: int | None = Field(None, description="start time, epoch seconds")
    last_seen: int | None = Field(None, description="time of the latest heartbeat, epoch seconds")
    alive: bool = Field(description="the heartbeat key exists (it expires when the worker stops beating)")
    cameras: list[str] = Field(default_factory=list, description="cameras whose worker lease it holds, by id")


class Latency(BaseModel):
    """Capture to result: from a frame's capture time (``ts``) to its result's commit (``done_ts``), over the
    newest results of the results stream."""

    p50_ms: int | None = Field(description="median, ms; null when no result is recent enough")
    p95_ms: int | None = Field(description="95th percentile, ms; null when no result is recent enough")
    samples: int = Field(description="results the percentiles are taken over")
    window_s: int = Field(description="results committed this many seconds back at most are counted")


class ProcessInfo(BaseModel):
    """A child process of `maskwatch up`, as its supervisor last reported it (``mw:processes``)."""

    name: str = Field(description="the child's name: producer, worker-1, jobs, dashboard...")
    state: Literal["starting", "running", "failing", "stopped", "unknown"] = Field(description=(
        "starting, running, failing (exited with an error and restarted with backoff), stopped (exited, not "
        "restarted), or unknown (its supervisor stopped reporting: `maskwatch up` was killed)"))
    pid: int | None = Field(description="process id; null while it waits to be restarted")
    restarts: int = Field(description="times restarted since `maskwatch up` started")
    last_error: str | None = Field(description="why it last exited: exit code and the end of its error output")
    since: int = Field(description="when it entered this state (failing: its first failure in a row), epoch ms")
    updated: int = Field(description="when its supervisor last reported, epoch ms")
    supervisor: str = Field(description="the `maskwatch up` that runs it (host and process id)")


class Queue(BaseModel):
    """Every camera's frames stream, summed (one stream a camera, each with the group ``workers``)."""

    length: int = Field(description="entries in the cameras' frames streams (read or not, until trimmed)")
    lag: int | None = Field(description="frames that no worker has read yet, all cameras together (XINFO GROUPS lag "
                                        "of each camera's group); null when Redis cannot tell it for some camera")
    pending: int = Field(description="frames read by a worker but not yet acknowledged")
    consumers: int = Field(description="workers reading frames: those holding at least one camera")
    cameras: int = Field(0, description="frames streams summed: one per registered camera")


class CameraFlow(BaseModel):
    id: str = Field(description="camera id")
    state: CameraState = Field(description="online, reconnecting or offline")
    fps: float | None = Field(description="frames per second captured")
    sent: int | None = Field(description="frames sent")
    skipped: int | None = Field(description="frames skipped at the source under backpressure")
    dropped: int | None = Field(description="frames captured but not written (Redis unreachable, lease lost)")
    last_error: str | None = Field(description="latest capture error, credentials masked")
    idle: int | None = Field(None, description="frames not sent because nothing moved (motion gating)")
    quiet: bool = Field(False, description="online, but nothing has moved in front of it for a while")
    lag: int | None = Field(None, description=(
        "frames of this camera no worker has read yet; null when Redis cannot tell"))
    pending: int = Field(0, description="frames of this camera read by its worker but not yet acknowledged")
    worker: str | None = Field(None, description="id of the worker holding the camera; null when none does")
    latency: Latency | None = Field(None, description="capture to result of this camera's newest results")


class System(BaseModel):
    generated_at: int = Field(description="when these figures were read, epoch ms")
    queue: Queue = Field(description="the cameras' frames streams and their workers groups, summed")
    workers_alive: int = Field(description="workers with a live heartbeat")
    workers: list[Worker] = Field(description="live workers, by id")
    dead_lettered: int = Field(description="frames moved to the dead-letter stream since the start")
    dlq_length: int = Field(description="entries now in the dead-letter stream")
    cameras: list[CameraFlow] = Field(description="per camera: capture rate, sent, skipped and idle frames, lag")
    latency: Latency | None = Field(None, description="capture to result, all cameras together")
    processes: list[ProcessInfo] = Field(default_factory=list, description=(
        "the child processes of `maskwatch up`, by name; empty when the site does not run under it"))
    supervised: bool = Field(False, description=(
        "a live `maskwatch up` runs this site's processes (it restarts them; start more with its flags)"))


def _optional(f: FieldInfo) -> Any:
    """The field's type, constraints included, or null."""
    kind: Any = Annotated[(f.annotation, *f.metadata)] if f.metadata else f.annotation
    return kind | None


# PATCH takes any subset of the camera's fields (id aside), with their ranges; derived so the two never drift apart.
CameraPatch = create_model(
    "CameraPatch",
    __config__=ConfigDict(extra="forbid", json_schema_extra=_camera_schema),
    __doc__="Fields to change; the others keep their values. Unknown fields are refused.",
    **{name: (_optional(f), Field(None, description=f.description))  # type: ignore[call-overload]
       for name, f in CameraConfig.model_fields.items() if name != "id"},
)


class Health(BaseModel):
    status: str = Field(description="ok, ready, or unavailable")
    detail: str | None = Field(None, description="what is wrong, when something is")


class ErrorMessage(BaseModel):
    """An error the API answers with: what is wrong and, where it can, how to fix it."""

    detail: str = Field(description="what is wrong")


class FieldError(BaseModel):
    loc: list[str | int] = Field(description="where: body, query or path, then the field's name")
    msg: str = Field(description="what is wrong with it")
    type: str = Field(description="the kind of error, e.g. value_error")


class ValidationErrors(BaseModel):
    """A 422: the request is well-formed but a field is not (FastAPI's own shape)."""

    detail: list[FieldError] = Field(description="one entry per field that is wrong")
