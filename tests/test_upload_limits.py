"""Bodies against the real dashboard under uvicorn on loopback: the token is checked before the body is read, a body
past its cap is cut off at the cap, a stalled body is cut off, and the upload's spool never outgrows the cap.

Each attack is sent by hand over a socket, as an attacker would, and the client counts the body bytes it had handed
to the kernel when the answer came. Those are the bytes the server read plus the bytes in flight, which the small
socket buffers here (SO_SNDBUF and SO_RCVBUF of BUFFER) and uvicorn's own read-ahead bound by SLACK. What the
server spooled is read from the files this process (the server runs in a thread of it) holds open in a temporary
folder of the test's own.
"""

from __future__ import annotations

import os
import select
import socket
import tempfile
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from dashboard.app import create_app
from dashboard.bodylimits import JSON_BODY_MAX
from dashboard.jobs_views import FORM_OVERHEAD
from dashboard.server import server_for
from maskwatch.settings import Settings
from tests.support.waiting import wait_for

TOKEN = "upload-token"
CAP_MB = 2
CAP = CAP_MB * 2**20
MiB = 2**20
BUFFER = 64 * 1024  # each side's socket buffer (the kernel doubles it)
# In flight between the client's count and the app: both kernel buffers (2 x 2 x BUFFER) and what uvicorn reads
# ahead of the app (one 256 KiB socket read and its 64 KiB high-water mark), rounded up.
SLACK = 1 * MiB
WAIT_S = 30  # longest the client waits for the server to read or answer; only a broken server waits that long
BOUNDARY = "mwboundary"


@pytest.fixture
def spool(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Where the server's upload spool files go (tempfile's folder, for this process and so its server thread)."""
    folder = tmp_path / "spool"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


@pytest.fixture
def port(settings: Settings, spool: Path) -> Iterator[int]:
    """The dashboard (token mode, a small upload cap and body timeout) under uvicorn on a listening socket with a
    small receive buffer, which its connections inherit."""
    app = create_app(settings.override(api_token=TOKEN, upload_max_mb=CAP_MB, body_timeout_s=1.0))
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, BUFFER)
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    number = sock.getsockname()[1]
    server = server_for(app, "127.0.0.1", number)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="dashboard", daemon=True)
    thread.start()
    wait_for(lambda: server.started or not thread.is_alive(), 15, "the dashboard to start", every=0.02)
    assert server.started, "the dashboard's server thread ended before it started serving"
    try:
        yield number
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


def spooled(folder: Path) -> int:
    """Bytes in the files this process holds open in ``folder`` (spool files are unlinked: only their fds show)."""
    total = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}").startswith(str(folder)):
                total += os.stat(f"/proc/self/fd/{fd}").st_size
        except OSError:  # closed meanwhile
            continue
    return total


@dataclass
class Answer:
    status: int | None  # None: the connection ended without an answer
    headers: dict[str, str]
    body: bytes
    sent: int  # body bytes the client had sent when the answer came
    spooled_max: int  # the most the server's spool held while the client sent
    closed: bool  # the server closed the connection after answering


def request_head(path: str, headers: dict[str, str]) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def send(port: int, head: bytes, body: Iterable[bytes], spool: Path) -> Answer:
    """Send the head, then the body as fast as the server takes it, until the server answers."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, BUFFER)
    sock.connect(("127.0.0.1", port))
    with sock:
        sock.sendall(head)
        sock.setblocking(False)
        chunks, pending, sent, spooled_max = iter(body), b"", 0, 0
        while True:
            if not pending:
                pending = next(chunks, b"")
            readable, writable, _ = select.select([sock], [sock] if pending else [], [], WAIT_S)
            assert readable or writable, f"the server neither answered nor read for {WAIT_S} s"
            spooled_max = max(spooled_max, spooled(spool))
            if readable:
                break
            try:
                n = sock.send(pending)
            except (BrokenPipeError, ConnectionResetError):  # closed on us: the answer may be waiting
                break
            sent, pending = sent + n, pending[n:]
        return _read_answer(sock, sent, spooled_max)


def _read_answer(sock: socket.socket, sent: int, spooled_max: int) -> Answer:
    sock.setblocking(True)
    sock.settimeout(WAIT_S)
    data, closed = b"", False
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            closed = True
            break
        if not chunk:
            closed = True
            break
        data += chunk
        head, sep, body = data.partition(b"\r\n\r\n")
        if sep:
            headers = dict(line.split(": ", 1) for line in head.decode("latin-1").split("\r\n")[1:])
            headers = {k.lower(): v for k, v in headers.items()}
            if len(body) >= int(headers.get("content-length", 0)) and headers.get("connection") != "close":
                break  # a complete answer on a connection kept open
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        return Answer(None, {}, b"", sent, spooled_max, closed)
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v for k, v in (line.split(": ", 1) for line in lines)}
    return Answer(int(status_line.split()[1]), headers, body, sent, spooled_max, closed)


def multipart(video_bytes: int) -> tuple[int, Iterator[bytes]]:
    """A multipart upload of ``video_bytes`` zero bytes as the video: its length and its chunks."""
    start = (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"video\"; filename=\"v.avi\"\r\n"
             "Content-Type: video/x-msvideo\r\n\r\n").encode()
    end = f"\r\n--{BOUNDARY}--\r\n".encode()

    def chunks() -> Iterator[bytes]:
        yield start
        left = video_bytes
        while left > 0:
            yield bytes(min(left, 65536))
            left -= 65536
        yield end

    return len(start) + video_bytes + len(end), chunks()


def chunked(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """The chunks in HTTP chunked transfer coding: no length is declared, only the bytes read tell."""
    for chunk in chunks:
        yield f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
    yield b"0\r\n\r\n"


FORM = f"multipart/form-data; boundary={BOUNDARY}"
AUTH = f"Bearer {TOKEN}"


@pytest.mark.parametrize("expect", [False, True], ids=["plain", "expect-100-continue"])
def test_upload_without_token_is_refused_before_the_body_is_read(port: int, spool: Path, expect: bool) -> None:
    length, body = multipart(200 * MiB)
    headers = {"Content-Type": FORM, "Content-Length": str(length)}
    if expect:  # curl's way: the body follows only once the server says 100 Continue, which it never does here
        headers["Expect"] = "100-continue"
        body = iter(())
    answer = send(port, request_head("/api/analyses", headers), body, spool)
    assert answer.status == 401, answer
    assert answer.headers["www-authenticate"].startswith("Bearer")
    assert answer.sent <= SLACK, f"the client sent {answer.sent} of {length} bytes before the 401"
    assert answer.spooled_max == 0 and spooled(spool) == 0, "nothing of the body may be spooled"
    assert answer.headers.get("connection") == "close" and answer.closed, "the rest of the body is never read"


def test_wrong_token_is_refused_as_early(port: int, spool: Path) -> None:
    length, body = multipart(200 * MiB)
    headers = {"Content-Type": FORM, "Content-Length": str(length), "Authorization": "Bearer guess"}
    answer = send(port, request_head("/api/analyses", headers), body, spool)
    assert answer.status == 401 and "wrong bearer token" in answer.body.decode()
    assert answer.sent <= SLACK and answer.spooled_max == 0


def test_upload_past_the_cap_is_cut_off_at_the_cap(port: int, spool: Path) -> None:
    """No declared length (chunked): the server counts the bytes and stops at the cap."""
    _, body = multipart(300 * MiB)
    headers = {"Content-Type": FORM, "Transfer-Encoding": "chunked", "Authorization": AUTH}
    answer = send(port, request_head("/api/analyses", headers), chunked(body), spool)
    assert answer.status == 413, answer
    assert "larger than" in answer.body.decode()
    assert CAP < answer.sent <= CAP + FORM_OVERHEAD + SLACK, f"the client sent {answer.sent} bytes before the 413"
    assert answer.spooled_max <= CAP + FORM_OVERHEAD, "the spool outgrew the cap"
    assert answer.closed and spooled(spool) == 0, "the spool is dropped and the connection closed"


def test_upload_within_the_cap_is_taken(port: int, spool: Path) -> None:
    video = os.urandom(CAP - 1024)
    resp = httpx.post(f"http://127.0.0.1:{port}/api/analyses", files={"video": ("v.avi", video)},
                      data={"fps": "2"}, headers={"Authorization": AUTH}, timeout=WAIT_S)
    assert resp.status_code == 202, resp.text
    assert spooled(spool) == 0, "the spool is dropped once the video is queued"


@pytest.mark.parametrize(("path", "declared", "auth"), [
    ("/api/analyses", 2 * 2**30, AUTH),  # the 2 GiB
    ("/api/cameras", 200 * MiB, None),  # a JSON body is read before the token check: its cap is small
], ids=["upload", "json"])
def test_declared_length_past_the_cap_is_refused_before_a_body_byte(port: int, spool: Path, path: str,
                                                                     declared: int, auth: str | None) -> None:
    headers = {"Content-Type": FORM if path == "/api/analyses" else "application/json",
               "Content-Length": str(declared), **({"Authorization": auth} if auth else {})}
    answer = send(port, request_head(path, headers), iter(()), spool)
    assert answer.status == 413, answer
    cap = CAP + FORM_OVERHEAD if path == "/api/analyses" else JSON_BODY_MAX
    assert str(cap) in answer.body.decode()
    assert answer.sent == 0 and answer.closed


@pytest.mark.parametrize("path", ["/api/analyses", "/api/cameras"], ids=["upload", "json"])
def test_stalled_body_is_cut_off(port: int, spool: Path, path: str) -> None:
    """Headers and part of the body, then nothing: the server answers 408 after the body timeout and hangs up."""
    if path == "/api/analyses":
        length, body = multipart(CAP // 2)
        part = [next(body), next(body)]  # the form's start and 64 KiB of the video
        content_type = FORM
    else:
        length, part, content_type = 1000, [b'{"id": "dock", "url": "rtsp://dock/1"'], "application/json"
    headers = {"Content-Type": content_type, "Content-Length": str(length), "Authorization": AUTH}
    answer = send(port, request_head(path, headers), part, spool)
    assert answer.status == 408, answer
    assert "sent nothing for 1 s" in answer.body.decode()
    assert answer.sent == sum(map(len, part)) < length
    assert answer.closed and spooled(spool) == 0


def test_the_upload_form_in_a_browser(port: int, spool: Path, tmp_path: Path) -> None:
    """The jobs page's form: a video past the cap is refused before anything is sent (the server would close the
    connection on it, which a browser reports as a network error); one within it is analysed."""
    from tests.test_dashboard_browser import CHROMIUM, CHROMIUM_ARGS, expect, sync_api  # skips without a browser

    big, small = tmp_path / "big.avi", tmp_path / "small.avi"
    big.write_bytes(bytes(CAP + 1))
    small.write_bytes(os.urandom(64 * 1024))
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page()
        posts: list[str] = []
        page.on("request", lambda req: posts.append(req.url) if req.method == "POST" else None)
        page.goto(f"http://127.0.0.1:{port}/jobs")
        expect(page.locator("#upload")).to_contain_text(f"at most {CAP_MB} MiB")
        page.fill('input[name="token"]', TOKEN)
        page.set_input_files('input[name="video"]', str(big))
        page.click("#upload button")
        expect(page.locator("#upload-error")).to_contain_text(f"larger than {CAP_MB} MiB")
        assert posts == [], "a video past the cap is never sent"
        page.set_input_files('input[name="video"]', str(small))
        page.fill('input[name="fps"]', "2")
        page.click("#upload button")
        page.wait_for_url("**/jobs/analyses/*")
        assert posts == [f"http://127.0.0.1:{port}/api/analyses"]
        browser.close()
