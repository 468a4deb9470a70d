"""Open a camera URL and yield the frames to send, at the camera's target fps.

What may be opened, and how, is the core's (:mod:`maskwatch.camera_urls`, :mod:`maskwatch.camera_open`):
the URL passes the site's allow-list again at every open (the media folder, MaskWatch's own
Redis), FFmpeg opens it with the protocols its kind allows, and an HTTP camera's redirects are
checked one by one. Four kinds of source:

* **live streams** (``rtsp(s)://``, ``http(s)://`` video such as MJPEG, or a webcam index like
  ``"0"``): every frame the camera sends is grabbed, so FFmpeg's buffer never fills with stale
  frames, and only the frames due are retrieved (converted to BGR) and sent. Network streams open
  and read under timeouts, so a stream that stalls raises :class:`CaptureError` and is reconnected
  instead of hanging forever;
* **snapshot URLs**: ``http(s)://`` URLs that answer with a single JPEG/PNG image (told by the
  response's content type), fetched once per frame due;
* **video files** in the media folder: played at their own frame rate in real time, so a file
  camera behaves like a live one; with ``loop`` they restart at the end, otherwise they end.

A :class:`CaptureError`'s ``reason`` names the camera by its masked URL and never tells how a
network source failed; its ``detail`` does, for the producer's log, where it is masked again.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Protocol

import cv2
import httpx
import numpy as np

from maskwatch.camera_open import CaptureError, HttpSource, no_video, open_capture, open_http
from maskwatch.camera_urls import Target, UrlPolicy
from maskwatch.cameras import CameraConfig
from maskwatch.exceptions import CameraError
from maskwatch.redaction import mask_url
from maskwatch.utils import now_ms
from producer.pacing import MediaClock, Pacer

OPEN_TIMEOUT_MS = 10_000  # connecting and the first answer of a network stream
READ_TIMEOUT_MS = 5_000  # a network stream that sends nothing for this long is reconnected
FALLBACK_FPS = 25.0  # files whose container states no usable frame rate


@dataclass(frozen=True)
class Tick:
    """A frame due to be sent: its capture time (epoch ms) and how to get its pixels.

    ``retrieve`` is lazy so that frames skipped under backpressure are never converted.
    """

    ts_ms: int
    retrieve: Callable[[], np.ndarray]


class Source(Protocol):
    def frames(self, stop: threading.Event) -> Iterator[Tick]:
        """Ticks at the target fps until ``stop`` is set or the source ends; :class:`CaptureError` on failure."""
        ...

    def close(self) -> None: ...


def open_source(cam: CameraConfig, policy: UrlPolicy) -> Source:
    """The source for ``cam``'s URL, opened; :class:`CaptureError` says why it could not be."""
    try:
        target = policy.target(cam.url)
    except CameraError as exc:  # the site's allow-list says no (it may have changed since the camera was added)
        raise CaptureError(str(exc)) from None
    if target.kind == "file":
        return VideoFile(Path(target.url), cam.fps, cam.loop)
    label = f"webcam {target.url}" if target.kind == "webcam" else mask_url(cam.url)
    if target.kind == "http":
        source = open_http(cam.url, policy, label, OPEN_TIMEOUT_MS, READ_TIMEOUT_MS)
        if source.image:
            return Snapshot(source, label, cam.fps)
        source.client.close()
        target = Target("http", source.stream_url)
    return LiveStream(open_capture(target, label, OPEN_TIMEOUT_MS, READ_TIMEOUT_MS), cam.fps, label)


def _retrieve(cap: cv2.VideoCapture, label: str) -> np.ndarray:
    ok, image = cap.retrieve()
    if not ok or image is None:
        raise CaptureError(f"{label}: a frame could not be decoded")
    return image


class LiveStream:
    """A camera that sends frames at its own pace: grab them all, retrieve those due."""

    def __init__(self, cap: cv2.VideoCapture, fps: float, label: str):
        self.cap, self.fps, self.label = cap, fps, label

    def frames(self, stop: threading.Event) -> Iterator[Tick]:
        pacer = Pacer(self.fps)
        while not stop.is_set():
            # grab() also decodes (H.264 frames depend on each other); retrieve() only converts to BGR.
            if not self.cap.grab():
                raise CaptureError(f"{self.label} stopped sending frames (closed, or nothing for {READ_TIMEOUT_MS} ms)")
            ts = now_ms()
            if pacer.due(time.monotonic()):
                yield Tick(ts, partial(_retrieve, self.cap, self.label))

    def close(self) -> None:
        self.cap.release()


class VideoFile:
    """A video file (its real path in the media folder) played in real time at its native frame rate."""

    def __init__(self, path: Path, fps: float, loop: bool):
        self.path, self.fps, self.loop = path, fps, loop
        self.cap = self._open()
        native = self.cap.get(cv2.CAP_PROP_FPS)
        self.native_fps = native if 1 <= native <= 240 else FALLBACK_FPS

    def _open(self) -> cv2.VideoCapture:
        return open_capture(Target("file", str(self.path)), str(self.path), OPEN_TIMEOUT_MS, READ_TIMEOUT_MS)

    def frames(self, stop: threading.Event) -> Iterator[Tick]:
        while True:
            clock, pacer, index = MediaClock(), Pacer(self.fps), 0
            while not stop.is_set() and self.cap.grab():
                media_t = index / self.native_fps
                index += 1
                if stop.wait(clock.delay(media_t, time.monotonic())):
                    return
                if pacer.due(media_t):
                    yield Tick(now_ms(), partial(_retrieve, self.cap, str(self.path)))
            if stop.is_set() or not self.loop:
                return
            if index == 0:  # a loop over a file without frames would spin
                raise CaptureError(f"{self.path}: no frame could be read")
            # Reopening rewinds every container; seeking to frame 0 does not always.
            self.cap.release()
            self.cap = self._open()

    def close(self) -> None:
        self.cap.release()


class Snapshot:
    """A URL that serves one still image per request, fetched at the target fps."""

    def __init__(self, source: HttpSource, label: str, fps: float):
        self.client, self.url = source.client, source.url
        self.label, self.period = label, 1.0 / fps

    def frames(self, stop: threading.Event) -> Iterator[Tick]:
        due = time.monotonic()
        while not stop.wait(max(0.0, due - time.monotonic())):
            due = max(due + self.period, time.monotonic())
            ts = now_ms()
            image = self._fetch()  # fetched even under backpressure, so a dead camera shows as such
            yield Tick(ts, partial(_as_is, image))

    def _fetch(self) -> np.ndarray:
        try:
            resp = self.client.get(self.url)
        except httpx.HTTPError as exc:
            raise CaptureError(no_video(self.label), f"cannot reach {self.label}: {type(exc).__name__}") from None
        if resp.status_code >= 400:
            raise CaptureError(no_video(self.label),
                               f"{self.label} answered HTTP {resp.status_code} {resp.reason_phrase}")
        image = cv2.imdecode(np.frombuffer(resp.content, np.uint8), cv2.IMREAD_COLOR)
        if image is None:
            raise CaptureError(no_video(self.label),
                               f"{self.label} sent {len(resp.content)} bytes that are not an image")
        return image

    def close(self) -> None:
        self.client.close()


def _as_is(image: np.ndarray) -> np.ndarray:
    return image
