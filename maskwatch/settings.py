"""One settings object for every process, built from ``MASKWATCH_*`` environment variables.

Each field reads the variable ``MASKWATCH_<FIELD NAME IN CAPITALS>`` (one flat namespace:
``MASKWATCH_BATCH_SIZE``, ``MASKWATCH_DET_SCORE``, ...); a command's own flags override it
through :meth:`Settings.override`. Every value is checked here, once: ranges with ``Field``
constraints, choices with ``Literal``, and the rules that tie two settings together. An empty
variable counts as unset. The defaults run on a laptop.

>>> s = Settings.from_env({"MASKWATCH_PREFIX": "test", "MASKWATCH_BATCH_SIZE": "16", "MASKWATCH_MODEL": ""})
>>> s.prefix, s.batch_size, s.model
('test', 16, None)
>>> s.override(batch_size=None, prefix="x").prefix
'x'
>>> Settings.from_env({"MASKWATCH_RUNTIME": "tensorrt"})
Traceback (most recent call last):
...
maskwatch.exceptions.SettingsError: MASKWATCH_RUNTIME='tensorrt': Input should be 'auto', 'onnx' or 'torch'
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, Self

from pydantic import AfterValidator, BeforeValidator, Field, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from maskwatch.exceptions import SettingsError

__all__ = ["ENV_PREFIX", "DeviceName", "Fps", "FrameWidth", "JpegQuality", "RuntimeName", "Settings", "SettingsError"]

ENV_PREFIX = "MASKWATCH_"

RuntimeName = Literal["auto", "onnx", "torch"]
DeviceName = Literal["auto", "cpu", "cuda"]
StoreWhat = Literal["none", "violations", "all"]
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]

# How cameras are captured. Settings hold the defaults of cameras added without them, and every
# camera config (maskwatch.cameras.CameraConfig) is checked against these same ranges.
Fps = Annotated[float, Field(gt=0, le=60)]
FrameWidth = Annotated[int, Field(ge=64, le=7680)]
JpegQuality = Annotated[int, Field(ge=10, le=100)]

_UserPath = Annotated[Path, AfterValidator(Path.expanduser)]
_Port = Annotated[int, Field(ge=0, le=65_535)]
_Share = Annotated[float, Field(gt=0, le=1)]


def _data_dir() -> Path:
    """The platform's folder for an application's data, ``maskwatch`` in it: the default state folder.

    Linux: ``$XDG_DATA_HOME/maskwatch`` or ``~/.local/share/maskwatch`` (the XDG base directories);
    macOS: ``~/Library/Application Support/maskwatch``; Windows: ``%LOCALAPPDATA%\\maskwatch``.
    """
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support" / "maskwatch"
    if sys.platform == "win32":
        return Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local") / "maskwatch"
    xdg = os.environ.get("XDG_DATA_HOME", "")
    return (Path(xdg) if os.path.isabs(xdg) else Path.home() / ".local" / "share") / "maskwatch"


class Settings(BaseSettings):
    """Every setting of every process; ``repr`` leaves the secrets out, :meth:`safe_dict` masks them."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, env_ignore_empty=True, frozen=True, extra="forbid")

    # --- Redis and naming
    redis_url: str | None = Field(None, repr=False, description=(
        "Redis to use, e.g. redis://host:6379/0; unset: `maskwatch up` starts an embedded redis-server"))
    prefix: str = Field("mw", min_length=1, description="prefix of every Redis key")
    state_dir: _UserPath = Field(_data_dir(), description=(
        "where `maskwatch up` keeps its run file and the embedded Redis's files and log "
        "(default: the platform's data folder, $XDG_DATA_HOME/maskwatch or ~/.local/share/maskwatch on Linux)"))
    redis_max_memory_mb: int = Field(512, ge=16, le=1_048_576, description=(
        "the embedded redis-server's memory cap in MB: past it, keys with an expiry (live frames, snapshots, "
        "old statistics) are evicted soonest-to-expire first; its files on disk stay within about 3x this"))

    # --- models
    model_dir: _UserPath = Field(Path("~/.cache/maskwatch").expanduser(),
                                 description="folder of third-party model files such as YuNet")
    model: _UserPath | None = Field(None, description="classifier artifact (.mwm); unset: the shipped model")

    # --- dashboard
    api_token: str | None = Field(None, repr=False, description="bearer token of the write API")
    allow_no_token: bool = Field(False, description="allow the write API without a token (local use only)")
    upload_max_mb: int = Field(256, ge=1, le=256, description=(
        "largest video the dashboard takes for analysis, MiB; a bigger upload is cut off with 413 as soon as its "
        "declared length or the bytes read pass it (at most 256: the video travels through Redis)"))
    body_timeout_s: float = Field(30.0, gt=0, le=600, description=(
        "a request body that sends nothing for this many seconds is cut off with 408 and its connection closed"))
    compliance_good: _Share = Field(0.9, description="compliance at or above this is shown green")
    compliance_warn: _Share = Field(0.7, description="compliance at or above this (below good) is amber, below it red")

    # --- producer; fps, max_width and jpeg_quality are the defaults of cameras added without them
    fps: Fps = Field(5.0, description="frames per second captured from a camera added without one")
    max_width: FrameWidth = Field(1280, description=(
        "frames wider than this are scaled down (cameras added without one)"))
    jpeg_quality: JpegQuality = Field(85, description="JPEG quality of the frames (cameras added without one)")
    lease_ttl_ms: int = Field(10_000, ge=100, description=(
        "a producer's hold on a camera lapses after this long unrenewed"))
    lag_threshold: int = Field(50, ge=1, description=(
        "skip a camera's frames at the source while its worker lags this many frames behind (10 s at 5 fps)"))
    frames_maxlen: int = Field(250, ge=1, description=(
        "frames each camera's stream keeps; at least 4x the lag threshold, so trimming never drops an unread frame"))
    reconnect_max_s: float = Field(30.0, gt=0, description="longest wait between reconnects to a camera, seconds")
    media_dir: _UserPath | None = Field(None, description=(
        "the folder file cameras read videos from (a relative path is taken inside it; nothing outside it is "
        "opened); unset: no file cameras, except that `maskwatch up` sets it to the folder of the files "
        "given with its --camera"))
    motion: bool = Field(True, description=(
        "send only frames with motion (with their regions) and a keyframe every motion_keyframe_s; "
        "false: send every frame whole"))
    motion_keyframe_s: float = Field(2.0, gt=0, le=60, description=(
        "seconds between whole frames sent without motion, so people standing still stay seen"))

    # --- worker
    batch_size: int = Field(16, ge=1, le=1024, description=(
        "frames per batch; all their faces go through one forward pass"))
    max_wait_ms: int = Field(50, ge=0, le=60_000, description="flush a partial batch after this long")
    runtime: RuntimeName = Field("auto", description="classifier runtime (auto: torch fp16 on CUDA, else ONNX Runtime)")
    device: DeviceName = Field("auto", description="where the classifier runs")
    detector: Literal["auto", "opencv", "onnx", "torch"] = Field("auto", description=(
        "YuNet's engine: opencv (cv2.FaceDetectorYN, CPU), onnx (ONNX Runtime, batched; CUDA with onnxruntime-gpu), "
        "torch (batched, pixels on the GPU); auto: torch when the classifier runs on CUDA, else opencv"))
    threads: int = Field(0, ge=0, le=1024, description="classifier intra-op threads (0: the runtime's choice)")
    max_deliveries: int = Field(3, ge=1, le=100, description=(
        "a frame redelivered after a crash is run alone; it is dead-lettered once this many of its lone attempts "
        "ended with the worker dead (a frame that raises when run alone is dead-lettered at once)"))
    consumer_idle_ms: int = Field(600_000, ge=1000, description=(
        "consumers of a camera's group idle this long and holding no frame (workers gone) are removed by the "
        "camera's worker"))
    frame_max_age_s: float = Field(60.0, gt=0, description=(
        "frames queued longer ago than this when a worker takes their camera (at its start, say after a failed "
        "run) are dropped unanalysed, with a count in the log"))
    heartbeat_ttl_ms: int = Field(10_000, ge=100, description=(
        "a worker's heartbeat key expires after this long unrenewed"))
    results_maxlen: int = Field(10_000, ge=1, description="per-frame results the results stream keeps")
    events_maxlen: int = Field(10_000, ge=1, description="violation events the events stream keeps")
    event_throttle_s: float = Field(30.0, ge=0, description=(
        "at most one violation event per camera in this many seconds"))
    event_flood_guard_s: float = Field(2.0, ge=0, description=(
        "with tracking: one violation event per unmasked person, but at most one per camera per this many seconds "
        "of capture time"))
    snapshot_ttl_s: int = Field(7 * 86_400, ge=1, description=(
        "offline-analysis reports and their snapshots expire after this many seconds (live ones: retention_days)"))
    latest_ttl_s: int = Field(60, ge=1, description="a camera's newest annotated frame expires after this many seconds")
    store: StoreWhat = Field("violations", description=(
        "which faces may be kept as images in Redis: none (no snapshot, no live frame), violations (snapshots of "
        "people without a mask only), all"))
    blur_others: bool = Field(True, description=(
        "blur every face but the violator's in stored snapshots, and every masked face in the live frame"))
    retention_days: int = Field(7, ge=1, le=366, description=(
        "person records, violation events and their snapshots are kept this many days"))
    tracking: bool = Field(True, description=(
        "track faces per camera and classify a face only when new, markedly better seen, or every track_relook_ms; "
        "false: classify every face of every frame"))
    track_max_age_ms: int = Field(6000, ge=100, le=600_000, description=(
        "a track not seen for this long ends (longer than motion_keyframe_s: people standing still)"))
    track_relook_ms: int = Field(500, ge=0, le=600_000, description=(
        "classify a tracked face again after this long (more looks make a surer vote; bench.quality --walking)"))
    track_max_appearance: float = Field(0.45, gt=0, le=1, description=(
        "a face whose colours lie farther than this (Hellinger distance of hue-saturation histograms) from a "
        "track's is not that track's: people who cross keep their ids; 1: colours not used"))
    track_unsure_score: float = Field(0.1, ge=0, le=1, description=(
        "YuNet candidates this sure (under det_score) may continue a track a sure detection began, never start "
        "one: masked faces score low in most frames of a walk (ByteTrack's second association); 0: off"))
    track_unsure_ms: int = Field(2000, ge=0, le=600_000, description=(
        "...for this long after the track's last sure detection, so a track cannot live on clutter"))
    person_min_frames: int = Field(2, ge=1, le=100, description=(
        "a track seen in fewer frames is not counted as a person (a false detection, a face glimpsed at an edge)"))
    person_decide_s: float = Field(10.0, ge=0, le=86_400, description=(
        "a person in view this long is counted then, with the label voted so far, and an unmasked one's violation "
        "raised, without waiting for them to leave (someone standing at a door); their record is completed when "
        "they do. 0: people are counted only when they leave"))

    # --- vision (maskwatch/vision/detect.py; chosen with bench/quality.py, see docs/quality.md)
    det_score: float = Field(0.5, ge=0, le=1, description="YuNet confidence for a face, in the frame and the zoom pass")
    det_upscale: float = Field(2.0, ge=1, le=8, description=(
        "frames are enlarged up to this factor so small faces reach YuNet's 10 px floor"))
    det_max_side: int = Field(960, ge=64, description=(
        "...but never past this many pixels on the long side (bounds the cost)"))
    det_zoom_score: float = Field(0.02, ge=0, le=1, description=(
        "candidates this sure get a second, zoomed look (0: no zoom pass)"))
    det_zoom_px: int = Field(80, ge=16, le=640, description=(
        "the zoom pass enlarges a candidate face to this many pixels"))
    det_flip: bool = Field(False, description=(
        "detect on the mirrored frame too: more masked faces found, twice the time"))
    min_face_px: int = Field(12, ge=1, description="faces smaller than this many pixels are ignored")
    crop_margin: float = Field(0.0, ge=0, le=1, description=(
        "the square crop grows the face box by this share on each side (training crops are YuNet-box tight)"))
    mask_threshold: float = Field(0.35, ge=0, le=1, description=(
        "P(without_mask) above this is a violation; the shipped model leans to with_mask on faces unlike its "
        "training data, so under 0.5 (bench.threshold, bench.quality --walking: docs/quality.md, 'Operating point')"))

    # --- metrics and probes (0: no metrics server)
    metrics_host: str = Field("127.0.0.1", min_length=1, description=(
        "address the producer's, worker's and jobs runner's metrics and probe servers listen on; containers "
        "set 0.0.0.0 so Prometheus and the kubelet reach them"))
    producer_metrics_port: _Port = Field(9101, description="the producer's Prometheus port (0: off)")
    worker_metrics_port: _Port = Field(9102, description="the worker's Prometheus port (0: off)")
    jobs_metrics_port: _Port = Field(9103, description="the side-job runner's Prometheus port (0: off)")

    # --- side jobs
    webhook_url: str | None = Field(None, description="violation events and alerts are POSTed here")
    webhook_secret: str | None = Field(None, repr=False, description="key of the webhooks' HMAC signature")
    webhook_tries: int = Field(5, ge=1, le=100, description="attempts per delivery before it is marked failed")
    webhook_backoff_s: float = Field(5.0, ge=0, description="wait before the 2nd attempt; each later wait is 4x longer")
    webhook_timeout_s: float = Field(5.0, ge=0.5, le=30, description=(
        "a webhook attempt fails when the receiver does not connect, accept the body or answer within this many "
        "seconds (each); a receiver that trickles its answer is cut off at about 4x this"))
    webhook_concurrency: int = Field(4, ge=1, le=64, description=(
        "webhook deliveries a jobs runner makes at once, so one hung receiver holds up only its own"))
    dashboard_url: str | None = Field(None, description="public base URL, for absolute snapshot links in webhooks")
    alert_window_s: int = Field(300, ge=1, description="window over which an alert's compliance is measured, seconds")
    alert_threshold: _Share = Field(0.8, description="alert when a camera's compliance falls below this")
    alert_min_faces: int = Field(10, ge=0, description=(
        "no alert on fewer people (or faces, with tracking off and no people counted) than this in the window"))
    log_level: Annotated[LogLevel, BeforeValidator(lambda v: v.upper() if isinstance(v, str) else v)] = Field(
        "INFO", description="the least severe log records a process writes")

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.frames_maxlen < 4 * self.lag_threshold:
            raise ValueError(f"MASKWATCH_FRAMES_MAXLEN={self.frames_maxlen} must be at least 4x "
                             f"MASKWATCH_LAG_THRESHOLD={self.lag_threshold}, or trimming could drop unread frames")
        if self.compliance_warn > self.compliance_good:
            raise ValueError(f"MASKWATCH_COMPLIANCE_WARN={self.compliance_warn} must not exceed "
                             f"MASKWATCH_COMPLIANCE_GOOD={self.compliance_good}")
        return self

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Build settings from ``env`` (default: the process environment); raises :class:`SettingsError`."""
        try:
            if env is None:
                return cls()  # pydantic-settings reads os.environ with the same rules as below
            given = {k.upper(): v for k, v in env.items() if v}
            # Every field is passed, defaults included: a field left out would be read from os.environ.
            return cls.model_validate({name: given.get(var, cls.model_fields[name].default)
                                       for name, var in _variables().items()})
        except ValidationError as exc:
            raise SettingsError(_explain(exc)) from None

    def override(self, **flags: Any) -> Settings:
        """A validated copy with the flags that were given (``None`` means not given)."""
        given = {k: v for k, v in flags.items() if v is not None}
        try:
            return self.model_validate({**self.model_dump(), **given})
        except ValidationError as exc:
            raise SettingsError(_explain(exc)) from None

    def to_env(self) -> dict[str, str | None]:
        """The ``MASKWATCH_*`` variables that rebuild these settings in a child process (``None``: unset)."""
        def text(value: Any) -> str | None:
            if value is None:
                return None
            return str(value).lower() if isinstance(value, bool) else str(value)

        return {var: text(getattr(self, name)) for name, var in _variables().items()}

    def safe_dict(self) -> dict[str, Any]:
        """The settings for logs and pages: secrets replaced, credentials in URLs masked."""
        from maskwatch.redaction import mask_text

        out: dict[str, Any] = self.model_dump(mode="json")
        for name, value in out.items():
            if isinstance(value, str) and "://" in value:
                out[name] = mask_text(value)  # one URL or several (MASKWATCH_WEBHOOK_URL)
            elif value and not type(self).model_fields[name].repr:
                out[name] = "***"
        return out


def _variables() -> dict[str, str]:
    """Field name -> its environment variable."""
    return {name: ENV_PREFIX + name.upper() for name in Settings.model_fields}


def _explain(exc: ValidationError) -> str:
    """One line per problem, naming the variable, what it was given and what is valid; secrets not shown."""
    lines = []
    for err in exc.errors(include_url=False):
        if not err["loc"]:  # a rule across settings: its message names them
            lines.append(str(err.get("ctx", {}).get("error", err["msg"])))
            continue
        name = str(err["loc"][0])
        var = ENV_PREFIX + name.upper()
        if err["type"] == "extra_forbidden":
            lines.append(f"{name!r} is not a setting")
        elif name in Settings.model_fields and not Settings.model_fields[name].repr:
            lines.append(f"{var}: {err['msg']}")
        else:
            lines.append(f"{var}={err['input']!r}: {err['msg']}")
    return "; ".join(lines)
