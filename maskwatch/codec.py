"""The versioned entries of MaskWatch's streams: frames, results and violation events.

Every entry carries ``v`` (schema version). Decoding an entry with an unknown version or a
missing or malformed field raises :class:`MessageError` naming the field, so the worker can
dead-letter it and go on.

>>> f = Frame(cam="lobby", seq=7, ts=1700000000000, w=4, h=2, jpg=b"\\xff\\xd8")
>>> decode_frame(encode_frame(f)) == f
True
>>> decode_frame({b"v": b"1", b"cam": b"lobby"})
Traceback (most recent call last):
...
maskwatch.exceptions.MessageError: frame entry: field 'seq' is missing
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from maskwatch.exceptions import MessageError
from maskwatch.keys import SCHEMA_VERSION, check_camera_id
from maskwatch.vision.motion import Region, decode_regions, encode_regions

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


def _raw(entry: Fields, kind: str, name: str) -> str:
    value = entry.get(name.encode(), entry.get(name))
    if value is None:
        raise MessageError(kind, name, "is missing")
    if isinstance(value, bytes):
        try:
            return value.decode()
        except UnicodeDecodeError:
            raise MessageError(kind, name, "is not UTF-8 text") from None
    return str(value)


def _has(entry: Fields, name: str) -> bool:
    return name.encode() in entry or name in entry


def _int(entry: Fields, kind: str, name: str, minimum: int = 0) -> int:
    raw = _raw(entry, kind, name)
    try:
        value = int(raw)
    except ValueError:
        raise MessageError(kind, name, f"must be an integer, got {raw[:40]!r}") from None
    if value < minimum:
        raise MessageError(kind, name, f"must be >= {minimum}, got {value}")
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


def encode_frame(f: Frame) -> dict[str, Any]:
    out: dict[str, Any] = {"v": SCHEMA_VERSION, "cam": f.cam, "seq": f.seq, "ts": f.ts, "w": f.w, "h": f.h,
                           "key": int(f.key), "jpg": f.jpg}
    if not f.key:
        out["regions"] = encode_regions(list(f.regions))
    return out


def decode_frame(entry: Fields) -> Frame:
    kind = "frame"
    _check_version(entry, kind)
    cam, seq, ts = _cam(entry, kind), _int(entry, kind, "seq"), _int(entry, kind, "ts")
    w, h = _int(entry, kind, "w", 1), _int(entry, kind, "h", 1)
    jpg = entry.get(b"jpg", entry.get("jpg"))
    if not jpg:
        raise MessageError(kind, "jpg", "is missing or empty")
    key = _int(entry, kind, "key") != 0 if _has(entry, "key") else True
    regions: list[Region] = []
    if not key:
        try:
            regions = decode_regions(_raw(entry, kind, "regions"), w, h)
        except ValueError as exc:
            raise MessageError(kind, "regions", str(exc).removeprefix("regions: ")) from None
    return Frame(cam=cam, seq=seq, ts=ts, w=w, h=h, jpg=jpg if isinstance(jpg, bytes) else str(jpg).encode("latin-1"),
                 key=key, regions=tuple(regions))


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


def _json(entry: Fields, kind: str, name: str) -> Any:
    try:
        return json.loads(_raw(entry, kind, name))
    except json.JSONDecodeError as exc:
        raise MessageError(kind, name, f"is not JSON ({exc.msg})") from None


def decode_result(entry: Fields) -> Result:
    kind = "result"
    _check_version(entry, kind)
    faces_raw = _json(entry, kind, "faces")
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
