"""One camera's capture loop, on a thread of its own (OpenCV releases the GIL while it reads and decodes).

open -> frames at the target fps -> skip (backpressure, Redis down), or gate on motion
(:mod:`producer.gating`: idle frames are counted, not encoded) and downscale, encode, send; on
any failure: state ``reconnecting``, wait a backoff with full jitter, open again. A file that
ends without ``loop`` leaves the camera ``offline`` (detail ``ended``). Failures never stop the
other cameras. The status hash gets a failure's ``reason`` (:class:`~maskwatch.camera_open.CaptureError`:
a few fixed sentences that never tell how a network source failed), the log its ``detail``, masked.

Frames skipped under backpressure are never retrieved, so the motion detector does not see them
either: an overloaded box spends nothing on frames it drops, and the detector's background,
learnt over seconds, takes the gap as it would a slow stream.
"""

from __future__ import annotations

import logging
import threading

import numpy as np

from maskwatch.camera_open import CaptureError
from maskwatch.camera_urls import UrlPolicy
from maskwatch.cameras import CameraConfig
from maskwatch.codec import Frame
from maskwatch.redaction import mask_text, mask_url
from maskwatch.service import Backoff
from maskwatch.vision.jpeg import encode_jpeg, shrink
from maskwatch.vision.motion import GateDecision, Region
from producer.backpressure import Backpressure
from producer.gating import CameraGating, scale_regions
from producer.sink import FrameSink, NotLeaseHolder
from producer.sources import Source, Tick, open_source
from producer.status import OFFLINE, ONLINE, CameraStats

log = logging.getLogger(__name__)


class CaptureLoop:
    """``keyframe_s`` None: no motion gating, every frame due is sent whole (a keyframe)."""

    def __init__(self, cam: CameraConfig, stats: CameraStats, sink: FrameSink, backpressure: Backpressure,
                 reconnect_max_s: float, keyframe_s: float | None, policy: UrlPolicy):
        self.cam, self.stats, self.sink, self.backpressure = cam, stats, sink, backpressure
        self.policy = policy
        self.keyframe_s = keyframe_s
        self.backoff = Backoff(base=min(0.5, reconnect_max_s), cap=reconnect_max_s)
        self._extra = {"cam": cam.id}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"capture-{cam.id}", daemon=True)
        self._last_error = ""

    def start(self) -> CaptureLoop:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Ask the loop to end; it does within a frame, or after an open in progress times out."""
        self._stop.set()

    def join(self, timeout: float) -> bool:
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                source = open_source(self.cam, self.policy)
            except Exception as exc:  # noqa: BLE001 - any failure to open is the camera's, never the producer's
                self._retry_after(exc)
                continue
            try:
                ended = self._pump(source)
            except Exception as exc:  # noqa: BLE001 - a stream that breaks is reconnected
                self._retry_after(exc)
                continue
            finally:
                source.close()
            if ended:
                self.stats.set_state(OFFLINE, "ended")
                log.info("%s ended (no loop): camera offline", mask_url(self.cam.url), extra=self._extra)
                return

    def _pump(self, source: Source) -> bool:
        """Send frames until the source ends (True) or the loop is stopped (False)."""
        first = True
        gating = None if self.keyframe_s is None else CameraGating(self.cam.fps, self.keyframe_s)
        for tick in source.frames(self._stop):
            if first:
                first = False
                self.backoff.reset()
                self._last_error = ""
                self.stats.set_state(ONLINE, "")
                log.info("capturing %s at %g fps", mask_url(self.cam.url), self.cam.fps, extra=self._extra)
            if not self.sink.ready():
                self.stats.on_skipped("redis_down")
            elif self.backpressure.active(self.cam.id):
                self.stats.on_skipped("backpressure")
            else:
                self._take(tick, gating)
        return not self._stop.is_set()

    def _take(self, tick: Tick, gating: CameraGating | None) -> None:
        """Gate the frame on motion; send it whole, with its regions, or not at all (idle)."""
        image = tick.retrieve()
        if gating is None:
            self._send(tick.ts_ms, image, key=True)
            return
        gated = gating.decide(tick.ts_ms, image)
        if gated.moving:
            self.stats.on_motion(tick.ts_ms)
        if gated.decision is GateDecision.IDLE:
            self.stats.on_idle()
        else:
            self._send(tick.ts_ms, image, key=gated.decision is GateDecision.KEYFRAME, regions=gated.regions)

    def _send(self, ts_ms: int, image: np.ndarray, key: bool, regions: tuple[Region, ...] = ()) -> None:
        """Downscale, encode and send; ``regions`` are in ``image``'s pixels and go in the sent frame's."""
        small = shrink(image, self.cam.max_width)
        h, w = small.shape[:2]
        if regions:
            regions = scale_regions(regions, (image.shape[1], image.shape[0]), (w, h))
        jpg = encode_jpeg(small, self.cam.jpeg_quality)
        try:
            seq = self.sink.send(Frame(cam=self.cam.id, seq=0, ts=ts_ms, w=w, h=h, jpg=jpg, key=key, regions=regions))
        except NotLeaseHolder:  # the supervisor stops this loop at its next tick, or takes the lease back
            self.stats.on_skipped("no_lease")
            return
        if seq is None:
            self.stats.on_skipped("redis_down")
        else:
            self.stats.on_sent(ts_ms, key)

    def _retry_after(self, exc: Exception) -> None:
        if isinstance(exc, CaptureError):
            reason, detail = exc.reason, exc.detail
        else:  # a bug, not the camera: users see that much, the log the rest
            reason, detail = "capture failed on an internal error (the producer's log has it)", repr(exc)
        reason, detail = mask_text(reason, self.cam.url), mask_text(detail, self.cam.url)
        delay = self.backoff.next()
        self.stats.on_reconnect(reason)
        # Said loudly once per kind of failure; a camera that stays down repeats it quietly.
        level = logging.WARNING if detail != self._last_error else logging.INFO
        self._last_error = detail
        log.log(level, "%s; reconnecting in %.1f s (attempt %d)", detail, delay, self.backoff.attempts,
                extra=self._extra)
        self._stop.wait(delay)
