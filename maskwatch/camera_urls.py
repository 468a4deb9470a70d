"""What a camera URL may be, and what FFmpeg may open for it: the allow-list of camera sources.

Four kinds, and nothing else:

* ``rtsp``: ``rtsp://`` or ``rtsps://`` with a host;
* ``http``: ``http://`` or ``https://`` with a host (a video stream such as MJPEG, or a snapshot URL);
* ``webcam``: an index, ``0`` to ``99``;
* ``file``: a path (no scheme) to a video inside the media folder, ``MASKWATCH_MEDIA_DIR``; a
  relative path is taken inside it. Without a media folder there are no file cameras.

Every other scheme is refused, the ones FFmpeg would happily open above all (``gopher:``,
``file:``, ``data:``, ``concat:``, ``subfile:``, ``pipe:`` ...), as is any control or format
character (``\\r\\n`` would smuggle protocol lines into a request, a bidi override disguise the URL).

Two levels of checks. :func:`check_syntax` needs only the URL: every camera config passes it
(:class:`maskwatch.cameras.CameraConfig`), so a registry entry that fails it is an invalid config
that no producer opens. :class:`UrlPolicy` knows the site: the media folder (the file's real path,
symlinks followed, must lie inside it and be a file) and MaskWatch's own Redis, which no camera
may point at. It runs when a camera is added (CLI, camera files, dashboard API), again every time
a producer opens a camera, and on every redirect an HTTP camera answers with.

What a source refers to once open (an HTTP redirect, an HLS playlist and its segments) FFmpeg
opens under :func:`ffmpeg_options`: a protocol whitelist per kind, no redirects for HTTP (the
producer follows them itself, checking each), and for files a container whitelist that leaves out
the demuxers which open other files (HLS, DASH, concat). The checks parse a network URL as the
libraries that connect do (:func:`urllib.parse.urlsplit`: the host follows the last ``@`` before
the first ``/``), so what is checked is what is connected to.
"""

from __future__ import annotations

import ipaddress
import re
import socket
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import SplitResult, urlsplit

from maskwatch.exceptions import CameraError
from maskwatch.settings import Settings

__all__ = ["Kind", "Target", "UrlPolicy", "check_syntax", "ffmpeg_options", "url_kind"]

Kind = Literal["rtsp", "http", "webcam", "file"]

SCHEMES: dict[str, Kind] = {"rtsp": "rtsp", "rtsps": "rtsp", "http": "http", "https": "http"}
ALLOWED = "rtsp://, rtsps://, http:// or https:// with a host, a video file in the media folder, or a webcam index 0-99"
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")
_WEBCAM = re.compile(r"^[0-9]{1,2}$")  # larger numbers pick an OpenCV backend as well as a device
REDIS_DEFAULT_PORT = 6379
_DEFAULT_PORTS = {"rtsp": 554, "rtsps": 322, "http": 80, "https": 443}

# What FFmpeg may open, per kind: the source itself and whatever it refers to.
_PROTOCOLS: dict[str, str] = {
    "rtsp": "tcp,udp,rtp,srtp,tls",  # RTSP is FFmpeg's demuxer over these; never a file or http
    "http": "http,https,tcp,tls,crypto",  # crypto: AES-encrypted HLS segments
    "file": "file",
}
# Containers a video file may be; no HLS, DASH, concat or other demuxer that opens further files.
FILE_FORMATS = ("mov,mp4,m4a,3gp,3g2,mj2,matroska,webm,avi,mpegts,mpeg,flv,asf,mjpeg,mpjpeg,h264,hevc,ogg,"
                "yuv4mpegpipe,image2,jpeg_pipe,png_pipe,bmp_pipe,webp_pipe,gif")
OPTIONS_ENV = "OPENCV_FFMPEG_CAPTURE_OPTIONS"  # read by OpenCV's FFmpeg backend at every open
_OURS = ("protocol_whitelist", "format_whitelist", "max_redirects")
IP = ipaddress.IPv4Address | ipaddress.IPv6Address


def check_syntax(url: str) -> Kind:
    """The kind of ``url``, or :class:`ValueError` saying what is wrong (never echoing the URL: it may hold a password).

    >>> [check_syntax(u) for u in ("rtsp://cam/1", "HTTPS://cam/v", "0", "clips/door.mp4")]
    ['rtsp', 'http', 'webcam', 'file']
    >>> check_syntax("gopher://127.0.0.1:6379/_SET")
    Traceback (most recent call last):
    ...
    ValueError: scheme 'gopher:' is not allowed; a camera is rtsp://, rtsps://, http:// or https:// with a host, \
a video file in the media folder, or a webcam index 0-99
    """
    for i, char in enumerate(url):
        if unicodedata.category(char) in ("Cc", "Cf", "Zl", "Zp"):  # Cf: bidi overrides that disguise a URL shown
            raise ValueError(f"has a control character ({char!r} at position {i}); a camera URL is one line of text")
    if not url.strip():
        raise ValueError("must not be blank")
    if url.isascii() and _WEBCAM.match(url):
        return "webcam"
    if url.isdigit():
        raise ValueError(f"webcam index {url} is out of range; a webcam is 0-99 (write a file named so as ./{url})")
    scheme = _SCHEME.match(url)
    if scheme is None:
        return "file"
    name = scheme.group(1).lower()
    if name not in SCHEMES:
        hint = "; give a video file as a path in the media folder, without file:" if name == "file" else ""
        raise ValueError(f"scheme {name + ':'!r} is not allowed; a camera is {ALLOWED}{hint}")
    if not url[scheme.end():].startswith("//") or not urlsplit(url).hostname:
        raise ValueError(f"{name}:// needs a host, e.g. {name}://10.0.0.5/stream1")
    return SCHEMES[name]


def url_kind(url: str) -> Kind:
    """:func:`check_syntax` for URLs already checked (stored configs); :class:`CameraError` if one is not."""
    try:
        return check_syntax(url)
    except ValueError as exc:
        raise CameraError(str(exc)) from None


@dataclass(frozen=True)
class Target:
    """What a producer opens for a camera URL: the kind and, for files, the real path inside the media folder."""

    kind: Kind
    url: str  # network URL as given; a file's absolute real path; a webcam's index

    @property
    def index(self) -> int:
        return int(self.url)


@dataclass(frozen=True)
class UrlPolicy:
    """The site's side of the allow-list: where file cameras may read, and which address is MaskWatch's Redis."""

    media_dir: Path | None
    redis_url: str | None

    @classmethod
    def from_settings(cls, s: Settings) -> UrlPolicy:
        return cls(s.media_dir, s.redis_url)

    def target(self, url: str) -> Target:
        """What to open for ``url``; :class:`CameraError` when the site does not allow it."""
        kind = url_kind(url)
        if kind == "file":
            return Target("file", str(self.video_file(url)))
        if kind in ("rtsp", "http"):
            self.check_network(url)
        return Target(kind, url)

    def check_network(self, url: str) -> None:
        """Refuse a network URL that reaches MaskWatch's own Redis (named any way: 127.1, 0x7f000001, [::1] ...)."""
        redis = _redis_address(self.redis_url)
        parts = urlsplit(url)
        host, port = parts.hostname or "", _port(parts)
        if redis is not None and port == redis[1] and _same_host(host, redis[0]):
            shown = f"[{host}]" if ":" in host else host
            raise CameraError(f"{parts.scheme}://{shown}:{port} is MaskWatch's own Redis, not a camera")

    def video_file(self, path: str) -> Path:
        """The real path of ``path`` (relative: in the media folder); :class:`CameraError` unless it is a file there."""
        if self.media_dir is None:
            raise CameraError(f"file cameras are off: set MASKWATCH_MEDIA_DIR to the folder that holds {path} "
                              "(file cameras read videos from that folder only)")
        media = self.media_dir.expanduser().resolve()
        if not media.is_dir():
            raise CameraError(f"the media folder {media} (MASKWATCH_MEDIA_DIR) does not exist")
        full = (media / Path(path).expanduser()).resolve()  # an absolute path stays itself; symlinks followed
        if not full.is_relative_to(media):
            raise CameraError(f"{path} is outside the media folder {media} (MASKWATCH_MEDIA_DIR); "
                              "copy the video there, or point MASKWATCH_MEDIA_DIR at its folder")
        if not full.exists():
            raise CameraError(f"{path} does not exist in the media folder {media}")
        if not full.is_file():
            raise CameraError(f"{path} is not a file")
        return full


def _port(parts: SplitResult) -> int:
    """The port a URL connects to (its scheme's default when it names none)."""
    try:
        port = parts.port
    except ValueError:
        raise CameraError("the port is not a number from 1 to 65535 (in a password, write '/' as %2F, "
                          "'?' as %3F, '#' as %23 and '@' as %40)") from None
    return port if port is not None else _DEFAULT_PORTS.get(parts.scheme.lower(), 0)


def _redis_address(redis_url: str | None) -> tuple[str, int] | None:
    if not redis_url:
        return None
    parts = urlsplit(redis_url)
    if parts.scheme.lower() not in ("redis", "rediss") or not parts.hostname:
        return None  # a unix socket: nothing a camera URL could reach
    try:
        return parts.hostname, parts.port or REDIS_DEFAULT_PORT
    except ValueError:
        return None


def _same_host(a: str, b: str) -> bool:
    """Do ``a`` and ``b`` reach the same machine? Any two loopback or unspecified addresses do."""
    if a.lower().rstrip(".") == b.lower().rstrip("."):
        return True
    ips_a, ips_b = _addresses(a), _addresses(b)
    if ips_a & ips_b:
        return True
    return any(_local(ip) for ip in ips_a) and any(_local(ip) for ip in ips_b)


def _addresses(host: str) -> set[IP]:
    """Every address ``host`` stands for: numeric forms as the C library reads them (``127.1``, ``2130706433``)."""
    host = host.strip("[]")
    if host.lower().rstrip(".") == "localhost" or host.lower().rstrip(".").endswith(".localhost"):
        return {ipaddress.ip_address("127.0.0.1")}
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):
        return set()  # a name that does not resolve reaches nothing
    found: set[IP] = set()
    for *_, sockaddr in infos:
        ip = ipaddress.ip_address(str(sockaddr[0]).split("%")[0])
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        found.add(ip)
    return found


def _local(ip: IP) -> bool:
    return ip.is_loopback or ip.is_unspecified


def ffmpeg_options(kind: Kind, base: str = "") -> str:
    """The ``OPENCV_FFMPEG_CAPTURE_OPTIONS`` to open an rtsp, http or file source with: ``base`` (the user's own),
    and ours, which win.

    >>> ffmpeg_options("http", "rtsp_transport;udp|protocol_whitelist;gopher")
    'rtsp_transport;udp|protocol_whitelist;http,https,tcp,tls,crypto|max_redirects;0'
    >>> ffmpeg_options("rtsp")
    'rtsp_transport;tcp|protocol_whitelist;tcp,udp,rtp,srtp,tls'
    """
    pairs = [p for p in base.split("|") if p and p.split(";", 1)[0] not in _OURS]
    if kind == "rtsp" and not any(p.startswith("rtsp_transport;") for p in pairs):
        # RTSP over TCP as Frigate and most NVRs do: UDP loses packets (smeared frames) and rarely passes NAT.
        pairs.append("rtsp_transport;tcp")
    pairs.append(f"protocol_whitelist;{_PROTOCOLS[kind]}")
    if kind == "http":
        pairs.append("max_redirects;0")  # redirects were followed, and checked, before FFmpeg opens the URL
    if kind == "file":
        pairs.append(f"format_whitelist;{FILE_FORMATS}")
    return "|".join(pairs)
