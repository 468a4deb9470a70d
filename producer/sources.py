"""Open a camera URL and yield the frames to send, at the camera's target fps.

Four kinds of source, told apart by the URL:

* **live streams** (``rtsp://``, ``http(s)://`` video such as MJPEG, any other ``scheme://``, or a
  webcam index like ``"0"``): every frame the camera sends is grabbed, so FFmpeg's buffer never
  fills with stale frames, and only the frames due are retrieved (converted to BGR) and sent.
  Network streams open and read under timeouts, so a stream that stalls raises
  :class:`SourceError` and is reconnected instead of hanging forever;
* **snapshot URLs**: ``http(s)://`` URLs that answer with a single JPEG/PNG image (told by the
  response's content type), fetched once per frame due;
* **video files**: played at their own frame rate in real time, so a file camera behaves like a
  live one; with ``loop`` they restart at the end, otherwise they end.

Error messages name the camera by its masked URL; the caller masks them again before they go out.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote, urlsplit, urlunsplit

import cv2
import httpx
import numpy as np

from maskwatch.cameras import CameraConfig
from maskwatch.redaction import mask_url
from maskwatch.utils import now_ms
from producer.pacing import MediaClock, Pacer

OPEN_TIMEOUT_MS = 10_000  # connecting and the first answer of a network stream
READ_TIMEOUT_MS = 5_000  # a network stream that sends nothing for this long is reconnected
FALLBACK_FPS = 25.0  # files whose container states no usable frame rate
_IMAGE_TYPES = ("image/jpeg", "image/jpg", "image/png", "image/bmp", "image/webp")

class SourceError(RuntimeError):
    """The camera cannot be opened, or stopped delivering frames."""


@dataclass(frozen=True)
class Tick:
    """A frame due to be sent: its capture time (epoch ms) and how to get its pixels.

    ``retrieve`` is lazy so that frames skipped under backpressure are never converted.
    """

    ts_ms: int
    retrieve: Callable[[], np.ndarray]


class Source(Protocol):
    def frames(self, stop: threading.Event) -> Iterator[Tick]:
        """Ticks at the target fps until ``stop`` is set or the source ends; :class:`SourceError` on failure."""
        ...

    def close(self) -> None: ...


def source_kind(url: str) -> str:
    """``webcam``, ``http`` (a video stream or a snapshot: the answer tells), ``stream`` or ``file``.

    >>> [source_kind(u) for u in ("0", "http://cam/video.mjpg", "rtsp://cam/1", "/data/lobby.mp4")]
    ['webcam', 'http', 'stream', 'file']
    """
    url = url.strip()
    if url.isdigit():
        return "webcam"
    scheme = urlsplit(url).scheme.lower()
    if scheme in ("http", "https"):
        return "http"
    return "stream" if "://" in url else "file"


def open_source(cam: CameraConfig) -> Source:
    """The source for ``cam``'s URL, opened; :class:`SourceError` says why it could not be."""
    url = cam.url.strip()
    kind = source_kind(url)
    if kind == "webcam":
        return LiveStream(_capture(int(url), f"webcam {url}", network=False), cam.fps, f"webcam {url}")
    if kind == "file":
        return VideoFile(Path(url).expanduser(), cam.fps, cam.loop)
    label = mask_url(url)
    if kind == "http" and _is_image(url, label):
        return Snapshot(url, label, cam.fps)
    return LiveStream(_capture(url, label, network=True), cam.fps, label)


def _capture(target: str | int, label: str, network: bool) -> cv2.VideoCapture:
    params = ([cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, OPEN_TIMEOUT_MS, cv2.CAP_PROP_READ_TIMEOUT_MSEC, READ_TIMEOUT_MS]
              if network else [])
    # FFmpeg by name: OpenCV's fallback backends would otherwise print the raw URL, password included.
    cap = cv2.VideoCapture(target, cv2.CAP_FFMPEG if isinstance(target, str) else cv2.CAP_ANY, params)
    if not cap.isOpened():
        cap.release()
        why = f" (refused, no answer within {OPEN_TIMEOUT_MS} ms, or not a video stream)" if network else ""
        raise SourceError(f"cannot open {label}{why}")
    return cap


def _http_client(url: str) -> tuple[httpx.Client, str]:
    """A client for ``url`` and the URL to ask it for.

    Credentials move from the URL into HTTP basic auth, so that httpx's request log lines and
    error messages never carry them.
    """
    parts = urlsplit(url)
    auth = None
    if parts.username is not None or parts.password is not None:
        auth = httpx.BasicAuth(unquote(parts.username or ""), unquote(parts.password or ""))
        url = urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))
    timeout = httpx.Timeout(READ_TIMEOUT_MS / 1000, connect=OPEN_TIMEOUT_MS / 1000)
    return httpx.Client(auth=auth, timeout=timeout, follow_redirects=True), url


def _is_image(url: str, label: str) -> bool:
    """Ask the server what the URL serves (headers only): a single image, or anything else (a video stream)."""
    client, bare = _http_client(url)
    try:
        with client, client.stream("GET", bare) as resp:
            if resp.status_code >= 400:
                raise SourceError(f"{label} answered HTTP {resp.status_code} {resp.reason_phrase}")
            return resp.headers.get("content-type", "").split(";")[0].strip().lower() in _IMAGE_TYPES
    except httpx.HTTPError as exc:
        raise SourceError(f"cannot reach {label}: {type(exc).__name__}") from None


def _retrieve(cap: cv2.VideoCapture, label: str) -> np.ndarray:
    ok, image = cap.retrieve()
    if not ok or image is None:
        raise SourceError(f"{label}: a frame could not be decoded")
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
                raise SourceError(f"{self.label} stopped sending frames (closed, or nothing for {READ_TIMEOUT_MS} ms)")
            ts = now_ms()
            if pacer.due(time.monotonic()):
                yield Tick(ts, partial(_retrieve, self.cap, self.label))

    def close(self) -> None:
        self.cap.release()


class VideoFile:
    """A video file played in real time at its native frame rate; frames picked at the target fps."""

    def __init__(self, path: Path, fps: float, loop: bool):
        if not path.is_file():
            raise SourceError(f"video file {path} does not exist" if not path.exists() else f"{path} is not a file")
        self.path, self.fps, self.loop = path, fps, loop
        self.cap = _capture(str(path), str(path), network=False)
        native = self.cap.get(cv2.CAP_PROP_FPS)
        self.native_fps = native if 1 <= native <= 240 else FALLBACK_FPS

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
                raise SourceError(f"{self.path}: no frame could be read")
            # Reopening rewinds every container; seeking to frame 0 does not always.
            self.cap.release()
            self.cap = _capture(str(self.path), str(self.path), network=False)

    def close(self) -> None:
        self.cap.release()


class Snapshot:
    """A URL that serves one still image per request, fetched at the target fps."""

    def __init__(self, url: str, label: str, fps: float):
        self.label, self.period = label, 1.0 / fps
        self.client, self.url = _http_client(url)

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
            raise SourceError(f"cannot reach {self.label}: {type(exc).__name__}") from None
        if resp.status_code >= 400:
            raise SourceError(f"{self.label} answered HTTP {resp.status_code} {resp.reason_phrase}")
        image = cv2.imdecode(np.frombuffer(resp.content, np.uint8), cv2.IMREAD_COLOR)
        if image is None:
            raise SourceError(f"{self.label} sent {len(resp.content)} bytes that are not an image")
        return image

    def close(self) -> None:
        self.client.close()


def _as_is(image: np.ndarray) -> np.ndarray:
    return image
