"""Real network peers for the camera-URL tests: a TCP listener that records what reaches it, and an HTTP camera.

:class:`Listener` stands for a service a camera URL must never reach (Redis, anything on the
site's network): it accepts connections on loopback, keeps every byte sent to it, and may answer
with a banner first, as SSH does. :class:`CameraServer` is an HTTP camera with a few behaviours
chosen by path, and records every request it gets.
"""

from __future__ import annotations

import socket
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import cv2
import numpy as np

JPEG = cv2.imencode(".jpg", np.full((120, 160, 3), 90, np.uint8))[1].tobytes()


class Listener:
    """A TCP port on 127.0.0.1 that records connections and bytes; ``banner`` is sent to each, then it closes."""

    def __init__(self, banner: bytes = b""):
        self.banner = banner
        self.connections = 0
        self.received = b""
        self._lock = threading.Lock()
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:  # closed
                return
            threading.Thread(target=self._take, args=(conn,), daemon=True).start()

    def _take(self, conn: socket.socket) -> None:
        with self._lock:
            self.connections += 1
        with conn:
            conn.settimeout(1.0)
            try:
                if self.banner:
                    conn.sendall(self.banner)
                while data := conn.recv(4096):
                    with self._lock:
                        self.received += data
            except OSError:
                pass

    def close(self) -> None:
        self._sock.close()


@dataclass
class Request:
    path: str
    user_agent: str


@dataclass
class _Log:
    requests: list[Request] = field(default_factory=list)

    def count(self, prefix: str) -> int:
        return sum(req.path.startswith(prefix) for req in self.requests)


class _Camera(BaseHTTPRequestHandler):
    """Paths: ``/snap.jpg`` an image; ``/auth`` 401; ``/page`` an HTML page; ``/redirect-to?PORT`` a redirect to
    ``http://127.0.0.1:PORT/``; ``/flip-to?PORT`` a video stream's headers for httpx, that redirect for FFmpeg
    (a camera that tells the producer one thing and FFmpeg another)."""

    server: CameraServer

    def do_GET(self) -> None:
        agent = self.headers.get("User-Agent", "")
        self.server.log.requests.append(Request(self.path, agent))
        path, _, query = self.path.partition("?")
        if path == "/snap.jpg":
            self._answer(200, "image/jpeg", JPEG)
        elif path == "/auth":
            self._answer(401, "text/plain", b"", (("WWW-Authenticate", 'Basic realm="camera"'),))
        elif path == "/page":
            self._answer(200, "text/html", b"<html><body>router admin</body></html>")
        elif path == "/redirect-to" or (path == "/flip-to" and agent.startswith("Lavf")):
            self._answer(302, "text/plain", b"", (("Location", f"http://127.0.0.1:{query}/"),))
        elif path == "/flip-to":
            self._answer(200, "multipart/x-mixed-replace; boundary=frame", b"")
        else:
            self._answer(404, "text/plain", b"")

    def _answer(self, code: int, ctype: str, body: bytes, headers: tuple[tuple[str, str], ...] = ()) -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


class CameraServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Camera)
        self.log = _Log()
        self.port: int = self.server_address[1]
        threading.Thread(target=self.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.shutdown()
        self.server_close()
