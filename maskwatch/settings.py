"""One settings object for every process, built from ``MASKWATCH_*`` environment variables.

Each field reads the variable ``MASKWATCH_<FIELD NAME IN CAPITALS>``; CLI flags override it
through :meth:`Settings.override`. The defaults run on a laptop.

>>> s = Settings.from_env({"MASKWATCH_PREFIX": "test", "MASKWATCH_BATCH_SIZE": "16"})
>>> s.prefix, s.batch_size
('test', 16)
>>> s.override(batch_size=None, prefix="x").prefix
'x'
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

ENV_PREFIX = "MASKWATCH_"


class SettingsError(ValueError):
    """A setting with a value that cannot be used; the message names the variable."""


@dataclass(frozen=True)
class Settings:
    # --- Redis and naming
    redis_url: str | None = field(default=None, repr=False)  # unset: `maskwatch up` starts an embedded redis-server
    prefix: str = "mw"
    state_dir: Path = Path(".maskwatch")  # embedded Redis files, logs of `up`
    # --- models
    model_dir: Path = Path("~/.cache/maskwatch").expanduser()  # YuNet and other third-party files
    model: Path | None = None  # classifier artifact; None: the shipped default
    # --- dashboard
    api_token: str | None = field(default=None, repr=False)
    allow_no_token: bool = False  # local use only: write endpoints without a token
    compliance_good: float = 0.9  # tile colours: >= good is green, >= warn amber, else red
    compliance_warn: float = 0.7
    # --- producer; fps, max_width and jpeg_quality are the defaults of cameras added without them
    fps: float = 5.0
    max_width: int = 1280
    jpeg_quality: int = 85
    lease_ttl_ms: int = 10_000
    lag_threshold: int = 200  # frames pending in the group before producers skip at the source
    frames_maxlen: int = 10_000  # must stay well above lag_threshold (DESIGN: backpressure)
    reconnect_max_s: float = 30.0
    # --- worker
    batch_size: int = 16  # frames per batch; all their face crops go through one forward pass
    max_wait_ms: int = 50
    runtime: str = "auto"  # auto | onnx | torch
    device: str = "auto"  # auto | cpu | cuda
    threads: int = 0  # intra-op threads of the classifier (0: the runtime's choice)
    claim_idle_ms: int = 30_000  # reclaim frames pending on a dead worker after this long
    max_deliveries: int = 3  # then dead-letter
    heartbeat_ttl_ms: int = 10_000
    results_maxlen: int = 10_000
    events_maxlen: int = 10_000
    event_throttle_s: float = 30.0  # at most one violation event per camera per this window
    snapshot_ttl_s: int = 7 * 86_400
    latest_ttl_s: int = 60
    # --- vision
    # Detection (maskwatch/vision/detect.py; chosen with bench/quality.py, see docs/quality.md)
    det_score: float = 0.5  # YuNet confidence for a face, in the frame pass and the zoom pass
    det_upscale: float = 2.0  # frames are enlarged up to this factor so small faces reach YuNet's 10 px floor
    det_max_side: int = 960  # ...but never beyond this many pixels on the long side: it bounds the cost
    det_zoom_score: float = 0.02  # candidates this sure get a second, zoomed look (0: no zoom pass)
    det_zoom_px: int = 80  # the zoom pass enlarges a candidate face to this many pixels
    det_flip: bool = False  # detect on the mirrored frame too: more masked faces found, twice the time
    min_face_px: int = 12
    crop_margin: float = 0.0  # square crop grows the face box by this share on each side (training crops are YuNet-box tight)
    mask_threshold: float = 0.5  # P(without_mask) above this is a violation
    # --- metrics ports (0: no metrics server)
    producer_metrics_port: int = 9101
    worker_metrics_port: int = 9102
    jobs_metrics_port: int = 9103
    # --- side jobs
    webhook_url: str | None = None
    webhook_secret: str | None = field(default=None, repr=False)
    webhook_tries: int = 5  # attempts per delivery before it is marked failed
    webhook_backoff_s: float = 5.0  # wait before the 2nd attempt; each later wait is 4x longer
    dashboard_url: str | None = None  # public base URL, for absolute snapshot links in webhooks
    alert_window_s: int = 300
    alert_threshold: float = 0.8
    alert_min_faces: int = 10
    log_level: str = "INFO"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "Settings":
        """Build settings from ``env`` (default: the process environment)."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for f in fields(cls):
            name = ENV_PREFIX + f.name.upper()
            if name in env:
                values[f.name] = _parse(name, env[name], f.type)
        return cls(**values).validated()

    def override(self, **flags: Any) -> "Settings":
        """A copy with the CLI flags that were given (``None`` means not given)."""
        given = {k: v for k, v in flags.items() if v is not None}
        return dataclasses.replace(self, **given).validated()

    def validated(self) -> "Settings":
        if self.frames_maxlen < 4 * self.lag_threshold:
            raise SettingsError(
                f"MASKWATCH_FRAMES_MAXLEN={self.frames_maxlen} must be at least 4x "
                f"MASKWATCH_LAG_THRESHOLD={self.lag_threshold}, or trimming could drop unread frames"
            )
        if self.runtime not in {"auto", "onnx", "torch"}:
            raise SettingsError(f"MASKWATCH_RUNTIME={self.runtime!r}: choose auto, onnx or torch")
        if self.device not in {"auto", "cpu", "cuda"}:
            raise SettingsError(f"MASKWATCH_DEVICE={self.device!r}: choose auto, cpu or cuda")
        if self.webhook_tries < 1 or self.webhook_backoff_s < 0:
            raise SettingsError("need MASKWATCH_WEBHOOK_TRIES >= 1 and MASKWATCH_WEBHOOK_BACKOFF_S >= 0")
        if not 0 < self.compliance_warn <= self.compliance_good <= 1:
            raise SettingsError("need 0 < MASKWATCH_COMPLIANCE_WARN <= MASKWATCH_COMPLIANCE_GOOD <= 1")
        return self

    def safe_dict(self) -> dict[str, Any]:
        """The settings for logs and pages: secrets replaced, credentials in URLs masked."""
        from maskwatch.redaction import mask_url

        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in {"api_token", "webhook_secret"}:
                value = "***" if value else None
            elif isinstance(value, str) and "://" in value:
                value = mask_url(value)
            elif isinstance(value, Path):
                value = str(value)
            out[f.name] = value
        return out


def _parse(name: str, raw: str, kind: Any) -> Any:
    kind = str(kind)
    try:
        if kind.startswith("bool"):
            low = raw.strip().lower()
            if low in {"1", "true", "yes", "on"}:
                return True
            if low in {"0", "false", "no", "off", ""}:
                return False
            raise ValueError("expected true/false")
        if kind.startswith("int"):
            return int(raw)
        if kind.startswith("float"):
            return float(raw)
        if "Path" in kind:
            return Path(raw).expanduser() if raw else None
        if not raw and "None" in kind:  # an empty variable unsets an optional setting
            return None
        return raw
    except ValueError as exc:
        raise SettingsError(f"{name}={raw!r} is not a valid {kind.split(' ')[0]}: {exc}") from None
