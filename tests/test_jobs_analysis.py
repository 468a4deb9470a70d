"""Offline video analysis as an RQ job: a composed video with known faces, a corrupt one, `maskwatch analyze --wait`.

Face counts are compared with what :class:`~maskwatch.vision.pipeline.Pipeline` finds on the same
decoded frames (the job must run that code, not a copy) and, loosely, with the faces pasted in;
labels are not asserted, since the classifier in use may be a plumbing-only model.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest

from maskwatch import jobstore
from maskwatch.cameras import CameraConfig, Registry
from bench.scenes.compose import Scene, write_video
from tests.conftest import DATA, need_shared
from tests.frames import scenes
from worker.jobs import analysis
from worker.jobs.runner import Runner

FPS = 2.0


@pytest.fixture(scope="module")
def known_scenes(yunet_dir: Path) -> list[Scene]:
    return scenes(need_shared(DATA / "facemask12k" / "test"), n=4, seed=11)


@pytest.fixture
def video(tmp_path: Path, known_scenes: list[Scene]) -> Path:
    return write_video(tmp_path / "corridor.avi", [s.image for s in known_scenes], fps=FPS)


def decoded_frames(path: Path) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    frames = []
    while (got := cap.read())[0]:
        frames.append(got[1])
    cap.release()
    return frames


def test_analysis_job_reports_the_faces_the_pipeline_finds(settings, r, keys, video, known_scenes):
    s = settings.override(event_throttle_s=0.1)
    runner = Runner(s, r)
    job = jobstore.enqueue_analysis(r, s.prefix, {"path": str(video), "name": video.name}, fps=FPS)
    runner.burst()

    report = jobstore.read_report(r, keys, job.id)
    assert report is not None, jobstore.jobs_overview(r, s.prefix).failed
    frames = decoded_frames(video)
    expected = runner.ctx.pipeline().analyze(frames)  # the same detector and classifier on the same frames
    n_faces = sum(len(f) for f in expected)
    n_without = sum(f.label == "without_mask" for faces in expected for f in faces)
    truth = sum(len(sc.faces) for sc in known_scenes)
    assert report["frames_analysed"] == len(frames) == len(known_scenes)
    assert report["totals"]["faces"] == n_faces and report["totals"]["without_mask"] == n_without
    assert 0.75 * truth <= n_faces <= truth, f"found {n_faces} of {truth} pasted faces"
    assert report["totals"]["frames"] == len(frames) and report["video"] == "corridor.avi"
    # compliance over time adds up to the totals
    assert report["step_s"] == 1 and [p["t_s"] for p in report["series"]] == [0, 1]
    assert sum(p["faces"] for p in report["series"]) == n_faces
    assert sum(p["frames"] for p in report["series"]) == len(frames)
    # one violation per throttle window (0.1 s < the frame spacing: every frame with an unmasked face)
    assert len(report["violations"]) == sum(any(f.label == "without_mask" for f in faces) for faces in expected)
    for v in report["violations"]:
        assert r.get(keys.snap(v["snapshot"]))[:2] == b"\xff\xd8"
        assert v["snapshot_url"] == f"/api/events/{v['snapshot']}/snapshot.jpg"
    # listed, with progress complete and the totals as the job's JSON result
    assert [x["job_id"] for x in jobstore.list_reports(r, keys)] == [job.id]
    job.refresh()
    assert job.meta["progress"] == {"frames": 4, "total": 4, "fraction": 1.0}
    assert job.return_value()["totals"] == report["totals"]


def test_analysis_uses_the_cameras_region_of_interest(settings, r, keys, video, known_scenes):
    Registry(r, keys).put(CameraConfig(id="lobby", url="0", roi=(0.0, 0.0, 0.01, 0.01)))  # a corner no face is in
    runner = Runner(settings, r)
    job = jobstore.enqueue_analysis(r, settings.prefix, {"path": str(video), "name": video.name}, camera="lobby", fps=FPS)
    runner.burst()
    report = jobstore.read_report(r, keys, job.id)
    assert report["camera"] == "lobby" and report["totals"]["faces"] == 0 and report["totals"]["frames"] == 4


def test_a_corrupt_video_fails_the_job_with_a_clear_error(settings, r, keys, tmp_path):
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(np.random.default_rng(0).integers(0, 256, 50_000, dtype=np.uint8).tobytes())
    job = jobstore.enqueue_analysis(r, settings.prefix, {"path": str(broken), "name": broken.name})
    missing = jobstore.enqueue_analysis(r, settings.prefix, {"path": str(tmp_path / "gone.mp4")})
    Runner(settings, r).burst()
    failed = {j.id: j for j in jobstore.jobs_overview(r, settings.prefix).failed}
    assert failed[job.id].error.startswith("AnalysisError: video 'broken.mp4' cannot be read")
    assert "gone.mp4" in failed[missing.id].error and "not found" in failed[missing.id].error
    assert jobstore.read_report(r, keys, job.id) is None


def test_analyze_command_waits_and_prints_the_report(settings, r, keys, video, capsys):
    got: dict[str, int] = {}
    cli = threading.Thread(target=lambda: got.update(rc=analysis.main(settings, video, camera=None, fps=FPS, wait=True)))
    cli.start()
    runner = Runner(settings, r)
    while not jobstore.queue(r, settings.prefix, jobstore.ANALYSIS).count and cli.is_alive():
        cli.join(0.05)
    runner.burst()  # RQ's worker belongs in the main thread (job timeouts use SIGALRM)
    cli.join(30)
    assert got == {"rc": 0}
    report = json.loads(capsys.readouterr().out)
    assert report["video"] == "corridor.avi" and report["frames_analysed"] == 4


def test_analyze_command_rejects_bad_input(settings, tmp_path):
    with pytest.raises(FileNotFoundError, match="no such video file"):
        analysis.main(settings, tmp_path / "nope.mp4")
    (tmp_path / "v.mp4").write_bytes(b"x")
    with pytest.raises(jobstore.JobInputError, match="fps must be in"):
        analysis.main(settings, tmp_path / "v.mp4", fps=0)
    with pytest.raises(jobstore.JobInputError, match="camera id"):
        analysis.main(settings, tmp_path / "v.mp4", camera="no such/camera")
