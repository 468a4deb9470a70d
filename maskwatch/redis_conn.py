"""Connecting to Redis: one place that turns settings into a client and a clear error into a fix."""

from __future__ import annotations

import redis

from maskwatch.redaction import mask_url
from maskwatch.settings import Settings


class RedisUnavailable(RuntimeError):
    """Redis cannot be reached; the message says where it looked and what to do."""


def connect(settings: Settings, check: bool = True) -> redis.Redis:
    """A client for ``settings.redis_url`` with timeouts and keep-alive; binary-safe (no decoding).

    With ``check``, ping once and raise :class:`RedisUnavailable` explaining the fix.
    """
    if not settings.redis_url:
        raise RedisUnavailable(
            "no Redis configured: set MASKWATCH_REDIS_URL (e.g. redis://localhost:6379/0) or pass --redis-url; "
            "`maskwatch up` starts an embedded redis-server when neither is set"
        )
    client = redis.Redis.from_url(
        settings.redis_url,
        socket_connect_timeout=5,
        socket_timeout=30,
        socket_keepalive=True,
        health_check_interval=15,
        retry_on_timeout=True,
    )
    if check:
        try:
            client.ping()
        except redis.RedisError as exc:
            raise RedisUnavailable(f"cannot reach Redis at {mask_url(settings.redis_url)}: {exc}") from exc
    return client
