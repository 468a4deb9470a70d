"""Small conversions every process needs: the clock in epoch ms, Redis replies as text, Lua arguments.

MaskWatch's Redis clients never decode replies (frames are binary), so hashes, stream entries and
ids arrive as bytes; these helpers turn them into text in one way everywhere.

>>> text(b"lobby"), text("lobby"), text(b"\\xff") == "\\ufffd"
('lobby', 'lobby', True)
>>> decode_hash({b"state": b"online", b"fps": b"5.0"})
{'state': 'online', 'fps': '5.0'}
>>> flat_fields({"cam": "lobby", "seq": 7})
['cam', 'lobby', 'seq', 7]
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any, TypeVar

from maskwatch.exceptions import MessageError

T = TypeVar("T")


def now_ms() -> int:
    """Wall-clock time in epoch milliseconds, the unit of every timestamp on the streams."""
    return time.time_ns() // 1_000_000


def text(value: bytes | str) -> str:
    """A Redis reply as text; bytes that are not UTF-8 become U+FFFD rather than an error."""
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def decode_hash(raw: Mapping[bytes, bytes] | Mapping[str, str] | Mapping[bytes | str, bytes | str]) -> dict[str, str]:
    """A hash (``HGETALL``) or stream entry with text keys and values."""
    return {text(k): text(v) for k, v in raw.items()}


def flat_fields(fields: Mapping[str, T]) -> list[str | T]:
    """``{field: value}`` as the flat ``field, value, ...`` list that XADD and HSET take in a Lua script."""
    return [x for kv in fields.items() for x in kv]


def json_object(raw: bytes | str, kind: str, whole: str) -> dict[str, Any]:
    """A stored JSON object; else a :class:`MessageError` of ``kind`` naming the value as ``whole``.

    >>> json_object(b'{"state": "running"}', "process", "(value)")
    {'state': 'running'}
    >>> json_object("[1]", "person", "(record)")
    Traceback (most recent call last):
    maskwatch.exceptions.MessageError: person entry: field '(record)' must be a JSON object
    """
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise MessageError(kind, whole, f"is not JSON ({exc})") from None
    if not isinstance(data, dict):
        raise MessageError(kind, whole, "must be a JSON object")
    return data
