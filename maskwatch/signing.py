"""Webhook signatures: how MaskWatch signs a delivery and how a receiver checks one.

Every webhook POST carries ``X-MaskWatch-Signature: sha256=<hex>``, the HMAC-SHA256 of the raw
request body keyed with ``MASKWATCH_WEBHOOK_SECRET``. A receiver recomputes it over the bytes it
received (before parsing the JSON) and compares in constant time; then, to reject replays, it
checks the body's ``sent_at`` (epoch ms) is recent and that it has not seen ``delivery_id``
before (retries of one delivery reuse its id, so a receiver that already took it can answer
2xx and drop the copy).

A receiver, e.g. in Flask::

    from maskwatch.signing import HEADER, verify_signature

    @app.post("/maskwatch")
    def hook():
        body = request.get_data()  # the raw bytes, before any JSON parsing
        if not verify_signature(body, request.headers.get(HEADER), SECRET):
            abort(401)
        event = json.loads(body)
        if event["sent_at"] < now_ms() - 5 * 60_000 or seen_before(event["delivery_id"]):
            return "", 200  # a replay or a retry already taken: accept and drop
        ...

>>> body = b'{"delivery_id": "d1"}'
>>> header = sign(body, "s3cret")
>>> header.startswith("sha256=")
True
>>> verify_signature(body, header, "s3cret"), verify_signature(body + b" ", header, "s3cret")
(True, False)
"""

from __future__ import annotations

import hashlib
import hmac

HEADER = "X-MaskWatch-Signature"
SCHEME = "sha256="


def sign(body: bytes, secret: str) -> str:
    """The header value for ``body``: ``sha256=`` and the hex HMAC-SHA256 keyed with ``secret``."""
    return SCHEME + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify_signature(body: bytes, header: str | None, secret: str) -> bool:
    """Whether ``header`` (the ``X-MaskWatch-Signature`` value) is the signature of exactly ``body``."""
    if not header or not header.startswith(SCHEME) or not secret:
        return False
    return hmac.compare_digest(sign(body, secret), header.strip())
