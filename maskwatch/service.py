"""What every long-running MaskWatch process shares: its log format, stopping on a signal, riding out a Redis outage.

* :func:`setup_logging`: one line per record with the process role and, where given, camera and
  frame ids. The command line calls it once per process, before the command runs.
* :class:`StopSignal`: a stop flag that SIGINT and SIGTERM set; loops wait on it and end early.
* :class:`RedisOutage`: the one policy for Redis going away (docs/architecture.md, "Failure
  behaviour"): said once when it starts and once when it ends, calls retried with capped
  exponential backoff and full jitter, never a crash, never a busy loop, never a line per try.
* :func:`wait_for_redis`: how a process starts when Redis is down: it waits under that policy
  instead of exiting, so a Redis that comes up after the processes (or restarts) needs no restart.

A loop that talks to Redis reads::

    while outage.turn(stop):      # at once while Redis answers; during an outage, after the backoff
        with outage.guard():      # an unreachable Redis is noted here, anything else propagates
            step()
"""

from __future__ import annotations

import contextlib
import logging
import random
import select
import signal
import socket
import sys
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from types import FrameType

import redis

from maskwatch.exceptions import RedisUnavailable
from maskwatch.redaction import mask_text

log = logging.getLogger(__name__)

# Redis cannot be reached (refused, reset, timed out, still loading its data): wait and try again.
# Other Redis errors (a refused command, out of memory) are not outages and reach the caller.
OUTAGE_ERRORS: tuple[type[Exception], ...] = (redis.ConnectionError, redis.TimeoutError)


class _ContextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        ctx = " ".join(f"{k}={getattr(record, k)}" for k in ("cam", "seq", "entry") if hasattr(record, k))
        # Callers mask what they log; this catches a URL with a secret from anywhere else (a library, a traceback).
        return mask_text(f"{line} [{ctx}]" if ctx else line)


def setup_logging(role: str, level: str = "INFO") -> None:
    """Configure the root logger of a process named ``role`` (producer, worker, ...).

    Call sites pass ``extra={"cam": ..., "seq": ...}``; the formatter prints them as ``[cam=... seq=...]``.
    """
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_ContextFormatter(f"%(asctime)s {role}[%(process)d] %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # httpx logs every request at INFO, URL tokens included: five lines a second per snapshot camera.
    # Webhook deliveries and captures log their own outcome.
    for noisy in ("httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


class StopSignal:
    """A stop flag: :meth:`stop` sets it, and so do SIGINT and SIGTERM once :meth:`install` ran.

    Any thread may :meth:`wait` on it. A signal handler must not take a lock that the code it
    interrupted may hold (``threading.Event.set`` does), so the flag wakes its waiters through a
    socket pair: a byte written to it makes the socket readable for every ``select``. A second
    signal while stopping is ignored: Ctrl-C reaches every process of the terminal's group and
    ``maskwatch up`` then sends its children SIGTERM, and neither deserves a traceback.
    """

    def __init__(self) -> None:
        self._reader, self._writer = socket.socketpair()
        for sock in (self._reader, self._writer):
            sock.setblocking(False)
            weakref.finalize(self, sock.close)
        self._stopping = False
        self.reason = ""  # what asked to stop: "SIGTERM", "SIGINT" or "stop()"

    def install(self) -> StopSignal:
        """Make SIGINT and SIGTERM set the flag (call from the main thread)."""
        # The kernel may deliver a signal to any thread; Python runs the handler in the main thread,
        # but only once that thread runs Python code again. As the signal's wakeup fd, the socket
        # wakes a main thread blocked in wait() at once.
        signal.set_wakeup_fd(self._writer.fileno(), warn_on_full_buffer=False)
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._on_signal)
        return self

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        if self._stopping:
            return
        log.info("%s received: stopping", signal.Signals(signum).name)
        self._set(signal.Signals(signum).name)

    def stop(self) -> None:
        """Set the flag, as a signal would."""
        if not self._stopping:
            self._set("stop()")

    def _set(self, reason: str) -> None:
        self.reason, self._stopping = reason, True
        self._writer.send(b"\0")

    @property
    def stopping(self) -> bool:
        return self._stopping

    def wait(self, seconds: float | None = None) -> bool:
        """Sleep ``seconds`` (None: until stopped), returning early once stopping; whether stopping."""
        deadline = None if seconds is None else time.monotonic() + seconds
        while not self._stopping:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                break
            if select.select([self._reader], [], [], left)[0] and not self._stopping:
                # The wakeup byte of a signal whose handler has yet to run (it runs before the next
                # check), or of another signal: read it, or the socket would wake every select.
                with contextlib.suppress(BlockingIOError):
                    self._reader.recv(64)
        return self._stopping


class Backoff:
    """Delays for retries: the n-th :meth:`next` is ``uniform(0, min(cap, base * 2**n))`` seconds.

    Full jitter (a uniform draw below the exponential bound) spreads the retries of many clients
    that failed together, instead of retrying in lock-step.

    >>> b = Backoff(base=0.5, cap=4.0, rng=lambda: 1.0)   # the upper bounds; real draws fall below them
    >>> [b.next() for _ in range(6)]
    [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    >>> b.attempts, (b.reset(), b.attempts)[1]
    (6, 0)
    """

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


def redis_address(r: redis.Redis) -> str:
    """Where ``r`` connects, for log lines: ``host:port/db`` or the socket path; never a password."""
    kw = r.connection_pool.connection_kwargs
    place = kw.get("path") or f"{kw.get('host', 'localhost')}:{kw.get('port', 6379)}"
    return f"{place}/{kw.get('db', 0)}"


class RedisOutage:
    """Whether Redis answers, for every thread of one process, and when to try it again.

    ``who`` and ``meanwhile`` make the log lines: "worker w1: Redis at host:6379/0 is unreachable
    (...); frames stay pending. Retrying with backoff." While Redis is down, one caller at a time
    may try it (:meth:`may_try`), after a delay that doubles with every failed try up to ``cap``
    (with full jitter). A try that reports neither :meth:`failed` nor :meth:`ok` frees the turn
    after ``cap`` seconds.
    """

    def __init__(self, who: str, where: str, meanwhile: str, *, base: float = 0.2, cap: float = 5.0,
                 rng: Callable[[], float] = random.random, clock: Callable[[], float] = time.monotonic):
        self.who, self.where, self.meanwhile = who, where, meanwhile
        self._backoff = Backoff(base, cap, rng)
        self._clock = clock
        self._lock = threading.Lock()
        self._since: float | None = None  # when the outage began; None while Redis answers
        self._next_try = 0.0  # during an outage, when the next try is due
        self._trying = False  # during an outage, whether a caller holds the turn to try

    @property
    def down(self) -> bool:
        return self._since is not None

    def may_try(self) -> bool:
        """Whether to call Redis now: always while it answers; during an outage, when the turn is due.

        A True during an outage takes the turn: other callers wait for its :meth:`ok` or :meth:`failed`.
        """
        if self._since is None:  # the common case, without the lock
            return True
        with self._lock:
            now = self._clock()
            if self._since is None:
                return True
            if now < self._next_try:
                return False
            self._trying, self._next_try = True, now + self._backoff.cap
            return True

    def failed(self, exc: Exception) -> None:
        """A Redis call failed to reach it; the first failure of an outage is logged."""
        with self._lock:
            now = self._clock()
            starting = self._since is None
            if starting:
                self._since = now
            elif not self._trying and now < self._next_try:
                return  # a call begun before the outage was noticed: nothing new
            self._trying = False
            self._next_try = now + self._backoff.next()
        if starting:
            log.warning("%s: Redis at %s is unreachable (%s); %s. Retrying with backoff (at most %.0f s apart)",
                        self.who, self.where, exc, self.meanwhile, self._backoff.cap)

    def ok(self) -> None:
        """A Redis call succeeded; ends an outage, which is logged with how long it lasted."""
        if self._since is None:  # the common case, without the lock
            return
        with self._lock:
            now = self._clock()
            if self._since is None or (not self._trying and now < self._next_try):
                return  # none, or a call begun before the outage was noticed
            lasted, self._since, self._trying = now - self._since, None, False
            self._backoff.reset()
        log.info("%s: Redis at %s is back after %.1f s", self.who, self.where, lasted)

    @contextlib.contextmanager
    def guard(self) -> Iterator[None]:
        """Run the block as one try: Redis unreachable is :meth:`failed` (swallowed), success is :meth:`ok`."""
        try:
            yield
        except OUTAGE_ERRORS as exc:
            self.failed(exc)
        else:
            self.ok()

    def turn(self, stop: StopSignal) -> bool:
        """Wait until this loop may call Redis (at once while it answers); False once ``stop`` is set."""
        while not stop.stopping:
            if self.may_try():
                return True
            # Wake at the due time, or sooner to notice that another thread's try brought Redis back.
            stop.wait(min(max(0.0, self._next_try - self._clock()), 0.5))
        return False


def wait_for_redis(r: redis.Redis, who: str, stop: StopSignal) -> bool:
    """Block until Redis answers a PING (True), or until ``stop`` is set (False).

    A process calls it before it starts work: with Redis down it waits rather than exits, said
    once when the wait starts ("``who``: Redis at host:6379/0 is unreachable ...; waiting for it
    before starting") and once when Redis answers, trying with :class:`RedisOutage`'s backoff.
    A Redis that answers but refuses the client (a wrong password, a database that does not
    exist) is no outage but a setting to fix: :class:`~maskwatch.exceptions.RedisUnavailable`.
    """
    outage = RedisOutage(who, redis_address(r), "waiting for it before starting")
    while outage.turn(stop):
        try:
            r.ping()
        except (redis.AuthenticationError, redis.exceptions.AuthorizationError, redis.ResponseError) as exc:
            raise RedisUnavailable(f"Redis at {outage.where} refuses {who}: {exc}; check the password and the "
                                   "database number in MASKWATCH_REDIS_URL") from None
        except OUTAGE_ERRORS as exc:
            outage.failed(exc)
        else:
            outage.ok()
            return True
    return False
