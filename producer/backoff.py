"""Reconnect delays: exponential backoff with full jitter, capped.

Full jitter (a uniform draw between 0 and the exponential bound) spreads the retries of many
cameras that failed together, e.g. when a recorder reboots, instead of retrying in lock-step.

>>> b = Backoff(base=0.5, cap=4.0, rng=lambda: 1.0)   # the upper bounds; real draws fall below them
>>> [b.next() for _ in range(6)]
[0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
>>> b.attempts, (b.reset(), b.attempts)[1]
(6, 0)
"""

from __future__ import annotations

import random
from collections.abc import Callable


class Backoff:
    """The n-th call of :meth:`next` returns ``uniform(0, min(cap, base * 2**n))`` seconds."""

    def __init__(self, base: float = 0.5, cap: float = 30.0, rng: Callable[[], float] = random.random):
        if base <= 0 or cap < base:
            raise ValueError(f"need 0 < base <= cap, got base={base} cap={cap}")
        self.base, self.cap, self._rng = base, cap, rng
        self.attempts = 0

    def next(self) -> float:
        bound = min(self.cap, self.base * 2 ** min(self.attempts, 32))
        self.attempts += 1
        return bound * self._rng()

    def reset(self) -> None:
        self.attempts = 0
