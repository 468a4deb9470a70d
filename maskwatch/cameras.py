"""The camera registry in Redis: ``mw:cameras`` (id -> JSON config) and its version counter.

:class:`CameraConfig` is the one camera model: the registry stores it, the CLI builds it and the
dashboard API takes and returns it (its OpenAPI schema comes from the fields below). What a user
gives goes through :meth:`CameraConfig.from_dict` (or :meth:`~CameraConfig.added`), which raises
:class:`CameraError` naming the field; code builds one with keywords. Its ranges
are the settings' (:mod:`maskwatch.settings`), and a camera added without ``fps``,
``max_width`` or ``jpeg_quality`` takes the settings' values (:meth:`CameraConfig.added`).

The CLI and the dashboard API write the registry; producers poll ``mw:cameras:version`` and pick
up changes without a restart. Every write bumps the version in the same transaction.

>>> CameraConfig.from_json("lobby", '{"url": "rtsp://u:p@cam/1", "fps": 2}').public()["url"]
'rtsp://u:***@cam/1'
>>> CameraConfig.from_dict("lobby", {"url": "0", "fps": 0})
Traceback (most recent call last):
...
maskwatch.exceptions.CameraError: camera 'lobby': field 'fps': input should be greater than 0, got 0
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from typing import Annotated, Any

import redis
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from maskwatch.camera_urls import check_syntax
from maskwatch.exceptions import CameraError
from maskwatch.keys import Keys, check_camera_id
from maskwatch.redaction import mask_url
from maskwatch.settings import Fps, FrameWidth, JpegQuality, Settings, StoreWhat
from maskwatch.utils import text

__all__ = ["SETTINGS_DEFAULTS", "CameraConfig", "CameraError", "Registry"]

# The fields a camera added without them takes from the settings (MASKWATCH_FPS, ...).
SETTINGS_DEFAULTS = ("fps", "max_width", "jpeg_quality")
_Fraction = Annotated[float, Field(ge=0, le=1)]


def _default(name: str) -> Any:
    return Settings.model_fields[name].default


class CameraConfig(BaseModel):
    """How one camera is captured. Unknown fields are refused; omitted ones take their defaults."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(description="1-64 letters, digits, '_', '.' or '-', starting with a letter or digit",
                    examples=["lobby"])
    url: str = Field(min_length=1, description=(
        "rtsp://, rtsps://, http:// or https:// with a host; a video file in the media folder (MASKWATCH_MEDIA_DIR; "
        "a relative path is taken inside it); or a webcam index 0-99"),
        examples=["rtsp://10.0.0.5/stream1"])
    fps: Fps = Field(_default("fps"), description="frames per second to capture (added without it: MASKWATCH_FPS)")
    max_width: FrameWidth = Field(_default("max_width"), description=(
        "scale frames down to at most this width (added without it: MASKWATCH_MAX_WIDTH)"))
    jpeg_quality: JpegQuality = Field(_default("jpeg_quality"), description=(
        "JPEG quality of the frames (added without it: MASKWATCH_JPEG_QUALITY)"))
    loop: bool = Field(False, description="restart file sources at their end")
    roi: tuple[_Fraction, _Fraction, _Fraction, _Fraction] | None = Field(None, description=(
        "region of interest [x, y, w, h] as fractions 0..1 of the frame; faces centred outside it are ignored"))
    min_face_px: int | None = Field(None, ge=1, description=(
        "smallest face side counted, pixels; null: the global setting"))
    enabled: bool = Field(True, description="capture this camera")
    store: StoreWhat | None = Field(None, description=(
        "which faces may be kept as images: none, violations, all; null: the site's MASKWATCH_STORE"))
    blur_others: bool | None = Field(None, description=(
        "blur the faces of everyone but the violator in stored images; null: the site's MASKWATCH_BLUR_OTHERS"))
    retention_days: int | None = Field(None, ge=1, le=366, description=(
        "days person records, events and snapshots are kept; null: the site's MASKWATCH_RETENTION_DAYS"))

    @field_validator("id")
    @classmethod
    def _valid_id(cls, value: str) -> str:
        return check_camera_id(value)

    @field_validator("url")
    @classmethod
    def _allowed_url(cls, url: str) -> str:
        """The allow-list's URL half (:mod:`maskwatch.camera_urls`); the site's half runs where cameras are added."""
        url = url.strip(" ")
        check_syntax(url)
        return url

    @field_validator("roi")
    @classmethod
    def _roi_has_area(cls, roi: tuple[float, float, float, float] | None) -> tuple[float, float, float, float] | None:
        if roi is not None and (roi[2] <= 0 or roi[3] <= 0):
            raise ValueError(f"[x, y, w, h] needs w and h above 0, got {list(roi)}")
        return roi

    def __repr_args__(self) -> Any:
        """``repr`` (and so any log line) shows the URL with its password masked."""
        for name, value in super().__repr_args__():
            yield name, mask_url(value) if name == "url" else value

    @classmethod
    def from_dict(cls, cam_id: str, data: dict[str, Any]) -> CameraConfig:
        """The camera ``cam_id`` as the user gave it; a bad field raises :class:`CameraError` naming it."""
        try:
            return cls.model_validate({**data, "id": cam_id})
        except ValidationError as exc:
            raise CameraError(_explain(cam_id, exc)) from None

    @classmethod
    def added(cls, s: Settings, cam_id: str, **data: Any) -> CameraConfig:
        """A camera being added: fields given as ``None`` or not at all take their defaults, the settings' first."""
        given = {k: v for k, v in data.items() if v is not None}
        return cls.from_dict(cam_id, {**{name: getattr(s, name) for name in SETTINGS_DEFAULTS}, **given})

    @classmethod
    def from_json(cls, cam_id: str, raw: str | bytes) -> CameraConfig:
        try:
            data = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise CameraError(f"camera {cam_id!r}: config is not JSON ({exc.msg})") from None
        if not isinstance(data, dict):
            raise CameraError(f"camera {cam_id!r}: config must be a JSON object")
        return cls.from_dict(cam_id, data)

    def to_json(self) -> str:
        return json.dumps(self.model_dump(exclude={"id"}), sort_keys=True)

    def public(self) -> dict[str, Any]:
        """The config as shown in logs, pages and the API: credentials masked."""
        data = self.model_dump()
        data["url"] = mask_url(self.url)
        data["roi"] = list(self.roi) if self.roi else None
        return data


def _explain(cam_id: str, exc: ValidationError) -> str:
    """``camera 'lobby': field 'fps': <what is wrong>, got <value>``, one clause per problem."""
    problems = []
    for err in exc.errors(include_url=False):
        name = str(err["loc"][0]) if err["loc"] else "config"
        if err["type"] == "extra_forbidden":
            known = sorted(set(CameraConfig.model_fields) - {"id"})
            problems.append(f"unknown field {name!r}; known: {known}")
        elif err["type"] == "missing":
            problems.append(f"field {name!r} is required")
        elif err["type"] == "value_error":  # our own validators' messages say what they were given
            problems.append(f"field {name!r}: {err.get('ctx', {}).get('error', err['msg'])}")
        else:
            problems.append(f"field {name!r}: {err['msg'][:1].lower()}{err['msg'][1:]}, got {err['input']!r}")
    return f"camera {cam_id!r}: " + "; ".join(problems)


@dataclass
class Registry:
    """Reads and writes the camera registry of one Redis under one prefix."""

    r: redis.Redis
    keys: Keys = field(default_factory=Keys)

    def put(self, cam: CameraConfig) -> None:
        with self.r.pipeline(transaction=True) as p:
            p.hset(self.keys.cameras, cam.id, cam.to_json())
            p.incr(self.keys.cameras_version)
            p.execute()

    def remove(self, cam_id: str) -> bool:
        with self.r.pipeline(transaction=True) as p:
            p.hdel(self.keys.cameras, cam_id)
            p.incr(self.keys.cameras_version)
            removed, _ = p.execute()
        return bool(removed)

    def get(self, cam_id: str) -> CameraConfig | None:
        raw = self.r.hget(self.keys.cameras, cam_id)
        return CameraConfig.from_json(cam_id, raw) if raw is not None else None

    def version(self) -> int:
        return int(self.r.get(self.keys.cameras_version) or 0)

    def all(self) -> tuple[dict[str, CameraConfig], dict[str, str]]:
        """Every camera that parses, and for each that does not, the error (it never stops the rest)."""
        cams: dict[str, CameraConfig] = {}
        errors: dict[str, str] = {}
        for raw_id, raw in sorted(self.r.hgetall(self.keys.cameras).items()):
            cam_id = text(raw_id)
            try:
                cams[cam_id] = CameraConfig.from_json(cam_id, raw)
            except (CameraError, ValueError) as exc:  # ValueError: bytes that are not UTF-8
                errors[cam_id] = str(exc)
        return cams, errors


class RegistryWatcher:
    """The registry as last loaded, reloaded only when its version moved (checked at most every ``every_s``).

    Producers and workers poll it on every tick: a read of one counter, and the whole registry
    only after a write.
    """

    def __init__(self, registry: Registry, every_s: float = 0.0):
        self.registry, self.every_s = registry, every_s
        self.version: int | None = None  # None: never loaded
        self.cameras: dict[str, CameraConfig] = {}  # every camera that parses
        self.errors: dict[str, str] = {}  # camera id -> why its config cannot be used
        self._checked = -math.inf

    def poll(self) -> bool:
        """Reload if the version moved since the last load; True when it did."""
        now = time.monotonic()
        if now - self._checked < self.every_s:
            return False
        self._checked = now
        version = self.registry.version()
        if version == self.version:
            return False
        self.cameras, self.errors = self.registry.all()
        self.version = version
        return True
