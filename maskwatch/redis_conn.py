"""Connecting to Redis: one place that turns settings into a client and a clear error into a fix."""

from __future__ import annotations

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from maskwatch.exceptions import RedisUnavailable
from maskwatch.redaction import mask_url
from maskwatch.settings import Settings


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
        # One retry, no wait: the callers' outage policy (maskwatch.service) does the backing off,
        # and a dead Redis must fail a call fast rather than after redis-py's own ten tries.
        retry=Retry(NoBackoff(), 1),
        retry_on_timeout=True,
    )
    if check:
        try:
            client.ping()
        except redis.RedisError as exc:
            raise RedisUnavailable(f"cannot reach Redis at {mask_url(settings.redis_url)}: {exc}") from exc
    return client
