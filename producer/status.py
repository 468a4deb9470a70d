"""What each camera is doing, kept by its capture thread and published to ``keys.cam_status(cam)``.

The status hash has no TTL: it is rewritten every second while a producer holds the camera, and
its ``updated`` field tells a reader how fresh it is. Fields: ``state`` (online,
reconnecting, offline; a quiet camera is ``online``), ``detail`` (why: connecting, ended,
disabled, stopped), ``last_error`` (why the last open or read failed, as users may read it: the
reason of a :class:`~maskwatch.camera_open.CaptureError`, credentials masked, which never tells
how a network camera failed; the producer's log has that), ``last_frame_ts`` (epoch ms, like a
frame's ``ts``, of the last frame sent), ``last_motion_ts`` (epoch ms of the last frame in which
motion was seen; 0 before any, and always with motion gating off), ``fps`` (frames taken a
second, sent or idle, over the last seconds), ``sent`` (frames sent, keyframes included),
``keyframes`` (frames sent whole), ``idle`` (frames due without motion, not sent: motion
gating), ``skipped`` (backpressure), ``dropped`` (could not be written: Redis unreachable, or
the lease lost a moment before the capture stopped), ``reconnects``, ``producer``, ``updated``
(epoch seconds, as the dashboard reads it); and ``seq``, the camera's frame counter (see
:mod:`producer.sink`).

A dashboard tells a quiet camera from a dead one by ``state`` (online) and ``updated``, and says
*quiet* when ``idle`` rises and ``last_motion_ts`` is old.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterable

import redis
from redis.typing import EncodableT, FieldT

from maskwatch.keys import Keys
from producer.metrics import ProducerMetrics

FPS_WINDOW_S = 5.0

ONLINE, RECONNECTING, OFFLINE = "online", "reconnecting", "offline"


class CameraStats:
    """Counters and state of one camera, written by its capture thread and read by the status publisher."""

    def __init__(self, cam: str, metrics: ProducerMetrics):
        self.cam, self.metrics = cam, metrics
        self.state, self.detail, self.last_error = RECONNECTING, "connecting", ""
        self.sent = self.keyframes = self.idle = self.skipped = self.dropped = self.reconnects = 0
        self.last_frame_ts = self.last_motion_ts = 0
        self._first_taken: float | None = None
        self._lock = threading.Lock()
        self._counting = threading.Lock()  # a snapshot never sees a frame counted as sent but not yet as a keyframe
        self._recent: deque[float] = deque()  # monotonic times of the frames taken (sent or idle) in the fps window
        metrics.up.labels(cam).set(0)

    def set_state(self, state: str, detail: str = "", error: str | None = None) -> None:
        """``error`` None keeps the last error, so an offline camera still says what went wrong before."""
        self.state, self.detail = state, detail
        if error is not None:
            self.last_error = error
        self.metrics.up.labels(self.cam).set(1 if state == ONLINE else 0)

    def on_sent(self, ts_ms: int, key: bool = True) -> None:
        with self._counting:
            self.sent += 1
            self.keyframes += key
        self.last_frame_ts = ts_ms
        self._taken()
        self.metrics.sent.labels(self.cam).inc()
        if key:
            self.metrics.keyframes.labels(self.cam).inc()

    def on_idle(self) -> None:
        """A frame due without motion: taken, not sent."""
        self.idle += 1
        self._taken()
        self.metrics.idle.labels(self.cam).inc()

    def on_motion(self, ts_ms: int) -> None:
        self.last_motion_ts = ts_ms

    def _taken(self) -> None:
        now = time.monotonic()
        if self._first_taken is None:
            self._first_taken = now
        with self._lock:
            self._recent.append(now)

    def on_skipped(self, reason: str) -> None:
        """``backpressure`` (workers lag), ``redis_down`` or ``no_lease``."""
        if reason == "backpressure":
            self.skipped += 1
        else:
            self.dropped += 1
        self.metrics.skipped.labels(self.cam, reason).inc()

    def on_reconnect(self, error: str) -> None:
        self.reconnects += 1
        self.metrics.reconnects.labels(self.cam).inc()
        self.set_state(RECONNECTING, "retrying", error)

    def fps(self) -> float:
        """Frames taken (sent or idle) a second over the last few seconds (or since the first frame, if sooner).

        Idle frames count: a quiet camera delivers its frames as well as a busy one.
        """
        if self._first_taken is None:
            return 0.0
        now = time.monotonic()
        window = min(FPS_WINDOW_S, now - self._first_taken)
        with self._lock:
            while self._recent and self._recent[0] < now - FPS_WINDOW_S:
                self._recent.popleft()
            count = len(self._recent)
        return round(count / window, 2) if window > 0.2 else 0.0

    def snapshot(self) -> dict[FieldT, EncodableT]:
        with self._counting:
            sent, keyframes = self.sent, self.keyframes
        return {"state": self.state, "detail": self.detail, "last_error": self.last_error,
                "last_frame_ts": self.last_frame_ts, "last_motion_ts": self.last_motion_ts, "fps": self.fps(),
                "sent": sent, "keyframes": keyframes, "idle": self.idle, "skipped": self.skipped,
                "dropped": self.dropped, "reconnects": self.reconnects}


def publish(r: redis.Redis, keys: Keys, producer_id: str, cameras: Iterable[CameraStats]) -> None:
    """Write the status hash of every camera in one round trip."""
    updated = round(time.time(), 3)
    with r.pipeline(transaction=False) as p:
        for stats in cameras:
            fields: dict[FieldT, EncodableT] = {**stats.snapshot(), "producer": producer_id, "updated": updated}
            p.hset(keys.cam_status(stats.cam), mapping=fields)
        p.execute()
