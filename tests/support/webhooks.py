"""Webhook receivers for the side-job tests: real HTTP servers on 127.0.0.1 that answer, hang or trickle.

Each request is an :class:`Arrival`, numbered with the receiver's other events (arrivals and
connections ending) in one sequence, so a test can say what happened before what without
reading a clock.
"""

from __future__ import annotations

import itertools
import json
import select
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from maskwatch.cli.embedded_redis import free_port
from maskwatch.signing import HEADER

OK, HANG, DRIP = "ok", "hang", "drip"
DRIP_EVERY_S = 0.2  # a trickling receiver sends a byte this often: under any read timeout of the tests


@dataclass
class Arrival:
    """One request: its body, where it came in the sequence and where its connection ended."""

    body: dict[str, Any]
    arrived: int
    ended: int | None = None  # None: still open
    answered: bool = False  # a whole 200 was sent (the client may have left before reading it)
    raw: bytes = b""  # the body as it came, the bytes its signature covers
    signature: str | None = None  # its X-MaskWatch-Signature header

    @property
    def key(self) -> tuple[str, int]:
        return self.body["delivery_id"], self.body["attempt"]


@dataclass
class Receiver:
    """``mode`` ok answers 200 at once; hang holds each request until :meth:`release`; drip answers one
    byte every :data:`DRIP_EVERY_S` and never finishes. A held request ends early when the client leaves."""

    url: str
    mode: str
    arrivals: list[Arrival] = field(default_factory=list)
    released: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _seq: Iterator[int] = field(default_factory=itertools.count)

    def release(self) -> None:
        self.released.set()

    @property
    def open(self) -> list[Arrival]:
        with self._lock:
            return [a for a in self.arrivals if a.ended is None]

    def tick(self) -> int:
        with self._lock:
            return next(self._seq)

    def arrive(self, raw: bytes, signature: str | None) -> Arrival:
        with self._lock:
            arrival = Arrival(json.loads(raw), next(self._seq), raw=raw, signature=signature)
            self.arrivals.append(arrival)
        return arrival


def _client_left(sock: socket.socket, wait_s: float) -> bool:
    """Whether the client closed its end, waiting up to ``wait_s`` for it to."""
    if not select.select([sock], [], [], wait_s)[0]:
        return False
    try:
        return sock.recv(1, socket.MSG_PEEK) == b""
    except OSError:
        return True


@contextmanager
def receiver(mode: str = OK) -> Iterator[Receiver]:
    port = free_port()
    rec = Receiver(f"http://127.0.0.1:{port}/hook", mode)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
            arrival = rec.arrive(self.rfile.read(int(self.headers["Content-Length"])), self.headers.get(HEADER))
            try:
                if rec.mode == DRIP:
                    self.wfile.write(b"HTTP/1.1 200 OK\r\nX-Trickle: ")
                    while not _client_left(self.connection, DRIP_EVERY_S):
                        self.wfile.write(b"x")
                        self.wfile.flush()
                    return
                if rec.mode == HANG:
                    while not rec.released.is_set():
                        if _client_left(self.connection, 0.05):
                            return
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()
                arrival.answered = True
            except OSError:
                pass  # the client left while we wrote
            finally:
                arrival.ended = rec.tick()
                self.close_connection = True

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield rec
    finally:
        rec.release()
        server.shutdown()
        server.server_close()
