"""Per-camera face tracking: ids that follow people, JSON checkpoints that resume exactly, and when to classify."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from bench.scenes.walking import preset_scene
from bench.tracking import Ours, main, run, score, simulate
from maskwatch.vision.detect import Detection
from maskwatch.vision.tracking import FaceTracker, LookPolicy, TrackerStateError, appearance, sharpness
from tests.conftest import DATA, need_shared

FRAME = (640, 360)
STEP_MS = 200  # 5 fps


def face(cx: float, cy: float, side: float, rng: np.random.Generator | None = None) -> Detection:
    """A detection centred on (cx, cy), jittered like YuNet's boxes when ``rng`` is given."""
    if rng is not None:
        cx, cy, side = cx + rng.normal(0, 0.05 * side), cy + rng.normal(0, 0.05 * side), side * rng.normal(1, 0.05)
    return Detection((round(cx - side / 2), round(cy - side / 2), round(side), round(side)), 0.9)


def crossing(rng: np.random.Generator) -> list[tuple[int, list[tuple[str, Detection]]]]:
    """Two people walk towards each other and pass; while their faces overlap only the nearer one is seen.

    The nearer face is larger and lower in the image (a level camera over a floor).
    """
    frames = []
    for i in range(int(4.4 * 1000 / STEP_MS)):
        t = i * STEP_MS / 1000
        a = (40 + 140 * t, 130.0, 36.0)  # about 4 face sizes a second
        b = (600 - 140 * t, 112.0, 27.0)  # farther back
        seen = [("a", face(*a, rng))]
        if abs(a[0] - b[0]) > 0.6 * a[2]:
            seen.append(("b", face(*b, rng)))
        frames.append((i * STEP_MS, seen))
    return frames


def ids_by_person(tracker: FaceTracker, frames) -> dict[str, list[int]]:
    ids: dict[str, list[int]] = {}
    for ts, seen in frames:
        faces = tracker.update(ts, [d for _, d in seen], FRAME).faces
        assert [f.box for f in faces] == [d.box for _, d in seen]  # one face per detection, in order
        for (who, _), f in zip(seen, faces):
            ids.setdefault(who, []).append(f.track_id)
    return ids


def test_two_people_crossing_keep_their_ids():
    ids = ids_by_person(FaceTracker(), crossing(np.random.default_rng(1)))
    assert len(set(ids["a"])) == 1 and len(set(ids["b"])) == 1, ids
    assert ids["a"][0] != ids["b"][0]


def test_a_person_standing_20_s_seen_only_on_keyframes_keeps_one_id():
    """Walk in at 5 fps, stop dead, then only keyframes every 2 s (one missed by the detector), then walk on."""
    rng = np.random.default_rng(2)
    tracker = FaceTracker()
    ids, ts, x = [], 0, 40.0
    for _ in range(15):  # walking in: 3 s
        ids.append(tracker.update(ts, [face(x, 150, 28, rng)], FRAME).faces[0].track_id)
        ts, x = ts + STEP_MS, x + 30
    for k in range(10):  # standing 20 s: motion gating sends a keyframe every 2 s
        ts += 2000
        faces = tracker.update(ts, [] if k == 4 else [face(x, 150, 28, rng)], FRAME).faces
        ids.extend(f.track_id for f in faces)
    for _ in range(5):  # walking on
        ts, x = ts + STEP_MS, x + 30
        ids.append(tracker.update(ts, [face(x, 150, 28, rng)], FRAME).faces[0].track_id)
    assert set(ids) == {1}


def handover(rng: np.random.Generator) -> list[tuple[int, list[tuple[str, Detection]]]]:
    """B walks in and turns away just as A, standing where B stopped being seen, turns round to the camera."""
    frames = []
    for i in range(25):
        bx = 60 + 120 * i * STEP_MS / 1000
        frames.append((i * STEP_MS, [("b", face(bx, 150, 30, rng))] if bx < 300 else [("a", face(310, 150, 30, rng))]))
    return frames


def test_a_face_of_other_colours_where_a_track_was_lost_is_someone_new():
    red, blue = np.zeros((24, 24, 3), np.uint8), np.zeros((24, 24, 3), np.uint8)
    red[..., 1:] = (60, 180)
    blue[..., :2] = (170, 90)

    def ids(colours: bool, restart_at: int | None = None) -> dict[str, set[int]]:
        tracker, out = FaceTracker(max_appearance=0.45), {}
        for k, (ts, seen) in enumerate(handover(np.random.default_rng(3))):
            if k == restart_at:  # the camera moves to another worker: the colours travel with the checkpoint
                tracker = FaceTracker.from_state(json.loads(json.dumps(tracker.to_state())), max_appearance=0.45)
            looks = [appearance(red if who == "a" else blue) for who, _ in seen] if colours else None
            for (who, _), f in zip(seen, tracker.update(ts, [d for _, d in seen], FRAME, looks).faces):
                out.setdefault(who, set()).add(f.track_id)
        return out

    assert ids(colours=False) == {"b": {1}, "a": {1}}  # by motion alone, A takes over B's track
    assert ids(colours=True) == {"b": {1}, "a": {2}}
    assert ids(colours=True, restart_at=8) == {"b": {1}, "a": {2}}


def test_a_track_ends_after_max_age_once_with_what_a_person_record_needs():
    tracker = FaceTracker(max_age_ms=3000)
    for ts in range(0, 1000, STEP_MS):
        faces, ended = tracker.update(ts, [face(300, 150, 40)], FRAME)
        faces[0].track.add_look(0.9, 40, 500.0, ts)
        assert not ended
    reported = []
    for ts in range(1000, 6000, STEP_MS):
        faces, ended = tracker.update(ts, [], FRAME)
        reported += [(ts, e) for e in ended]
    assert len(reported) == 1
    ts, person = reported[0]
    assert ts == 4000  # the first frame more than 3 s after the last sighting at 800
    assert (person.track_id, person.first_ts, person.last_ts, person.frames, person.looks) == (1, 0, 800, 5, 5)
    assert person.label == "without_mask" and person.confidence == pytest.approx(0.9)
    assert person.best_box == face(300, 150, 40).box and person.best_ts is not None
    assert tracker.tracks == {}


def test_a_face_carried_out_of_the_frame_ends_and_a_newcomer_there_is_someone_new():
    tracker = FaceTracker()
    ended_at = {}
    for i in range(8):  # walks out on the left at about 6 face sizes a second, last seen at x=20
        faces, ended = tracker.update(i * STEP_MS, [face(180 - 40 * i, 150, 30)] if i < 5 else [], FRAME)
        ended_at.update((e.track_id, i) for e in ended)
    assert ended_at == {1: 5}  # the first frame where the motion model puts the face outside
    faces, _ = tracker.update(8 * STEP_MS, [face(10, 150, 30)], FRAME)  # someone comes in where the other left
    assert faces[0].is_new and faces[0].track_id == 2


def test_checkpoint_as_json_mid_sequence_resumes_with_the_same_ids_and_outputs():
    frames = crossing(np.random.default_rng(3)) + [(5000 + k * 2000, []) for k in range(5)]

    def outputs(checkpoint_at: set[int]) -> list[object]:
        tracker = FaceTracker()
        out: list[object] = []
        for i, (ts, seen) in enumerate(frames):
            if i in checkpoint_at:  # the camera moves to another worker: only JSON text goes across
                text = json.dumps(tracker.to_state(), allow_nan=False)
                tracker = FaceTracker.from_state(json.loads(text))
            faces, ended = tracker.update(ts, [d for _, d in seen], FRAME)
            for f in faces:
                if f.track.needs_look(f.box[2], 300.0, ts):
                    f.track.add_look(0.2 + f.track_id / 10, f.box[2], 300.0, ts)
            out.append(([(f.track_id, f.is_new, f.track.vote()) for f in faces], ended))
        return out

    uninterrupted = outputs(set())
    assert outputs({11}) == uninterrupted  # mid-crossing
    assert outputs(set(range(len(frames)))) == uninterrupted  # before every frame


def test_a_state_that_cannot_be_restored_says_so():
    with pytest.raises(TrackerStateError, match="'v'"):
        FaceTracker.from_state({"v": 99, "next_id": 1, "ts": None, "tracks": []})
    with pytest.raises(TrackerStateError, match="malformed"):
        FaceTracker.from_state({"v": 1, "next_id": 1, "ts": 0, "tracks": [{"id": 1}]})


def test_needs_look_when_new_larger_sharper_or_due():
    tracker = FaceTracker(policy=LookPolicy(grow=1.3, sharper=1.5, relook_ms=2000))
    track = tracker.update(0, [face(300, 150, 30)]).faces[0].track
    assert track.needs_look(30, 400.0, 0)  # new
    track.add_look(0.2, 30, 400.0, 0)
    assert not track.needs_look(31, 420.0, 200)  # the same face a moment later
    assert track.needs_look(45, 400.0, 400)  # 1.5x larger
    assert track.needs_look(30, 650.0, 400)  # markedly sharper
    assert not track.needs_look(30, 400.0, 1999)
    assert track.needs_look(30, 400.0, 2000)  # relook_s passed


def test_vote_follows_the_best_looks():
    tracker = FaceTracker(policy=LookPolicy(keep=3))
    track = tracker.update(0, [face(300, 150, 60)]).faces[0].track
    for ts in range(0, 1000, 200):  # small, blurred looks say unmasked
        track.add_look(0.9, 16, 20.0, ts)
    assert track.vote()[0] == "without_mask"
    track.add_look(0.1, 60, 900.0, 1000, box=(270, 120, 60, 60))  # two large, sharp looks say masked
    track.add_look(0.2, 56, 800.0, 1200)
    label, confidence = track.vote()
    assert label == "with_mask" and 0.5 < confidence < 1
    assert track.best_look is not None and (track.best_look.ts_ms, track.best_look.box) == (1000, (270, 120, 60, 60))
    assert len(track.looks) == 3 and track.n_looks == 7


def test_state_stays_bounded_over_a_long_track():
    tracker = FaceTracker()
    sizes = {}
    for i in range(3000):  # 10 minutes at 5 fps, classified every frame
        ts = i * STEP_MS
        f = tracker.update(ts, [face(300 + 20 * np.sin(i / 30), 150, 40)], FRAME).faces[0]
        f.track.add_look(0.3, 40 + i % 7, 300.0 + i % 50, ts)
        if i in (300, 2999):
            sizes[i] = len(json.dumps(tracker.to_state()))
    assert set(tracker.tracks) == {1} and tracker.tracks[1].frames == 3000
    assert sizes[2999] <= sizes[300] + 64 < 2000


def test_sharpness_drops_with_blur():
    grid = np.zeros((40, 40, 3), np.uint8)
    grid[::4] = 255
    grid[:, ::4] = 255
    assert sharpness(cv2.GaussianBlur(grid, (0, 0), 1.5)) < sharpness(grid) / 4
    assert sharpness(np.zeros((0, 0, 3), np.uint8)) == 0.0


def test_on_a_busy_walking_scene_most_people_keep_one_id():
    pool = [(np.full((64, 64, 3), 90, np.uint8), "with_mask"), (np.full((64, 64, 3), 200, np.uint8), "without_mask")]
    scenes = [simulate(preset_scene("busy", seed=s, pool=pool), np.random.default_rng(s)) for s in range(2)]
    ids, _, json_ok = run(Ours, scenes)
    figures = score(scenes, ids)
    assert json_ok and figures["people_with_id"] == figures["people_detected"] >= 30
    assert figures["tracks_per_person"] <= 1.25 and figures["fragmented"] <= 0.2 * figures["people_with_id"], figures


def test_bench_tracking_prints_a_table_and_its_json_line(capsys):
    need_shared(DATA / "facemask12k" / "test")
    need_shared(DATA / "chandrikadeb7")
    main(["--busy", "1", "--rounds", "1"])
    out = capsys.readouterr().out
    figures = json.loads(out.strip().splitlines()[-1])
    ours = figures["trackers"]["maskwatch"]
    assert "id switches" in out and figures["checkpoint_same_ids"] is True
    assert ours["json_state"] is True and ours["people_with_id"] == ours["people_detected"] > 10
    assert {"id_switches", "fragmented", "tracks_per_person", "mota", "cpu_ratio"} <= set(ours)


def unsure(cx: float, cy: float, side: float) -> Detection:
    """A candidate under the face threshold, as YuNet scores a masked face in most frames of a walk."""
    d = face(cx, cy, side)
    return Detection(d.box, 0.2, unsure=True)


def test_unsure_detections_continue_a_track_but_never_start_one():
    tracker = FaceTracker()
    assert tracker.update(0, [unsure(100, 150, 40)], FRAME).faces == [] and not tracker.tracks
    first = tracker.update(200, [face(100, 150, 40)], FRAME).faces[0]
    ids = [first.track_id]
    for k in range(1, 7):  # 1.2 s of low scores, then YuNet is sure again
        x = 100 + 30 * k
        faces = tracker.update(200 + k * STEP_MS, [unsure(x, 150, 40), unsure(500, 60, 30)], FRAME).faces
        assert [f.index for f in faces] == [0]  # the lone candidate far from every track is left out
        ids.append(faces[0].track_id)
    ids.append(tracker.update(200 + 7 * STEP_MS, [face(310, 150, 40)], FRAME).faces[0].track_id)
    assert set(ids) == {first.track_id} and len(tracker.tracks) == 1
    assert tracker.tracks[first.track_id].frames == 8


def test_unsure_detections_stop_continuing_a_track_long_after_its_last_sure_one():
    """A track that only unsure boxes keep alive would live on a patch of clutter after its person left."""
    tracker = FaceTracker(unsure_ms=1000)
    tracker.update(0, [face(300, 150, 40)], FRAME)
    seen = [len(tracker.update(k * STEP_MS, [unsure(300, 150, 40)], FRAME).faces) for k in range(1, 10)]
    assert seen == [1] * 5 + [0] * 4  # 200..1000 ms continue it, later ones do not


def test_the_last_sure_sighting_survives_a_checkpoint():
    tracker = FaceTracker(unsure_ms=1000)
    tracker.update(0, [face(300, 150, 40)], FRAME)
    tracker.update(800, [unsure(300, 150, 40)], FRAME)
    restored = FaceTracker.from_state(json.loads(json.dumps(tracker.to_state())), unsure_ms=1000)
    assert len(restored.update(1000, [unsure(300, 150, 40)], FRAME).faces) == 1
    assert restored.update(1200, [unsure(300, 150, 40)], FRAME).faces == []
