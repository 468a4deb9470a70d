"""Secrets in camera URLs never reach the API, the pages, the CLI or the logs, in any of the forms URLs carry them."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import redis

from maskwatch.cameras import CameraConfig, Registry
from maskwatch.cli.embedded_redis import free_port
from maskwatch.keys import Keys
from maskwatch.redaction import mask_text, mask_url
from maskwatch.service import setup_logging
from maskwatch.settings import Settings
from tests.support.dashboard import serve, set_status
from tests.support.producer import producers, status
from tests.support.waiting import wait_for

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "redaction-token"


@pytest.mark.parametrize(("url", "shown"), [
    ("rtsp://admin:hunter2@10.0.0.5:554/stream1", "rtsp://admin:***@10.0.0.5:554/stream1"),
    ("rtsp://admin:p@ss@cam/1", "rtsp://admin:***@cam/1"),  # a password holding '@'
    ("rtsp://admin:pa/ss@cam/1", "rtsp://admin:***@cam/1"),  # ... and '/'
    ("rtsp://admin:p@s/s@cam:554/1?x=1", "rtsp://admin:***@cam:554/1?x=1"),
    ("https://ghp_Tok3n@git.example/x", "https://***@git.example/x"),  # a bare token as userinfo
    ("redis://:pw@redis:6379/0", "redis://:***@redis:6379/0"),
    ("http://cam/snap.jpg?user=op&password=pw&pass=a&pwd=b&passwd=c",
     "http://cam/snap.jpg?user=op&password=***&pass=***&pwd=***&passwd=***"),
    ("http://cam/s?token=a&access_token=b&api_key=c&apikey=d&key=e&sig=f&signature=g&secret=h&auth=i",
     "http://cam/s?token=***&access_token=***&api_key=***&apikey=***&key=***&sig=***&signature=***&secret=***"
     "&auth=***"),
    ("https://b.example/o?X-Amz-Credential=k&X-Amz-Signature=s&Access%5FToken=t;jwt=u",
     "https://b.example/o?X-Amz-Credential=***&X-Amz-Signature=***&Access%5FToken=***;jwt=***"),
    ("http://cam/v#access_token=x", "http://cam/v#access_token=***"),
    ("http://cam/x?next=https://u:pw@other/y", "http://cam/x?next=https://u:***@other/y"),
    # nothing secret: shown as given
    ("rtsp://cam.local/stream?channel=1", "rtsp://cam.local/stream?channel=1"),
    ("http://cam/snap@2x.jpg", "http://cam/snap@2x.jpg"),
    ("/videos/lobby.mp4", "/videos/lobby.mp4"),
    ("0", "0"),
])
def test_urls_are_masked_by_parsing_them(url: str, shown: str) -> None:
    assert mask_url(url) == shown


def test_texts_lose_the_secrets_of_every_url_in_them_and_of_the_urls_they_are_about() -> None:
    url = "rtsp://admin:p@ss-w0rd@cam.local/stream"
    said = f"cannot open {url}: 401 for p@ss-w0rd; also https://TOKEN123@h/x and http://h/?api_key=K3Y, done"
    assert mask_text(said, url) == ("cannot open rtsp://admin:***@cam.local/stream: 401 for ***; "
                                    "also https://***@h/x and http://h/?api_key=*** done")
    assert mask_text("lobby=https://a/h,gate=https://u:p4ss@b/h") == "lobby=https://a/h,gate=https://u:***@b/h"
    hooks = Settings(webhook_url="lobby=https://a/h?token=abc,gate=https://u:p4ss@b/h", webhook_secret="x")
    shown = hooks.safe_dict()["webhook_url"]
    assert "lobby=https://a/h?token=***" in shown and "https://u:***@b/h" in shown
    assert "abc" not in shown and "p4ss" not in shown


def test_every_log_line_is_masked_whoever_wrote_it(capsys: pytest.CaptureFixture[str]) -> None:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        setup_logging("test")
        logging.getLogger("some.library").warning("GET %s failed", "http://cam/snap.jpg?access_token=L1brary")
    finally:
        root.handlers[:], root.level = handlers, level
    err = capsys.readouterr().err
    assert "access_token=***" in err and "L1brary" not in err


SECRETS = ("p@ss-Sekr1tA", "pa/ss-Sekr1tB", "Sekr1tC", "Sekr1tD", "Sekr1tE", "Sekr1tTOKENF", "Sekr1tG")


def _leaking_urls(port: int) -> dict[str, str]:
    """Every form that leaked, each at a closed port on this machine, so its camera fails and says so."""
    at = f"127.0.0.1:{port}"
    return {"at-sign": f"rtsp://admin:{SECRETS[0]}@{at}/s", "slash": f"rtsp://admin:{SECRETS[1]}@{at}/s",
            "query": f"http://{at}/snap.jpg?access_token={SECRETS[2]}&api_key={SECRETS[3]}&sig={SECRETS[4]}",
            "token": f"https://{SECRETS[5]}@{at}/video", "http-password": f"http://admin:{SECRETS[6]}@{at}/video"}


def test_no_form_of_secret_reaches_the_api_pages_cli_or_logs(settings: Settings, r: redis.Redis, keys: Keys,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    urls = _leaking_urls(free_port())
    s = settings.override(api_token=TOKEN, reconnect_max_s=0.5)
    registry = Registry(r, keys)
    shown = []
    with serve(s) as base:
        with httpx.Client(base_url=base, timeout=30, headers={"Authorization": f"Bearer {TOKEN}"}) as api:
            for cam, url in urls.items():
                added = api.post("/api/cameras", json={"id": cam, "url": url})
                if added.status_code == 422:  # a password with an unescaped '/' is refused, without echoing it
                    assert cam == "slash" and "%2F" in added.text
                    registry.put(CameraConfig(id=cam, url=url))  # as an earlier version stored it
                shown.append(added.text)
            with producers(s) as start:
                start()
                wait_for(lambda: all(int(status(r, keys, c).get("reconnects", 0)) >= 2 for c in urls), 20,
                         "every camera to fail twice")
            # a status as an older producer wrote it: the raw URL in the error
            registry.put(CameraConfig(id="old", url=urls["query"]))
            set_status(r, keys, "old", "reconnecting", last_error=f"cannot open {urls['at-sign']}")
            for path in ("/api/cameras", "/api/overview", "/api/system", "/", "/system",
                         *(f"/api/cameras/{c}" for c in [*urls, "old"]), *(f"/cameras/{c}" for c in [*urls, "old"])):
                page = api.get(path)
                assert page.status_code == 200, path
                shown.append(page.text)
    env = {**os.environ, "MASKWATCH_REDIS_URL": s.redis_url or "", "MASKWATCH_PREFIX": s.prefix}
    for args in (["list"], ["list", "--json"]):
        listed = subprocess.run([sys.executable, "-m", "maskwatch", "camera", *args], env=env, capture_output=True,
                                text=True, timeout=60, cwd=ROOT)
        assert listed.returncode == 0, listed.stderr
        shown.append(listed.stdout + listed.stderr)
    everything = "\n".join(shown) + caplog.text + repr([status(r, keys, c) for c in urls])
    assert "admin:***@127.0.0.1" in everything and "access_token=***" in everything and "https://***@" in everything
    leaked = [secret for secret in SECRETS if secret in everything]
    assert not leaked and "Sekr1t" not in everything


def test_producer_logs_in_a_process_are_masked(settings: Settings, r: redis.Redis, keys: Keys, tmp_path: Path) -> None:
    """The producer as a process: its log file, formatted by the service's logging, holds no secret."""
    urls = _leaking_urls(free_port())
    for cam, url in urls.items():
        Registry(r, keys).put(CameraConfig(id=cam, url=url))
    log = tmp_path / "producer.log"
    env = {**os.environ, "MASKWATCH_REDIS_URL": settings.redis_url or "", "MASKWATCH_PREFIX": settings.prefix,
           "MASKWATCH_PRODUCER_METRICS_PORT": "0", "MASKWATCH_RECONNECT_MAX_S": "0.5"}
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "maskwatch", "producer"], env=env, stdout=out, stderr=out,
                                cwd=ROOT)
        try:
            wait_for(lambda: all(int(status(r, keys, c).get("reconnects", 0)) >= 2 for c in urls), 30,
                     lambda: "every camera to fail twice; log: " + log.read_text(errors="replace")[-2000:])
        finally:
            proc.terminate()
            proc.wait(15)
    text = log.read_text(errors="replace")
    assert "admin:***@127.0.0.1" in text and "Sekr1t" not in text
