"""Frames left by a failed run are not analysed at the next start: dropped, with a count in the log."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import pytest
import redis

from maskwatch.codec import Frame, decode_result, encode_frame
from maskwatch.keys import Keys
from maskwatch.settings import Settings
from maskwatch.streams import ensure_group, group_info
from maskwatch.vision.jpeg import encode_jpeg
from maskwatch.vision.pipeline import Pipeline
from tests.conftest import DATA, need_shared
from tests.frames import register, scenes, totals
from tests.support.waiting import wait_for
from worker.service import Worker


@pytest.fixture(scope="module")
def pipeline(yunet_dir: Path) -> Pipeline:
    return Pipeline.from_settings(Settings.from_env().override(model_dir=yunet_dir))


def push(r: redis.Redis, keys: Keys, cam: str, seqs: range, image, entry_id: str = "*") -> None:
    """XADD frames of ``cam`` numbered ``seqs``; ``entry_id`` "{ms}-*" queues them as if at that time."""
    h, w = image.shape[:2]
    for seq in seqs:
        f = Frame(cam=cam, seq=seq, ts=int(time.time() * 1000), w=w, h=h, jpg=encode_jpeg(image, 85))
        r.xadd(keys.frames(cam), encode_frame(f), id=entry_id)


def test_frames_left_by_a_failed_run_are_dropped_at_the_next_start(settings: Settings, r: redis.Redis, keys: Keys,
                                                                   pipeline: Pipeline, caplog) -> None:
    image = scenes(need_shared(DATA / "facemask12k" / "test"), n=1, seed=4, faces=2)[0].image
    register(r, keys, "lobby")
    ensure_group(r, keys, "lobby")
    # The failed run, five minutes ago: 5 frames queued; its worker read 2 of them and died before committing.
    five_minutes_ago = int(time.time() * 1000) - 300_000
    push(r, keys, "lobby", range(5), image, entry_id=f"{five_minutes_ago}-*")
    r.xreadgroup(keys.group, "dead-worker", {keys.frames("lobby"): ">"}, count=2)
    # This run: 3 new frames.
    push(r, keys, "lobby", range(100, 103), image)

    worker = Worker(settings.override(tracking=False, frame_max_age_s=60), r, pipeline, "w1")
    thread = threading.Thread(target=worker.run, daemon=True)
    with caplog.at_level(logging.INFO, logger="worker"):
        thread.start()
        try:
            wait_for(lambda: totals(r, keys, "lobby").get("frames") == 3, 60, "this run's frames counted")
        finally:
            worker.stop()
            thread.join(15)
    analysed = sorted(decode_result(f).seq for _, f in r.xrange(keys.results))
    assert analysed == [100, 101, 102], "the old frames were not analysed"
    assert totals(r, keys, "lobby")["frames"] == 3
    info = group_info(r, keys, "lobby")
    assert info is not None and info.pending == 0 and info.lag == 0, "nothing left behind, and the lag still known"
    dropped = [rec.getMessage() for rec in caplog.records if "stale frame" in rec.getMessage()]
    assert dropped == ["dropped 5 stale frame(s) queued over 60 s ago (3 never read, 2 read but never committed): "
                       "analysing them now would count the past as live"], dropped


def test_recent_frames_of_a_camera_taken_over_are_still_analysed(settings: Settings, r: redis.Redis, keys: Keys,
                                                                 pipeline: Pipeline) -> None:
    """A worker that died a few seconds ago: its frames are not stale, the next worker analyses them."""
    image = scenes(need_shared(DATA / "facemask12k" / "test"), n=1, seed=4, faces=2)[0].image
    register(r, keys, "gate")
    ensure_group(r, keys, "gate")
    push(r, keys, "gate", range(4), image)
    r.xreadgroup(keys.group, "dead-worker", {keys.frames("gate"): ">"}, count=2)
    worker = Worker(settings.override(tracking=False, frame_max_age_s=60), r, pipeline, "w2")
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        wait_for(lambda: totals(r, keys, "gate").get("frames") == 4, 60, "every frame counted")
    finally:
        worker.stop()
        thread.join(15)
