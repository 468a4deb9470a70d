"""The dashboard's side-job views over real HTTP: upload -> job -> report page, failed jobs and deliveries, alerts."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bench.scenes.compose import write_video
from maskwatch import jobstore
from maskwatch.cameras import CameraConfig, Registry
from maskwatch.settings import Settings
from tests.conftest import DATA, need_shared
from tests.frames import scenes
from tests.support.dashboard import serve
from tests.test_jobs import SECRET, hook_settings, receiver, violation
from worker.jobs.dispatch import ensure_group
from worker.jobs.runner import Runner

TOKEN = "jobs-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def web(settings: Settings) -> Iterator[httpx.Client]:
    with serve(settings.override(api_token=TOKEN)) as url, httpx.Client(base_url=url, timeout=30) as client:
        yield client


def upload(web: httpx.Client, path: Path, **form: str) -> httpx.Response:
    with path.open("rb") as f:
        return web.post("/api/analyses", files={"video": (path.name, f, "video/x-msvideo")}, data=form, headers=AUTH)


def test_uploaded_video_is_analysed_and_reported(web, settings, r, keys, tmp_path, yunet_dir):
    frames = [s.image for s in scenes(need_shared(DATA / "facemask12k" / "test"), n=3, seed=5)]
    video = write_video(tmp_path / "hall.avi", frames, fps=1.0)
    Registry(r, keys).put(CameraConfig(id="hall", url="0"))
    queued = upload(web, video, camera="hall", fps="1")
    assert queued.status_code == 202, queued.text
    job_id = queued.json()["job_id"]
    assert web.get(f"/api/jobs/{job_id}").json()["status"] == "queued"
    waiting = web.get(f"/jobs/analyses/{job_id}")
    assert waiting.status_code == 200 and "is <b>queued</b>" in waiting.text
    assert web.get(f"/api/analyses/{job_id}").status_code == 404

    Runner(settings.override(event_throttle_s=0.1), r).burst()
    assert r.keys(keys.upload("*")) == [], "the upload is dropped once analysed"
    report = web.get(f"/api/analyses/{job_id}").json()
    assert report["video"] == "hall.avi" and report["camera"] == "hall" and report["frames_analysed"] == 3
    assert report["totals"]["faces"] > 0
    page = web.get(f"/jobs/analyses/{job_id}")
    assert page.status_code == 200 and "<polyline points=" in page.text and "Analysis of hall.avi" in page.text
    for v in report["violations"]:
        assert v["snapshot_url"] in page.text
        shot = web.get(v["snapshot_url"])
        assert shot.status_code == 200 and shot.content[:2] == b"\xff\xd8"
    assert [x["job_id"] for x in web.get("/api/analyses").json()] == [job_id]
    assert f"/jobs/analyses/{job_id}" in web.get("/jobs").text


def test_failed_jobs_and_deliveries_show_with_their_errors(web, settings, r, keys, tmp_path):
    broken = tmp_path / "broken.avi"
    broken.write_bytes(b"RIFF" + bytes(range(256)) * 10)  # a video's header, then no video
    job_id = upload(web, broken).json()["job_id"]
    with receiver(fail=-1) as rec:
        runner = Runner(hook_settings(settings, rec.url, tries=1), r)
        ensure_group(r, keys)
        violation(r, keys, cam="gate")
        runner.burst()
    jobs = web.get("/api/jobs").json()
    errors = {j["id"]: j["error"] for j in jobs["failed"]}
    assert errors[job_id] == "AnalysisError: video 'broken.avi' cannot be read: " \
                            "'broken.avi' is not a video OpenCV can read (corrupt, or a format or codec it lacks)"
    [delivery] = web.get("/api/deliveries/failed").json()
    assert delivery["camera"] == "gate" and delivery["attempts"] == 1 and "HTTP 500" in delivery["error"]
    assert SECRET not in str(delivery)
    page = web.get("/jobs").text
    assert "video &#39;broken.avi&#39; cannot be read" in page and "answered HTTP 500" in page
    failed_page = web.get(f"/jobs/analyses/{job_id}")
    assert "The analysis failed" in failed_page.text and "cannot be read" in failed_page.text


def test_upload_checks_token_and_options(web, tmp_path):
    video = tmp_path / "v.avi"
    video.write_bytes(b"x")
    with video.open("rb") as f:
        assert web.post("/api/analyses", files={"video": ("v.avi", f)}).status_code == 401
    bad_fps = upload(web, video, fps="0")
    assert bad_fps.status_code == 422 and bad_fps.json()["detail"][0]["loc"] == ["body", "fps"]
    bad_cam = upload(web, video, camera="no/such")
    assert bad_cam.status_code == 422 and bad_cam.json()["detail"][0]["loc"] == ["body", "camera"]
    empty = tmp_path / "empty.avi"
    empty.write_bytes(b"")
    assert "is empty" in upload(web, empty).json()["detail"][0]["msg"]
    assert web.get("/jobs/analyses/nope").status_code == 404
    assert web.get("/api/jobs/nope").status_code == 404


def test_alerts_are_listed_firing_first(web, settings, r, keys):
    for cam in ("aisle", "lobby"):
        Registry(r, keys).put(CameraConfig(id=cam, url="0"))
    firing = jobstore.AlertState("lobby", "firing", 1_700_000_000_000, 0.4, 25, 0, 1)
    r.hset(keys.alert("lobby"), mapping=firing.to_hash())
    alerts = web.get("/api/alerts").json()
    assert [(a["camera"], a["state"]) for a in alerts] == [("lobby", "firing"), ("aisle", "ok")]
    assert alerts[0]["compliance"] == 0.4 and alerts[0]["faces"] == 25
    page = web.get("/jobs").text
    assert "Compliance alerts" in page and "firing" in page and "2023-11-14 22:13:20 UTC" in page
