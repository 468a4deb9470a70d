"""Open camera sources within the allow-list: for a producer's capture, and once, briefly, when a camera is added.

* :func:`open_capture` opens a source with OpenCV: FFmpeg for streams and files, under the options
  :func:`maskwatch.camera_urls.ffmpeg_options` gives the source's kind (which protocols and
  containers FFmpeg may open for it); the webcam backend for an index.
* :func:`open_http` asks an ``http(s)://`` camera what it serves (one still image per request, or
  a video stream), through an httpx client that holds the credentials as basic auth (never in a
  URL it could log) and checks every request, redirects included, against the site's
  :class:`~maskwatch.camera_urls.UrlPolicy`.
* :func:`first_open` is the check a camera gets when it is added: refused (:class:`CameraError`)
  when the allow-list says no, else opened once with a short timeout, and why it did not open
  returned as a warning: the camera may be reachable from the producer's machine only, or not
  plugged in yet.

Failures raise :class:`CaptureError`. Its ``reason`` is what users see (the camera's status, the
dashboard, the API, the CLI): one sentence per kind of source that never tells *how* a network
source failed (refused, timed out, an answer that is no video, a password refused), or the API
would scan ports and probe services for whoever may add cameras. Its ``detail`` says how, for the
log of the process that tried, masked (:mod:`maskwatch.redaction`).
"""

from __future__ import annotations

import os
import sys
import threading
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

import cv2
import httpx

from maskwatch.camera_urls import OPTIONS_ENV, Target, UrlPolicy, ffmpeg_options
from maskwatch.exceptions import CameraError
from maskwatch.redaction import mask_url

__all__ = ["PROBE_TIMEOUT_MS", "CaptureError", "HttpSource", "first_open", "no_video", "open_capture", "open_http"]

PROBE_TIMEOUT_MS = 3_000  # the first open of a camera being added
IMAGE_TYPES = ("image/jpeg", "image/jpg", "image/png", "image/bmp", "image/webp")


class CaptureError(RuntimeError):
    """A camera that cannot be opened, or stopped delivering frames: ``reason`` for users, ``detail`` for the log."""

    def __init__(self, reason: str, detail: str | None = None):
        super().__init__(reason)
        self.reason = reason
        self.detail = detail or reason


def no_video(label: str) -> str:
    """The one reason shown for a network camera that did not deliver video, whatever the network said."""
    return f"no video from {label}: check the address, port, path and credentials"


class _OptionsGate:
    """Opens take turns to set ``OPENCV_FFMPEG_CAPTURE_OPTIONS``, which FFmpeg reads at the start of each open.

    The variable is the process's, and capture threads open cameras at the same time: opens that
    need the same options (most sites: every camera RTSP) run together, one that needs others
    waits until they are done, in order of arrival. Between opens the user's own value is back.
    """

    def __init__(self) -> None:
        self.user = os.environ.get(OPTIONS_ENV, "")
        self._cond = threading.Condition()
        self._queue: deque[object] = deque()
        self._value: str | None = None
        self._opens = 0

    @contextmanager
    def holding(self, value: str) -> Iterator[None]:
        ticket = object()
        with self._cond:
            self._queue.append(ticket)
            self._cond.wait_for(lambda: self._queue[0] is ticket and (self._opens == 0 or self._value == value))
            self._queue.popleft()
            if self._opens == 0:
                os.environ[OPTIONS_ENV] = self._value = value
            self._opens += 1
            self._cond.notify_all()
        try:
            yield
        finally:
            with self._cond:
                self._opens -= 1
                if self._opens == 0:
                    self._value = None
                    if self.user:
                        os.environ[OPTIONS_ENV] = self.user
                    else:
                        os.environ.pop(OPTIONS_ENV, None)
                self._cond.notify_all()


_GATE = _OptionsGate()


def open_capture(target: Target, label: str, open_ms: int, read_ms: int) -> cv2.VideoCapture:
    """``target`` opened with OpenCV; network streams open and read under the timeouts given."""
    if target.kind == "webcam":
        cap = cv2.VideoCapture(target.index)
    else:
        network = target.kind != "file"
        params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, open_ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, read_ms] if network else []
        with _GATE.holding(ffmpeg_options(target.kind, _GATE.user)):
            # FFmpeg by name: OpenCV's fallback backends would otherwise print the raw URL, password included.
            cap = cv2.VideoCapture(target.url, cv2.CAP_FFMPEG, params)
    if cap.isOpened():
        return cap
    cap.release()
    if target.kind == "webcam":
        raise CaptureError(f"webcam {target.index} cannot be opened (no such device, or another program holds it)")
    if target.kind == "file":
        raise CaptureError(f"{label} is not a video OpenCV can read")
    raise CaptureError(no_video(label),
                       f"cannot open {label} (refused, no answer within {open_ms} ms, or not a video stream)")


@dataclass
class HttpSource:
    """An ``http(s)://`` camera asked what it serves; the caller closes ``client``."""

    client: httpx.Client  # credentials as basic auth; every request checked against the site's policy
    url: str  # what to ask the client for: the URL without its credentials
    image: bool  # one still image per request (a snapshot URL), else a video stream
    stream_url: str  # for FFmpeg: where the redirects ended, credentials back in if still the same origin


def open_http(url: str, policy: UrlPolicy, label: str, open_ms: int, read_ms: int) -> HttpSource:
    """Ask ``url`` what it serves (headers only); :class:`CaptureError` when it does not answer with 2xx or 3xx."""
    parts = urlsplit(url)
    auth = None
    bare = url
    if "@" in parts.netloc:
        auth = httpx.BasicAuth(unquote(parts.username or ""), unquote(parts.password or ""))
        bare = urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))

    def check(request: httpx.Request) -> None:
        try:
            policy.check_network(str(request.url))
        except CameraError as exc:
            raise CaptureError(no_video(label), f"{label} redirected to an address no camera may have: {exc}") from None

    client = httpx.Client(auth=auth, timeout=httpx.Timeout(read_ms / 1000, connect=open_ms / 1000),
                          follow_redirects=True, event_hooks={"request": [check]})
    try:
        with client.stream("GET", bare) as resp:
            if resp.status_code >= 400:
                raise CaptureError(no_video(label), f"{label} answered HTTP {resp.status_code} {resp.reason_phrase}")
            image = resp.headers.get("content-type", "").split(";")[0].strip().lower() in IMAGE_TYPES
            stream_url = _with_credentials(url, str(resp.url)) if resp.history else url
    except httpx.HTTPError as exc:
        client.close()
        raise CaptureError(no_video(label), f"cannot reach {label}: {type(exc).__name__}") from None
    except BaseException:
        client.close()
        raise
    return HttpSource(client, bare, image, stream_url)


def _with_credentials(original: str, final: str) -> str:
    """``final`` with ``original``'s userinfo when both are the same origin (as browsers keep them)."""
    was, now = urlsplit(original), urlsplit(final)
    if "@" not in was.netloc or (was.scheme, was.hostname, was.port) != (now.scheme, now.hostname, now.port):
        return final
    return urlunsplit(now._replace(netloc=f"{was.netloc.rpartition('@')[0]}@{now.netloc}"))


def first_open(url: str, policy: UrlPolicy, timeout_ms: int = PROBE_TIMEOUT_MS) -> CaptureError | None:
    """Check a camera URL being added: :class:`CameraError` if it is refused; else why it did not open, or None."""
    target = policy.target(url)
    label = mask_url(url)
    try:
        if target.kind == "webcam":
            _webcam_present(target.index)
        elif target.kind == "http":
            source = open_http(url, policy, label, timeout_ms, timeout_ms)
            source.client.close()
            if not source.image:
                open_capture(Target("http", source.stream_url), label, timeout_ms, timeout_ms).release()
        else:
            open_capture(target, label if target.kind != "file" else target.url, timeout_ms, timeout_ms).release()
    except CaptureError as exc:
        return exc
    return None


def _webcam_present(index: int) -> None:
    """A webcam is not opened here (the producer may hold it): on Linux its device must exist."""
    device = Path(f"/dev/video{index}")
    if sys.platform.startswith("linux") and not device.exists():
        raise CaptureError(f"no webcam {index} on this machine ({device} is missing)")
