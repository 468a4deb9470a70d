"""Camera URLs: only what the allow-list takes is ever opened, refused when added, and failures say why without
scanning ports (docs/architecture.md, "Cameras").

Each attack is reproduced against real peers: a TCP listener that records every byte (the target a
gopher:// URL aims at), a real redis-server whose log says when HTTP reached it, an HTTP camera
that redirects, real video files and playlists in and out of the media folder. Producers and the
dashboard run for real; `maskwatch camera` runs as a process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import cv2
import httpx
import numpy as np
import pytest
import redis

from maskwatch.camera_open import CaptureError, first_open, open_capture
from maskwatch.camera_urls import Target, UrlPolicy
from maskwatch.cameras import CameraConfig, Registry
from maskwatch.cli.camera import check_cameras, up_cameras
from maskwatch.cli.embedded_redis import EmbeddedRedis, free_port
from maskwatch.cli.runfile import RunFile, RunInfo, read
from maskwatch.exceptions import CameraError
from maskwatch.keys import Keys
from maskwatch.redaction import mask_url
from maskwatch.settings import Settings
from tests.support.dashboard import serve
from tests.support.fakenet import CameraServer, Listener
from tests.support.producer import frames, make_video, producers, status
from tests.support.waiting import wait_for

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "camera-url-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def listener() -> Iterator[Listener]:
    peer = Listener()
    yield peer
    peer.close()


@pytest.fixture
def camera_server() -> Iterator[CameraServer]:
    server = CameraServer()
    yield server
    server.close()


@pytest.fixture
def media(tmp_path: Path) -> Path:
    folder = tmp_path / "media"
    folder.mkdir()
    return folder


def _post(url: str, cam: str, camera_url: str) -> httpx.Response:
    return httpx.post(f"{url}/api/cameras", json={"id": cam, "url": camera_url}, headers=AUTH, timeout=30)


def _refusal(resp: httpx.Response) -> str:
    assert resp.status_code == 422, resp.text
    detail = resp.json()["detail"][0]
    assert detail["loc"][-1] == "url"
    return str(detail["msg"])


# --- what a URL may be -------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("url", "words"), [
    ("gopher://127.0.0.1:6379/9/x\r\nSET k 1\r\n", "control character ('\\r'"),
    ("gopher://127.0.0.1:6379/_SET%20k%201", "scheme 'gopher:' is not allowed"),
    ("data:video/mp4;base64,AAAA", "scheme 'data:' is not allowed"),
    ("concat:/media/a.mp4|/etc/passwd", "scheme 'concat:' is not allowed"),
    ("file:///etc/passwd", "without file:"),
    ("notaurl://x", "scheme 'notaurl:' is not allowed"),
    ("rtsp://cam/1\n", "control character"),
    ("rtsp://cam/\x00x", "control character"),
    ("rtsp://cam/\u202egpj.4pm", "control character ('\\u202e'"),
    ("rtsp:///stream1", "needs a host"),
    ("1400", "webcam index 1400 is out of range"),
])
def test_a_url_outside_the_allow_list_is_an_invalid_config(url: str, words: str) -> None:
    with pytest.raises(CameraError) as err:
        CameraConfig.from_dict("lobby", {"url": url})
    assert words in str(err.value) and str(err.value).startswith("camera 'lobby': field 'url': ")


@pytest.mark.parametrize("url", ["rtsp://10.0.0.5/stream1", "RTSPS://cam:322/s", "http://cam/video.mjpg",
                                 "https://u:p@cam/snap.jpg?token=x", "0", "99", "clips/door.mp4", "/srv/media/a.avi"])
def test_the_four_kinds_of_camera_pass(url: str) -> None:
    assert CameraConfig.from_dict("lobby", {"url": url}).url == url


# --- attack: gopher:// runs Redis commands ------------------------------------------------------------------------

def test_a_gopher_camera_is_refused_and_never_reaches_its_target(settings: Settings, r: redis.Redis, keys: Keys,
                                                                 listener: Listener) -> None:
    control = Listener()  # an allowed camera: proves the producer opened, and reopened, its cameras
    attacks = [f"gopher://127.0.0.1:{listener.port}/9/x\r\nSET k 1\r\n",
               f"gopher://127.0.0.1:{listener.port}/_SET%20k%201%0D%0A"]
    try:
        with serve(settings.override(api_token=TOKEN)) as url:
            assert "control character ('\\r' at position" in _refusal(_post(url, "attack0", attacks[0]))
            assert "scheme 'gopher:' is not allowed" in _refusal(_post(url, "attack1", attacks[1]))
            # as an earlier version stored them: the registry keeps them as invalid configs
            for i, attack in enumerate(attacks):
                r.hset(keys.cameras, f"stored{i}", json.dumps({"url": attack, "fps": 5}))
            Registry(r, keys).put(CameraConfig(id="control", url=f"http://127.0.0.1:{control.port}/video"))
            with producers(settings.override(reconnect_max_s=0.5)) as start:
                start()
                wait_for(lambda: control.connections >= 2, 15, "the producer to open the allowed camera twice")
            shown = {c["id"]: c["error"] for c in httpx.get(f"{url}/api/cameras").json()}
    finally:
        control.close()
    assert listener.connections == 0 and listener.received == b"", "nothing reached the gopher target"
    assert "control character" in shown["stored0"] and "scheme 'gopher:' is not allowed" in shown["stored1"]


def test_ffmpeg_opens_only_its_kinds_protocols_even_if_a_url_got_past_the_checks(listener: Listener,
                                                                                  tmp_path: Path) -> None:
    gopher = f"gopher://127.0.0.1:{listener.port}/9/x\r\nSET k 1\r\n"  # the issue's own
    with pytest.raises(CaptureError):
        open_capture(Target("http", gopher), "gopher", 2000, 2000)
    with pytest.raises(CaptureError):
        video = make_video(tmp_path / "a.avi", seconds=1)
        open_capture(Target("file", f"concat:{video}|{video}"), "concat", 2000, 2000)
    assert listener.connections == 0
    # the attack is real: FFmpeg left to itself sends the Redis command
    cv2.VideoCapture(gopher, cv2.CAP_FFMPEG, [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, 2000]).release()
    wait_for(lambda: b"SET k 1" in listener.received, 10, "plain FFmpeg to send the gopher payload")


# --- attack: HTTP reaches Redis, which logs a security attack -----------------------------------------------------

@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    server = EmbeddedRedis(tmp_path / "redis", port=free_port(), persist=False).start()
    yield server
    server.stop()


def test_a_camera_pointed_at_redis_never_speaks_to_it(own_redis: EmbeddedRedis, camera_server: CameraServer,
                                                      tmp_path: Path) -> None:
    s = Settings.from_env().override(redis_url=own_redis.url, prefix="at-redis", producer_metrics_port=0,
                                     api_token=TOKEN, reconnect_max_s=0.5, state_dir=tmp_path / "state")
    r, keys, port = redis.Redis.from_url(own_redis.url), Keys(s.prefix), own_redis.port
    direct = [f"http://127.0.0.1:{port}/", f"http://localhost:{port}/", f"http://2130706433:{port}/",
              f"http://127.1:{port}/x", f"https://[::1]:{port}/", f"rtsp://0.0.0.0:{port}/x"]
    with serve(s) as url:
        for i, camera_url in enumerate(direct):
            assert "is MaskWatch's own Redis, not a camera" in _refusal(_post(url, f"d{i}", camera_url))
    registry = Registry(r, keys)
    for i, camera_url in enumerate(direct):  # as an earlier version stored them
        registry.put(CameraConfig(id=f"d{i}", url=camera_url))
    registry.put(CameraConfig(id="redirect", url=f"http://127.0.0.1:{camera_server.port}/redirect-to?{port}"))
    registry.put(CameraConfig(id="flip", url=f"http://127.0.0.1:{camera_server.port}/flip-to?{port}"))
    with producers(s) as start:
        start()
        tried = [f"d{i}" for i in range(len(direct))] + ["redirect", "flip"]
        wait_for(lambda: all(int(status(r, keys, c).get("reconnects", 0)) >= 2 for c in tried), 20,
                 "every camera to be tried twice")
    asked = [req for req in camera_server.log.requests if req.path.startswith("/flip-to")]
    assert sum(req.user_agent.startswith("Lavf") for req in asked) >= 2, "FFmpeg was sent the redirect, twice"
    log = own_redis.state_dir / "redis.log"
    assert "SECURITY ATTACK" not in log.read_text()
    assert all("is MaskWatch's own Redis" in status(r, keys, f"d{i}")["last_error"] for i in range(len(direct)))
    assert status(r, keys, "flip")["last_error"].startswith("no video from http://127.0.0.1:")
    # the check above can fail: HTTP reaching this Redis is logged
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"http://127.0.0.1:{port}/", timeout=5)
    wait_for(lambda: "SECURITY ATTACK" in log.read_text(), 10, "Redis to log HTTP as an attack")


# --- attack: last_error scans ports -------------------------------------------------------------------------------

def test_a_closed_port_and_one_that_answers_fail_alike(settings: Settings, r: redis.Redis, keys: Keys,
                                                       camera_server: CameraServer,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO")
    banner = Listener(b"SSH-2.0-OpenSSH_9.6\r\n")
    closed = free_port()
    web = f"127.0.0.1:{camera_server.port}"
    urls = {"closed-http": f"http://127.0.0.1:{closed}/x", "closed-rtsp": f"rtsp://127.0.0.1:{closed}/x",
            "ssh-http": f"http://127.0.0.1:{banner.port}/x", "ssh-rtsp": f"rtsp://127.0.0.1:{banner.port}/x",
            "auth": f"http://{web}/auth", "page": f"http://{web}/page", "rtsp-to-http": f"rtsp://{web}/page"}

    def same(text: str, cam: str) -> str:
        return text.replace(mask_url(urls[cam]), "URL")

    try:
        with serve(settings.override(api_token=TOKEN, reconnect_max_s=0.5)) as url:
            warnings = {cam: _post(url, cam, u).json()["warning"] for cam, u in urls.items()}
            with producers(settings.override(reconnect_max_s=0.5)) as start:
                start()
                wait_for(lambda: all(status(r, keys, cam).get("last_error") for cam in urls), 20,
                         "every camera to fail once")
            errors = {c["id"]: c["error"] for c in httpx.get(f"{url}/api/cameras").json()}
            page = httpx.get(f"{url}/cameras/auth").text
    finally:
        banner.close()
    said = {same(w, cam) for cam, w in warnings.items()} | {same(e, cam) for cam, e in errors.items()}
    assert said == {"no video from URL: check the address, port, path and credentials"}
    assert "no video from http://127.0.0.1:" in page
    # the producer's log keeps how each failed, for whoever runs it
    logged = caplog.text
    assert "ConnectError" in logged and "RemoteProtocolError" in logged and "HTTP 401" in logged


# --- attack: a local file is read and served ----------------------------------------------------------------------

def test_file_cameras_read_only_inside_the_media_folder(settings: Settings, r: redis.Redis, keys: Keys,
                                                        media: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    secret = outside / "secret.jpg"
    cv2.imwrite(str(secret), np.full((120, 160, 3), 200, np.uint8))  # an image anyone could drop in /tmp
    secret_video = make_video(outside / "secret.avi", seconds=1)
    make_video(media / "clip.avi", seconds=1)
    (media / "link.jpg").symlink_to(secret)
    (media / "playlist.m3u8").write_text(f"#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:1.0,\n{secret_video}\n"
                                         "#EXT-X-ENDLIST\n")
    s = settings.override(api_token=TOKEN, media_dir=media, reconnect_max_s=0.5)
    with serve(s) as url:
        assert "is outside the media folder" in _refusal(_post(url, "a", str(secret)))
        assert "is outside the media folder" in _refusal(_post(url, "b", "../outside/secret.jpg"))
        assert "is outside the media folder" in _refusal(_post(url, "c", "link.jpg"))
        assert "does not exist in the media folder" in _refusal(_post(url, "d", "nope.mp4"))
        added = _post(url, "clip", "clip.avi")  # relative: inside the media folder
        assert added.status_code == 201 and added.json()["warning"] is None
        assert "not a video OpenCV can read" in _post(url, "playlist", "playlist.m3u8").json()["warning"]
    with serve(s.model_copy(update={"media_dir": None})) as url:
        assert "file cameras are off: set MASKWATCH_MEDIA_DIR" in _refusal(_post(url, "e", str(media / "clip.avi")))
    # as an earlier version stored them: the producer checks again at every open
    Registry(r, keys).put(CameraConfig(id="secret", url=str(secret), loop=True))
    Registry(r, keys).put(CameraConfig(id="link", url=str(media / "link.jpg"), loop=True))
    Registry(r, keys).put(CameraConfig(id="clip", url="clip.avi", loop=True))
    with producers(s) as start:
        start()
        wait_for(lambda: len(frames(r, keys, "clip")) >= 3, 15, "frames of the clip in the media folder")
        wait_for(lambda: all(int(status(r, keys, c).get("reconnects", 0)) >= 2 for c in ("secret", "link", "playlist")),
                 15, "the other cameras to be refused twice")
    assert frames(r, keys, "secret") == frames(r, keys, "link") == frames(r, keys, "playlist") == []
    assert "is outside the media folder" in status(r, keys, "secret")["last_error"]
    assert "is outside the media folder" in status(r, keys, "link")["last_error"]
    # the playlist attack is real: FFmpeg left to itself plays the video outside the folder
    os.environ.pop("OPENCV_FFMPEG_CAPTURE_OPTIONS", None)
    plain = cv2.VideoCapture(str(media / "playlist.m3u8"), cv2.CAP_FFMPEG)
    assert plain.isOpened() and plain.read()[0]
    plain.release()


def test_opens_that_need_other_ffmpeg_options_take_turns(media: Path) -> None:
    """A file opened while an RTSP open hangs still opens with the file's options, not the RTSP ones."""
    silent = Listener()  # accepts and never answers: the RTSP open hangs until its timeout
    before = os.environ.get("OPENCV_FFMPEG_CAPTURE_OPTIONS")
    video = make_video(media / "clip.avi", seconds=1)
    rtsp_failed: list[BaseException] = []

    def hang() -> None:
        try:
            open_capture(Target("rtsp", f"rtsp://127.0.0.1:{silent.port}/x"), "rtsp", 3000, 3000)
        except CaptureError as exc:
            rtsp_failed.append(exc)

    thread = threading.Thread(target=hang)
    thread.start()
    try:
        wait_for(lambda: silent.connections >= 1, 10, "the RTSP open to be under way")
        cap = open_capture(Target("file", str(video)), str(video), 3000, 3000)
        assert cap.read()[0], "the file opened with the file's options"
        cap.release()
    finally:
        thread.join(15)
        silent.close()
    assert rtsp_failed and os.environ.get("OPENCV_FFMPEG_CAPTURE_OPTIONS") == before, "the user's value is back"


# --- first ten minutes: bad URLs are refused, dead ones warned about, and the card says why -----------------------

def _camera_cli(settings: Settings, *args: str, media: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MASKWATCH_REDIS_URL": settings.redis_url or "", "MASKWATCH_PREFIX": settings.prefix}
    if media is not None:
        env["MASKWATCH_MEDIA_DIR"] = str(media)
    return subprocess.run([sys.executable, "-m", "maskwatch", "camera", *args], env=env, capture_output=True,
                          text=True, timeout=120, cwd=media or ROOT)


def test_camera_add_refuses_bad_urls_and_warns_on_dead_ones(settings: Settings, r: redis.Redis, keys: Keys,
                                                            media: Path) -> None:
    registry = Registry(r, keys)
    refused = _camera_cli(settings, "add", "x", "notaurl://x", media=media)
    assert refused.returncode == 2 and "scheme 'notaurl:' is not allowed" in refused.stderr
    missing = _camera_cli(settings, "add", "x", "nope.mp4", media=media)
    assert missing.returncode == 2 and "nope.mp4 does not exist in the media folder" in missing.stderr
    outside = _camera_cli(settings, "add", "x", str(make_video(media.parent / "v.avi", 1)), media=media)
    assert outside.returncode == 2 and "is outside the media folder" in outside.stderr
    assert registry.get("x") is None

    dead = f"rtsp://admin:hunter2@127.0.0.1:{free_port()}/s"
    added = _camera_cli(settings, "add", "dead", dead, media=media)
    assert added.returncode == 0, added.stderr
    assert "warning: camera dead did not open, registered all the same: no video from rtsp://admin:***@" in added.stderr
    assert "hunter2" not in added.stdout + added.stderr and registry.get("dead") is not None
    make_video(media / "door.avi", seconds=1)
    ok = _camera_cli(settings, "add", "door", "./door.avi", media=media)  # relative to the current folder
    door = registry.get("door")
    assert ok.returncode == 0 and ok.stderr == "" and door is not None and door.url == str(media / "door.avi")

    cameras = media / "cameras.yaml"
    cameras.write_text(f"- {{name: a, url: door.avi}}\n- {{name: b, url: 'gopher://127.0.0.1:{free_port()}/_x'}}\n")
    bad_file = _camera_cli(settings, "import", str(cameras), media=media)
    assert bad_file.returncode == 2 and "scheme 'gopher:'" in bad_file.stderr and registry.get("a") is None
    cameras.write_text(f"- {{name: a, url: door.avi}}\n- {{name: b, url: 'http://127.0.0.1:{free_port()}/v'}}\n")
    imported = _camera_cli(settings, "import", str(cameras), media=media)
    assert imported.returncode == 0 and "warning: camera b did not open" in imported.stderr
    a = registry.get("a")
    assert "camera a " not in imported.stderr and a is not None and a.url == "door.avi"  # inside the media folder


def test_a_dead_camera_says_why_in_the_api_and_on_its_card(settings: Settings, r: redis.Redis, keys: Keys) -> None:
    dead = f"rtsp://admin:hunter2@127.0.0.1:{free_port()}/s"
    s = settings.override(api_token=TOKEN, reconnect_max_s=0.5)
    with serve(s) as url:
        added = _post(url, "dead", dead)
        assert added.status_code == 201
        reason = added.json()["warning"]
        assert reason == f"no video from {mask_url(dead)}: check the address, port, path and credentials"
        with producers(s) as start:
            start()
            wait_for(lambda: httpx.get(f"{url}/api/cameras/dead").json()["error"], 15, "the producer's failure")
            cam = httpx.get(f"{url}/api/cameras/dead").json()
            page = httpx.get(f"{url}/cameras/dead").text
    assert cam["error"] == reason == cam["status_detail"]["last_error"] and cam["status"] == "reconnecting"
    assert f'data-error role="status">{reason}</p>' in page and "hunter2" not in page


# --- `up --camera` with a file -------------------------------------------------------------------------------------

def test_up_makes_the_folder_of_its_video_files_the_media_folder(
        settings: Settings, media: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_video(media / "door.avi", seconds=1)
    make_video(media / "hall.avi", seconds=1)
    unset = settings.model_copy(update={"media_dir": None})
    monkeypatch.chdir(media)
    s, cams = up_cameras(["door=./door.avi", "hall=hall.avi", "lobby=rtsp://cam/1", "desk=0"], unset)
    assert s.media_dir == media.resolve()
    assert [c.url for c in cams[:2]] == [str(media / "door.avi"), str(media / "hall.avi")]
    assert check_cameras(cams[:2], s) == []
    elsewhere = make_video(tmp_path / "yard.avi", seconds=1)
    with pytest.raises(CameraError, match="videos in 2 folders"):
        up_cameras(["door=door.avi", f"yard={elsewhere}"], unset)
    s, cams = up_cameras([f"yard={elsewhere}"], settings.override(media_dir=media))
    with pytest.raises(CameraError, match="camera 'yard': field 'url': .* is outside the media folder"):
        check_cameras(cams, s)


def test_the_run_file_tells_other_commands_the_media_folder_of_the_run(tmp_path: Path, media: Path) -> None:
    run_file = RunFile(tmp_path / "state").acquire()
    try:
        run_file.publish(RunInfo(os.getpid(), "redis://127.0.0.1:1/0", None, media))
        running = read(tmp_path / "state")
        assert running is not None and running.media_dir == media
    finally:
        run_file.release()


def test_a_webcam_that_is_not_there_is_a_warning(settings: Settings) -> None:
    index = next(i for i in range(99, 0, -1) if not Path(f"/dev/video{i}").exists())
    failed = first_open(str(index), UrlPolicy.from_settings(settings))
    assert failed is not None and failed.reason == f"no webcam {index} on this machine (/dev/video{index} is missing)"
