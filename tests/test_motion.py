"""Motion gating: still scenes stay quiet through noise, JPEG and drift; movers are flagged and boxed; the gate.

Scenes are the walking-people generator's (bench/scenes/walking.py) with drawn stand-ins for face
crops, so only the benchmark's smoke run needs the shared data and clips; most are 320x180 to keep
the suite fast. The figures that choose the method are bench/motion.py's.
"""

from __future__ import annotations

import doctest
import json
import subprocess
import sys

import numpy as np
import pytest

from bench.scenes.walking import WalkingScene, visible_faces, walking_scene
from maskwatch.vision import motion
from maskwatch.vision.motion import (
    MAX_REGIONS,
    METHODS,
    GateDecision,
    Motion,
    MotionDetector,
    MotionGate,
    decode_regions,
    encode_regions,
)
from tests.conftest import DATA, ROOT, SHARED, need_shared

SIZE = (320, 180)
FPS = 5.0


def pool() -> list[tuple[np.ndarray, str]]:
    """Textured stand-ins for face crops, both labels."""
    rng = np.random.default_rng(7)
    return [(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8), label) for label in ("with_mask", "without_mask") * 3]


def scene(**kwargs: object) -> WalkingScene:
    return walking_scene(size=SIZE, fps=FPS, pool=pool(), face_px=(8, 40), **kwargs)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def still_frames() -> list[np.ndarray]:
    """A minute of an empty lobby from a poor camera: strong noise, JPEG at 35-60, deep lighting drift."""
    return [f.image for f in scene(seed=11, duration_s=60.0, people_per_min=0.0, noise=8.0, jpeg_quality=(35, 60),
                                   light_drift=0.4).frames()]


def moving_square(n: int, side: int = 24) -> list[tuple[np.ndarray, tuple[int, int, int, int]]]:
    """A textured square crossing a noisy, JPEG-compressed still scene, with its box in each frame."""
    frames = scene(seed=12, duration_s=n / FPS, people_per_min=0.0).frames()
    rng = np.random.default_rng(1)
    texture = rng.integers(0, 256, (side, side, 3), dtype=np.uint8)
    out = []
    for i, _, image, _ in frames:
        x, y = 20 + 12 * i, 60 + 3 * i
        image = image.copy()
        image[y:y + side, x:x + side] = texture
        out.append((image, (x, y, side, side)))
    return out


def feed(detector: MotionDetector, frames: list[np.ndarray]) -> list[Motion]:
    return [detector.update(f) for f in frames]


@pytest.mark.parametrize("method", METHODS)
def test_a_still_scene_through_noise_jpeg_and_drift_shows_no_motion(still_frames, method):
    motions = feed(MotionDetector(method=method), still_frames)
    flagged = [i for i, m in enumerate(motions) if m.moving]
    assert flagged == [], f"{method} saw motion in an empty scene at frames {flagged}"
    assert all(m.regions == [] and m.fraction == 0.0 for m in motions)


def test_a_moving_square_is_flagged_in_every_frame_and_boxed():
    frames = moving_square(20)
    detector = MotionDetector()
    assert detector.update(frames[0][0]).moving is False  # the first frame starts the background
    for i, (image, (x, y, w, h)) in enumerate(frames[1:], 1):
        m = detector.update(image)
        assert m.moving, f"frame {i}: the square moved but no motion was seen"
        assert any(rx <= x and ry <= y and x + w <= rx + rw and y + h <= ry + rh for rx, ry, rw, rh in m.regions), \
            f"frame {i}: square {(x, y, w, h)} is not inside any region of {m.regions}"
        assert 0 < m.fraction < 0.2  # the square, not the frame


def test_walking_people_are_flagged_and_their_faces_lie_in_regions():
    # At the producer's usual 640x360 with faces of 16-80 px: bench.motion measures region recall at this size.
    s = walking_scene(seed=13, duration_s=40.0, people_per_min=20.0, still_share=0.0, fps=FPS, pool=pool())
    size = s.size
    detector = MotionDetector()
    walking_frames = inside = faces_seen = 0
    for i, _, image, truth in s.frames():
        m = detector.update(image)
        assert decode_regions(encode_regions(m.regions), *size) == m.regions  # always fit for the stream entry
        faces = visible_faces(truth)
        if i == 0 or not faces:
            continue
        walking_frames += 1
        assert m.moving, f"frame {i}: people walk in view but no motion was seen"
        for f in faces:
            x, y, w, h = f.box
            faces_seen += 1
            inside += any(rx <= x and ry <= y and x + w <= rx + rw and y + h <= ry + rh for rx, ry, rw, rh in m.regions)
    assert walking_frames > 50
    assert inside >= 0.95 * faces_seen, f"only {inside} of {faces_seen} walking faces lay wholly inside a region"
    assert len(s.empty_frames()) > 0  # the scene has quiet stretches too: the test is not all motion


@pytest.mark.parametrize("uneven", [False, True], ids=["even", "uneven"])
def test_a_light_switch_settles_within_two_frames(uneven):
    """Switched evenly, nothing moves; unevenly, a burst of at most two frames, then quiet."""
    at, settle = 25, 2
    if uneven:  # half the light on the left, 80% on the right: no single gain undoes it
        dim = np.linspace(0.5, 0.8, SIZE[0], dtype=np.float32)[None, :, None]
        frames = [f.image if f[0] < at else np.clip(f.image * dim, 0, 255).astype(np.uint8)
                  for f in scene(seed=14, duration_s=12.0, people_per_min=0.0).frames()]
    else:
        frames = [f.image for f in scene(seed=14, duration_s=12.0, people_per_min=0.0, light_switch_s=at / FPS,
                                         switch_gain=0.5).frames()]
    flagged = [i for i, m in enumerate(feed(MotionDetector(), frames)) if m.moving]
    if uneven:
        assert all(at <= i < at + settle for i in flagged), f"frames flagged: {flagged} (switch at {at})"
    else:  # the brightness match takes it out entirely
        assert flagged == []


def test_a_changed_resolution_starts_a_new_background(still_frames):
    detector = MotionDetector()
    feed(detector, still_frames[:5])
    bigger = np.repeat(np.repeat(still_frames[5], 2, axis=0), 2, axis=1)
    assert detector.update(bigger) == Motion(False, [], 0.0)
    assert not detector.update(np.repeat(np.repeat(still_frames[6], 2, axis=0), 2, axis=1)).moving


@pytest.mark.parametrize("kwargs, named", [({"method": "optical-flow"}, "optical-flow"), ({"width": 4}, "width=4"),
                                           ({"history": 1}, "history=1"), ({"scene_change": 0}, "scene_change=0")])
def test_bad_settings_say_what_is_wrong(kwargs, named):
    with pytest.raises(ValueError, match=named):
        MotionDetector(**kwargs)


def test_a_grey_frame_is_refused_with_its_shape():
    with pytest.raises(ValueError, match=r"\(180, 320\)"):
        MotionDetector().update(np.zeros((180, 320), np.uint8))


def test_a_still_scene_sends_only_a_keyframe_every_keyframe_s(still_frames):
    detector, gate = MotionDetector(), MotionGate(keyframe_s=2.0)
    start = 1_700_000_000_000
    decisions = [gate.decide(start + round(i * 1000 / FPS), detector.update(f)) for i, f in enumerate(still_frames)]
    keyframes = [i for i, d in enumerate(decisions) if d is GateDecision.KEYFRAME]
    assert keyframes == list(range(0, len(still_frames), 10))  # 2 s at 5 fps
    assert {d for i, d in enumerate(decisions) if i not in keyframes} == {GateDecision.IDLE}


def test_motion_is_sent_between_keyframes_and_keyframes_still_come_on_time():
    detector, gate = MotionDetector(), MotionGate(keyframe_s=2.0)
    frames = [image for image, _ in moving_square(21)]
    decisions = [gate.decide(round(i * 1000 / FPS), detector.update(image)) for i, image in enumerate(frames)]
    assert [i for i, d in enumerate(decisions) if d is GateDecision.KEYFRAME] == [0, 10, 20]
    assert all(d is GateDecision.SEND for i, d in enumerate(decisions) if i not in (0, 10, 20))


def test_gate_keyframes_follow_capture_time_and_restart_when_it_goes_back():
    gate, still = MotionGate(keyframe_s=1.5), Motion(False, [], 0.0)
    times = [10_000, 11_000, 11_499, 11_500, 12_000, 5_000, 5_100, 6_500]
    assert [gate.decide(t, still).value for t in times] == \
        ["keyframe", "idle", "idle", "keyframe", "idle", "keyframe", "idle", "keyframe"]
    with pytest.raises(ValueError, match="keyframe_s"):
        MotionGate(keyframe_s=0)


def test_regions_round_trip():
    regions = [(0, 0, 640, 360), (10, 20, 30, 40), (639, 359, 1, 1)]
    text = encode_regions(regions)
    assert text == "0,0,640,360;10,20,30,40;639,359,1,1"
    assert decode_regions(text, 640, 360) == regions
    assert encode_regions([]) == "" and decode_regions("") == []


@pytest.mark.parametrize("text, problem", [
    ("1,2,3", "region 1 '1,2,3' has 3 fields"),
    ("1,2,3,4;", "region 2 '' has 1 fields"),
    ("1,2,3,4;5,6,x,8", "region 2 '5,6,x,8' is not four non-negative integers"),
    ("-1,0,5,5", "region 1 '-1,0,5,5' is not four non-negative integers"),
    (" 1,2,3,4", "is not four non-negative integers"),
    ("1.5,2,3,4", "is not four non-negative integers"),
    ("0,0,0,5", "region 1 '0,0,0,5' is empty"),
    ("600,0,41,10", "region 1 '600,0,41,10' reaches past the 640x360 frame"),
    ("0,300,10,61", "reaches past the 640x360 frame"),
    (";".join(["0,0,1,1"] * (MAX_REGIONS + 1)), f"at most {MAX_REGIONS}"),
])
def test_malformed_regions_raise_naming_the_problem(text, problem):
    with pytest.raises(ValueError, match=problem.replace("(", r"\(").replace(".", r"\.")):
        decode_regions(text, 640, 360)


def test_many_regions_collapse_to_their_bounding_box():
    scattered = [(i * 20, (i % 3) * 20, 5, 5) for i in range(MAX_REGIONS + 1)]
    assert motion.merge_regions(scattered) == [(0, 0, 20 * MAX_REGIONS + 5, 45)]
    assert motion.merge_regions(scattered[:3]) == scattered[:3]


def test_docstring_examples_run():
    result = doctest.testmod(motion)
    assert result.failed == 0 and result.attempted > 0


def test_bench_motion_reports_every_method(tmp_path):
    need_shared(DATA / "facemask12k" / "test")
    need_shared(SHARED / "videos")  # the clips it plays after its scenes
    proc = subprocess.run([sys.executable, "-m", "bench.motion", "--seconds", "6", "--rounds", "1"], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    figures = json.loads(proc.stdout.strip().splitlines()[-1])
    assert figures["default"] == MotionDetector().method == "mog2"
    methods = figures["methods"]
    assert {"mog2", "knn", "average"} <= set(methods)
    assert min(f["cpu"] for f in methods.values()) == 1.0  # ratios to the cheapest of the same run
    for f in methods.values():
        assert all(0 <= f[k] <= 1 for k in ("walker", "false", "region_recall", "sent_quiet") if f[k] is not None)
        assert f["clips"] is not None and 0 <= f["clips"] <= 1, "the clips were played"
