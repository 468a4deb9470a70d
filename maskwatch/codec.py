"""The versioned entries of MaskWatch's streams: frames, results and violation events.

Every entry carries ``v`` (schema version). Decoding an entry with an unknown version or a
missing or malformed field raises :class:`MessageError` naming the field, so the worker can
dead-letter it and go on.

A frame entry is written by whoever can write to Redis, so every field is bounded before it is
used (docs/architecture.md, "Poison frames"): text fields are capped in length before they are
read, numbers in range, the capture time within the window the statistics keep, the declared
size capped and matched against the JPEG's own frame header, read without decoding the image.
A decompression bomb (a small JPEG that declares a huge picture) is refused before any pixel is
allocated, and no error message quotes more than a few hundred bytes of what it refuses.

>>> import numpy as np
>>> from maskwatch.vision.jpeg import encode_jpeg
>>> f = Frame(cam="lobby", seq=7, ts=1700000000000, w=4, h=2, jpg=encode_jpeg(np.zeros((2, 4, 3), np.uint8)))
>>> decode_frame(encode_frame(f), cam="lobby", now_ms=1700000000000) == f
True
>>> decode_frame({b"v": b"1", b"cam": b"lobby"})
Traceback (most recent call last):
...
maskwatch.exceptions.MessageError: frame entry: field 'seq' is missing
>>> decode_frame({**encode_frame(f), "ts": 2**53}, now_ms=1700000000000)
Traceback (most recent call last):
...
maskwatch.exceptions.MessageError: frame entry: field 'ts' is 9007199254740992 ms since 1970, more than 1 h ahead of \
this reader's clock (1700000000000); set the producer's clock right (NTP)
>>> decode_frame({**encode_frame(f), "w": 640, "h": 360}, now_ms=1700000000000)
Traceback (most recent call last):
...
maskwatch.exceptions.MessageError: frame entry: field 'jpg' is a 4x2 JPEG, but the entry declares 640x360
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from maskwatch.compliance import STATS_RETENTION_DAYS
from maskwatch.exceptions import MessageError
from maskwatch.keys import SCHEMA_VERSION, check_camera_id
from maskwatch.utils import now_ms as wall_clock_ms
from maskwatch.vision.motion import MAX_REGIONS, Region, decode_regions, encode_regions

# Bounds of a frame entry's fields. The producer never sends a frame wider than 7680 px (the
# settings' max_width bound); 8K UHD caps the pixels, so a frame decodes to at most 100 MB.
MAX_SIDE = 7680
MAX_PIXELS = 7680 * 4320
MAX_JPEG_BYTES = 16 * 2**20  # an 8K camera frame at quality 85 is a few MB (pure noise: 24 MB)
MAX_SEQ = 2**53 - 1  # sequence numbers stay exact in JSON (results) and JavaScript (dashboard)
MAX_TEXT = 256  # bytes of a scalar field (version, camera, numbers, ids); a camera id is at most 64
MAX_REGIONS_TEXT = MAX_REGIONS * 24  # "x,y,w,h;" of five-digit numbers, MAX_REGIONS times
MAX_FACES_TEXT = 2**20  # a result's faces, JSON
MAX_AGE_MS = STATS_RETENTION_DAYS * 86_400_000  # older capture times fall in statistics already expired
MAX_AHEAD_MS = 3_600_000  # capture times ahead of the reader's clock: a producer host's clock off by this much
JPEG_MAX_SEGMENTS = 64  # segments read looking for a JPEG's frame header (a camera's JPEG has under ten)
QUOTE = 40  # characters of a refused value quoted in an error

LABELS = ("with_mask", "without_mask")


@dataclass(frozen=True)
class Frame:
    """One captured frame: camera, sequence number, capture time (epoch ms), size, JPEG bytes.

    ``key`` marks a keyframe, analysed whole; otherwise ``regions`` are the boxes where the
    producer's motion detector saw change, and the worker looks for faces there only. An entry
    without these fields (an older producer) is a keyframe.
    """

    cam: str
    seq: int
    ts: int
    w: int
    h: int
    jpg: bytes
    key: bool = True
    regions: tuple[Region, ...] = ()


@dataclass(frozen=True)
class Face:
    """One detected face: box ``[x, y, w, h]`` in frame pixels, label, probability of that label.

    With tracking on, ``track`` is the face's track id (unique per camera) and ``label``/``score``
    are the track's vote over its best looks, not this frame's look alone.
    """

    box: tuple[int, int, int, int]
    label: str
    score: float
    track: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"box": list(self.box), "label": self.label, "score": round(float(self.score), 4)}
        if self.track is not None:
            out["track"] = self.track
        return out


@dataclass(frozen=True)
class Result:
    """What the worker made of one frame."""

    cam: str
    seq: int
    ts: int
    done_ts: int
    faces: list[Face] = field(default_factory=list)
    worker: str = ""


@dataclass(frozen=True)
class Event:
    """A violation with its snapshot id: an unmasked person (``person`` set: their best look, how long they
    were seen, how sure the vote is) or, without tracking, a frame's most certain unmasked face."""

    cam: str
    seq: int
    ts: int
    score: float
    box: tuple[int, int, int, int]
    snap: str
    person: str = ""
    duration_ms: int = 0
    confidence: float = 0.0


Fields = Mapping[Any, bytes | str]  # Redis replies have bytes keys, entries built here str keys


def _value(entry: Fields, kind: str, name: str, limit: int) -> bytes | str:
    """The field's value, refused when missing or longer than ``limit`` bytes (before it is read any further)."""
    value = entry.get(name.encode(), entry.get(name))
    if value is None:
        raise MessageError(kind, name, "is missing")
    if not isinstance(value, (bytes, str)):
        value = str(value)  # an entry built in this process: numbers not yet turned into text
    if len(value) > limit:
        raise MessageError(kind, name, f"is {len(value)} bytes long; at most {limit} are allowed")
    return value


def _raw(entry: Fields, kind: str, name: str, limit: int = MAX_TEXT) -> str:
    value = _value(entry, kind, name, limit)
    if isinstance(value, bytes):
        try:
            return value.decode()
        except UnicodeDecodeError:
            raise MessageError(kind, name, "is not UTF-8 text") from None
    return value


def _has(entry: Fields, name: str) -> bool:
    return name.encode() in entry or name in entry


def _int(entry: Fields, kind: str, name: str, minimum: int = 0, maximum: int = 2**63 - 1) -> int:
    raw = _raw(entry, kind, name)
    try:
        value = int(raw)
    except ValueError:
        raise MessageError(kind, name, f"must be an integer, got {raw[:QUOTE]!r}") from None
    if not minimum <= value <= maximum:
        raise MessageError(kind, name, f"must lie in [{minimum}, {maximum}], got {value}")
    return value


def _check_version(entry: Fields, kind: str) -> None:
    v = _int(entry, kind, "v")
    if v != SCHEMA_VERSION:
        raise MessageError(kind, "v", f"is schema version {v}; this MaskWatch reads version {SCHEMA_VERSION}")


def _cam(entry: Fields, kind: str) -> str:
    cam = _raw(entry, kind, "cam")
    try:
        return check_camera_id(cam)
    except ValueError as exc:
        raise MessageError(kind, "cam", str(exc)) from None


# Start-of-frame markers (SOF0-SOF15 but DHT, JPG and DAC): the segment holding the picture's size.
_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
_STANDALONE = {0x01, *range(0xD0, 0xD8)}  # TEM, RST0-7: markers without a length


def jpeg_size(data: bytes) -> tuple[int, int]:
    """Width and height from a JPEG's frame header, read without decoding; raises ValueError saying why not.

    This is the size a decoder allocates, so it is checked before any decoding.

    >>> jpeg_size(bytes.fromhex("ffd8" "ffc0001108" "0168" "0280" "03") + bytes(9))
    (640, 360)
    >>> jpeg_size(b"\\x89PNG\\r\\n")
    Traceback (most recent call last):
    ...
    ValueError: no JPEG start-of-image marker
    """
    if data[:3] != b"\xff\xd8\xff":
        raise ValueError("no JPEG start-of-image marker")
    at = 2
    for _ in range(JPEG_MAX_SEGMENTS):
        while at + 1 < len(data) and data[at] == 0xFF and data[at + 1] == 0xFF:
            at += 1  # fill bytes before a marker
        if at + 4 > len(data):
            break
        if data[at] != 0xFF:
            raise ValueError(f"no marker at byte {at}")
        marker = data[at + 1]
        if marker in _STANDALONE:
            at += 2
            continue
        if marker in (0xD9, 0xDA):  # end of image, start of scan: no frame header came first
            raise ValueError("no frame header before the image data")
        length = int.from_bytes(data[at + 2:at + 4], "big")
        if marker in _SOF:
            if length < 8 or at + 9 > len(data):
                raise ValueError("truncated frame header")
            h, w = int.from_bytes(data[at + 5:at + 7], "big"), int.from_bytes(data[at + 7:at + 9], "big")
            if not (w and h):
                raise ValueError(f"frame header declares {w}x{h}")
            return w, h
        if length < 2:
            raise ValueError(f"segment length {length} at byte {at}")
        at += 2 + length
    raise ValueError(f"no frame header within its first {min(at, len(data))} bytes and {JPEG_MAX_SEGMENTS} segments")


def _jpg(entry: Fields, kind: str, w: int, h: int) -> bytes:
    """The JPEG bytes, capped in size, whose frame header says the entry's declared ``w`` x ``h``."""
    value = _value(entry, kind, "jpg", MAX_JPEG_BYTES)
    if not value:
        raise MessageError(kind, "jpg", "is empty")
    try:
        jpg = value if isinstance(value, bytes) else value.encode("latin-1")
    except UnicodeEncodeError:
        raise MessageError(kind, "jpg", "must be bytes") from None
    try:
        size = jpeg_size(jpg)
    except ValueError as exc:
        raise MessageError(kind, "jpg", f"is not a JPEG ({exc})") from None
    if size != (w, h):
        raise MessageError(kind, "jpg", f"is a {size[0]}x{size[1]} JPEG, but the entry declares {w}x{h}")
    return jpg


def _check_capture_time(kind: str, ts: int, now: int) -> None:
    if ts > now + MAX_AHEAD_MS:
        raise MessageError(kind, "ts", f"is {ts} ms since 1970, more than {MAX_AHEAD_MS // 3_600_000} h ahead of "
                                       f"this reader's clock ({now}); set the producer's clock right (NTP)")
    if ts < now - MAX_AGE_MS:
        raise MessageError(kind, "ts", f"is {ts} ms since 1970, more than {STATS_RETENTION_DAYS} days before this "
                                       f"reader's clock ({now}): older than the statistics keep")


def encode_frame(f: Frame) -> dict[str, Any]:
    out: dict[str, Any] = {"v": SCHEMA_VERSION, "cam": f.cam, "seq": f.seq, "ts": f.ts, "w": f.w, "h": f.h,
                           "key": int(f.key), "jpg": f.jpg}
    if not f.key:
        out["regions"] = encode_regions(list(f.regions))
    return out


def decode_frame(entry: Fields, cam: str | None = None, now_ms: int | None = None) -> Frame:
    """The frame of a stream entry, every field bounded (module docstring); raises :class:`MessageError`.

    ``cam``: the camera whose stream the entry was read from, which the entry must name (so a frame
    cannot be counted for another camera, registered or not). ``now_ms``: the reader's clock
    (default: the wall clock), for the capture-time window.
    """
    kind = "frame"
    _check_version(entry, kind)
    named = _cam(entry, kind)
    if cam is not None and named != cam:
        raise MessageError(kind, "cam", f"is {named!r}, but the entry is on the stream of camera {cam!r}")
    seq, ts = _int(entry, kind, "seq", maximum=MAX_SEQ), _int(entry, kind, "ts")
    w, h = _int(entry, kind, "w", 1, MAX_SIDE), _int(entry, kind, "h", 1, MAX_SIDE)
    if w * h > MAX_PIXELS:
        raise MessageError(kind, "w", f"x 'h' is {w}x{h} = {w * h} pixels; at most {MAX_PIXELS} (8K UHD) are allowed")
    jpg = _jpg(entry, kind, w, h)
    key = _int(entry, kind, "key", 0, 1) != 0 if _has(entry, "key") else True
    regions: list[Region] = []
    if not key:
        raw = _raw(entry, kind, "regions", MAX_REGIONS_TEXT)
        try:
            regions = decode_regions(raw, w, h)
        except ValueError as exc:
            raise MessageError(kind, "regions", str(exc).removeprefix("regions: ")) from None
    _check_capture_time(kind, ts, wall_clock_ms() if now_ms is None else now_ms)
    return Frame(cam=named, seq=seq, ts=ts, w=w, h=h, jpg=jpg, key=key, regions=tuple(regions))


def encode_result(r: Result) -> dict[str, Any]:
    return {
        "v": SCHEMA_VERSION,
        "cam": r.cam,
        "seq": r.seq,
        "ts": r.ts,
        "done_ts": r.done_ts,
        "faces": json.dumps([f.to_json() for f in r.faces], separators=(",", ":")),
        "worker": r.worker,
    }


def _box(kind: str, name: str, value: Any) -> tuple[int, int, int, int]:
    if not (isinstance(value, list) and len(value) == 4 and all(isinstance(x, (int, float)) for x in value)):
        raise MessageError(kind, name, f"must be [x, y, w, h], got {value!r:.60}")
    return tuple(int(x) for x in value)  # type: ignore[return-value]


def _json(entry: Fields, kind: str, name: str, limit: int = MAX_TEXT) -> Any:
    try:
        return json.loads(_raw(entry, kind, name, limit))
    except json.JSONDecodeError as exc:
        raise MessageError(kind, name, f"is not JSON ({exc.msg})") from None


def decode_result(entry: Fields) -> Result:
    kind = "result"
    _check_version(entry, kind)
    faces_raw = _json(entry, kind, "faces", MAX_FACES_TEXT)
    if not isinstance(faces_raw, list):
        raise MessageError(kind, "faces", "must be a JSON list")
    faces = []
    for i, f in enumerate(faces_raw):
        if not isinstance(f, dict) or f.get("label") not in LABELS or not isinstance(f.get("score"), (int, float)):
            raise MessageError(kind, f"faces[{i}]", "must hold box, label (with_mask|without_mask) and score")
        track = f.get("track")
        if track is not None and not isinstance(track, str):
            raise MessageError(kind, f"faces[{i}].track", "must be a string")
        faces.append(Face(box=_box(kind, f"faces[{i}].box", f.get("box")), label=f["label"], score=float(f["score"]),
                          track=track))
    return Result(
        cam=_cam(entry, kind),
        seq=_int(entry, kind, "seq"),
        ts=_int(entry, kind, "ts"),
        done_ts=_int(entry, kind, "done_ts"),
        faces=faces,
        worker=_raw(entry, kind, "worker"),
    )


def encode_event(e: Event) -> dict[str, Any]:
    return {
        "v": SCHEMA_VERSION,
        "cam": e.cam,
        "seq": e.seq,
        "ts": e.ts,
        "score": round(float(e.score), 4),
        "box": json.dumps(list(e.box)),
        "snap": e.snap,
        **({"person": e.person, "duration_ms": e.duration_ms, "confidence": round(float(e.confidence), 4)}
           if e.person else {}),
    }


def decode_event(entry: Fields) -> Event:
    kind = "event"
    _check_version(entry, kind)
    try:
        score = float(_raw(entry, kind, "score"))
    except ValueError:
        raise MessageError(kind, "score", "must be a number") from None
    return Event(
        cam=_cam(entry, kind),
        seq=_int(entry, kind, "seq"),
        ts=_int(entry, kind, "ts"),
        score=score,
        box=_box(kind, "box", _json(entry, kind, "box")),
        snap=_raw(entry, kind, "snap"),
        **(_person_fields(entry, kind) if _has(entry, "person") else {}),
    )


def _person_fields(entry: Fields, kind: str) -> dict[str, Any]:
    try:
        confidence = float(_raw(entry, kind, "confidence"))
    except ValueError:
        raise MessageError(kind, "confidence", "must be a number") from None
    return {"person": _raw(entry, kind, "person"), "duration_ms": _int(entry, kind, "duration_ms"),
            "confidence": confidence}
