"""The camera registry in Redis: ``mw:cameras`` (id -> JSON config) and its version counter.

The CLI and the dashboard API write it; producers poll ``mw:cameras:version`` and pick up
changes without a restart. Every write bumps the version in the same transaction.

>>> CameraConfig.from_json("lobby", '{"url": "rtsp://u:p@cam/1", "fps": 2}').public()["url"]
'rtsp://u:***@cam/1'
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import redis

from maskwatch.keys import Keys, check_camera_id
from maskwatch.redaction import mask_url


class CameraError(ValueError):
    """A camera config that cannot be used; the message names the field."""


@dataclass(frozen=True)
class CameraConfig:
    """How one camera is captured.

    ``url`` is an ``rtsp://``, ``http(s)://`` URL, a file path or a webcam index (``"0"``).
    ``roi`` is an optional region of interest ``[x, y, w, h]`` as fractions of the frame;
    faces whose centre lies outside it are ignored. ``min_face_px`` overrides the global
    minimum face size for this camera.
    """

    id: str
    url: str
    fps: float = 5.0
    max_width: int = 1280
    jpeg_quality: int = 85
    loop: bool = False
    roi: tuple[float, float, float, float] | None = None
    min_face_px: int | None = None
    enabled: bool = True

    def __post_init__(self) -> None:
        check_camera_id(self.id)
        if not isinstance(self.url, str) or not self.url.strip():
            raise CameraError(f"camera {self.id!r}: field 'url' must be a non-empty string")
        if not (isinstance(self.fps, (int, float)) and 0 < self.fps <= 60):
            raise CameraError(f"camera {self.id!r}: field 'fps' must be in (0, 60], got {self.fps!r}")
        if not (isinstance(self.max_width, int) and 64 <= self.max_width <= 7680):
            raise CameraError(f"camera {self.id!r}: field 'max_width' must be 64..7680, got {self.max_width!r}")
        if not (isinstance(self.jpeg_quality, int) and 10 <= self.jpeg_quality <= 100):
            raise CameraError(f"camera {self.id!r}: field 'jpeg_quality' must be 10..100, got {self.jpeg_quality!r}")
        if self.roi is not None:
            roi = tuple(self.roi)
            if len(roi) != 4 or not all(isinstance(v, (int, float)) and 0 <= v <= 1 for v in roi) or roi[2] <= 0 or roi[3] <= 0:
                raise CameraError(f"camera {self.id!r}: field 'roi' must be [x, y, w, h] fractions in 0..1, got {self.roi!r}")
            object.__setattr__(self, "roi", tuple(float(v) for v in roi))
        if self.min_face_px is not None and not (isinstance(self.min_face_px, int) and self.min_face_px >= 1):
            raise CameraError(f"camera {self.id!r}: field 'min_face_px' must be a positive integer")

    @classmethod
    def from_dict(cls, cam_id: str, data: dict[str, Any]) -> "CameraConfig":
        known = {f.name for f in fields(cls)} - {"id"}
        unknown = set(data) - known - {"id"}
        if unknown:
            raise CameraError(f"camera {cam_id!r}: unknown field(s) {sorted(unknown)}; known: {sorted(known)}")
        try:
            return cls(id=cam_id, **{k: v for k, v in data.items() if k in known})
        except TypeError as exc:
            raise CameraError(f"camera {cam_id!r}: {exc}") from None

    @classmethod
    def from_json(cls, cam_id: str, raw: str | bytes) -> "CameraConfig":
        try:
            data = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise CameraError(f"camera {cam_id!r}: config is not JSON ({exc.msg})") from None
        if not isinstance(data, dict):
            raise CameraError(f"camera {cam_id!r}: config must be a JSON object")
        return cls.from_dict(cam_id, data)

    def to_json(self) -> str:
        data = asdict(self)
        data.pop("id")
        return json.dumps(data, sort_keys=True)

    def public(self) -> dict[str, Any]:
        """The config as shown in logs, pages and the API: credentials masked."""
        data = asdict(self)
        data["url"] = mask_url(self.url)
        data["roi"] = list(self.roi) if self.roi else None
        return data


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
            cam_id = raw_id.decode() if isinstance(raw_id, bytes) else raw_id
            try:
                cams[cam_id] = CameraConfig.from_json(cam_id, raw)
            except (CameraError, ValueError) as exc:
                errors[cam_id] = str(exc)
        return cams, errors
