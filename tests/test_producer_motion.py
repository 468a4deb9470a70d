"""Motion gating in the producer, on walking-people videos encoded with OpenCV, against a real redis-server.

A still scene (a lobby with sensor noise, JPEG flicker and drifting light, nobody in it) sends
only keyframes and counts the rest ``idle``; people walking through are sent with motion regions
that hold their faces (the scene's truth), in the pixels of the downscaled frame that is sent;
with ``motion`` off every frame goes whole.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
import redis

from bench.scenes.walking import WalkingScene, walking_scene
from maskwatch.cameras import CameraConfig, Registry
from maskwatch.codec import Frame
from maskwatch.keys import Keys
from maskwatch.settings import Settings
from maskwatch.vision.jpeg import decode_jpeg, shrink
from tests.support.producer import StartProducer, frames, producers, status
from tests.support.waiting import wait_for

FPS = 5.0
SENT_WIDTH = 320  # the scenes are 640x360: regions must come in the sent frame's pixels, half the detector's


@pytest.fixture
def start_producer(settings: Settings) -> Iterator[StartProducer]:
    with producers(settings) as start:
        yield start


def _pool() -> list[tuple[np.ndarray, str]]:
    """Face crops for the scenes: textured squares (motion gating does not look at what a face is)."""
    rng = np.random.default_rng(0)
    return [(cv2.GaussianBlur(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8), (0, 0), 2), label)
            for label in ("with_mask", "without_mask") for _ in range(2)]


@pytest.fixture(scope="module")
def still(tmp_path_factory: pytest.TempPathFactory) -> tuple[WalkingScene, Path]:
    """6 s of the empty lobby: noise, JPEG flicker and light drift, nobody."""
    scene = walking_scene(seed=0, duration_s=6, fps=FPS, people_per_min=0, pool=_pool())
    path = tmp_path_factory.mktemp("still") / "still.avi"
    scene.write_video(path)
    return scene, path


@pytest.fixture(scope="module")
def walking(tmp_path_factory: pytest.TempPathFactory) -> tuple[WalkingScene, Path]:
    """8 s: two people walk in after a second, pass each other and leave; faces 37-62 px."""
    scene = walking_scene(seed=3, duration_s=8, fps=FPS, people_per_min=20, still_share=0, lead_s=1.0,
                          face_px=(32, 80), pool=_pool())
    path = tmp_path_factory.mktemp("walking") / "walking.avi"
    scene.write_video(path)
    return scene, path


def _play(start_producer: StartProducer, r: redis.Redis, keys: Keys, path: Path, **settings: object) -> dict[str, str]:
    """Play the video once on camera ``lobby``; its status once the file has ended."""
    Registry(r, keys).put(CameraConfig(id="lobby", url=str(path), fps=FPS, max_width=SENT_WIDTH))
    start_producer(**settings)
    return wait_for(lambda: (s := status(r, keys, "lobby")).get("detail") == "ended" and s, 30,
                    "the video camera to end")


def _scene_index(scene: WalkingScene, sent: list[Frame]) -> list[int]:
    """The scene frame each sent frame shows, found by its pixels near where its capture time puts it."""
    small = [shrink(scene.render(i), SENT_WIDTH).astype(np.int16) for i in range(len(scene))]
    out = []
    for f in sent:
        image = decode_jpeg(f.jpg).astype(np.int16)
        guess = round((f.ts - sent[0].ts) * FPS / 1000)
        near = range(max(0, guess - 5), min(len(scene), guess + 6))
        out.append(min(near, key=lambda i: float(np.abs(small[i] - image).mean())))
    return out


def test_a_still_scene_sends_only_keyframes_and_counts_the_rest_idle(
        start_producer: StartProducer, r: redis.Redis, keys: Keys, still: tuple[WalkingScene, Path]) -> None:
    scene, path = still
    Registry(r, keys).put(CameraConfig(id="lobby", url=str(path), fps=FPS, max_width=SENT_WIDTH))
    producer = start_producer(motion_keyframe_s=1.0)
    # Quiet is not offline: the camera reads online while its frames are counted idle.
    wait_for(lambda: (s := status(r, keys, "lobby")) and int(s.get("idle", 0)) >= 5 and s["state"] == "online", 15,
             "idle frames while the camera is online")
    st = wait_for(lambda: (s := status(r, keys, "lobby")).get("detail") == "ended" and s, 30, "the video to end")

    sent = frames(r, keys, "lobby")
    assert sent and all(f.key for f in sent), "a still scene sends keyframes only"
    gaps = [b.ts - a.ts for a, b in zip(sent, sent[1:])]
    assert min(gaps) >= 1000, f"keyframes {gaps} ms apart with motion_keyframe_s=1"
    expected = scene.duration_s / 1.0
    assert expected / 2 <= len(sent) <= expected + 1, f"{len(sent)} keyframes over {scene.duration_s} s"
    assert int(st["sent"]) == int(st["keyframes"]) == len(sent)
    assert int(st["idle"]) + len(sent) == len(scene), "every frame due is sent or counted idle"
    assert st["last_motion_ts"] == "0", "nothing moved"
    sample = producer.metrics.registry.get_sample_value
    assert sample("maskwatch_producer_frames_idle_total", {"camera": "lobby"}) == int(st["idle"])
    assert sample("maskwatch_producer_keyframes_sent_total", {"camera": "lobby"}) == len(sent)


def test_walking_people_are_sent_with_regions_that_hold_their_faces(
        start_producer: StartProducer, r: redis.Redis, keys: Keys, walking: tuple[WalkingScene, Path]) -> None:
    scene, path = walking
    st = _play(start_producer, r, keys, path)
    sent = frames(r, keys, "lobby")
    assert {(f.w, f.h) for f in sent} == {(SENT_WIDTH, 180)}, "640x360 frames sent at max_width 320"
    assert int(st["sent"]) + int(st["idle"]) == len(scene), "every frame due is sent or counted idle"
    assert int(st["idle"]) > 0, "the empty second before anyone comes in is idle"

    shown = _scene_index(scene, sent)
    assert len(set(shown)) == len(shown), f"two sent frames show the same scene frame: {shown}"
    whole = {i for i, faces in enumerate(scene.truth) if any(f.visible >= 1.0 for f in faces)}
    assert len(whole) >= 10
    assert whole <= set(shown), f"frames with a walking face in view counted idle: {sorted(whole - set(shown))}"

    checked = 0
    scale = SENT_WIDTH / scene.size[0]
    for frame, i in zip(sent, shown):
        if frame.key:
            continue
        assert frame.regions, f"frame {frame.seq} is sent for motion without a region"
        for face in (f for f in scene.truth[i] if f.visible >= 1.0):
            x, y, w, h = (v * scale for v in face.box)
            assert any(rx <= x and ry <= y and x + w <= rx + rw and y + h <= ry + rh
                       for rx, ry, rw, rh in frame.regions), \
                f"scene frame {i}: face {face.box} (x{scale} in the sent frame) outside the regions {frame.regions}"
            checked += 1
    assert checked >= 10, f"only {checked} walking faces came in motion frames"
    motion_ts = [f.ts for f in sent if not f.key]
    assert int(st["last_motion_ts"]) >= max(motion_ts)


def test_motion_off_sends_every_frame_whole(start_producer: StartProducer, r: redis.Redis, keys: Keys,
                                            still: tuple[WalkingScene, Path]) -> None:
    scene, path = still
    st = _play(start_producer, r, keys, path, motion=False)
    sent = frames(r, keys, "lobby")
    assert len(sent) == len(scene) and all(f.key and not f.regions for f in sent)
    assert (st["idle"], st["sent"], st["keyframes"]) == ("0", str(len(scene)), str(len(scene)))
