"""Walking-people scenes: deterministic, with truth that sits on the people drawn, and videos that decode."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from bench.scenes.walking import FaceTruth, WalkingScene, face_pool, main, preset_scene, walking_scene
from tests.conftest import DATA, need_shared


@pytest.fixture(scope="module")
def pool() -> list[tuple[np.ndarray, str]]:
    folders = [need_shared(DATA / "facemask12k" / "test"), need_shared(DATA / "chandrikadeb7")]
    return face_pool(folders, per_class=12)


@pytest.fixture(scope="module")
def busy(pool: list[tuple[np.ndarray, str]]) -> WalkingScene:
    return preset_scene("busy", seed=5, duration_s=40, pool=pool)


def changed(scene: WalkingScene, index: int) -> np.ndarray:
    """Pixels where frame ``index`` differs from the same frame with nobody in it."""
    grey = [cv2.cvtColor(scene.render(index, people=p), cv2.COLOR_BGR2GRAY).astype(np.int16) for p in (True, False)]
    return np.abs(grey[0] - grey[1]) > 12


def test_a_seed_gives_the_same_scene_and_another_seed_another(pool: list[tuple[np.ndarray, str]]) -> None:
    a, b = (walking_scene(seed=7, duration_s=20, people_per_min=12, pool=pool) for _ in range(2))
    other = walking_scene(seed=8, duration_s=20, people_per_min=12, pool=pool)
    assert a.truth == b.truth and a.people == b.people
    assert any(a.truth[i] for i in range(len(a)))
    for (i, ts, img, truth), (j, ts2, img2, truth2) in zip(a.frames(), b.frames()):
        assert (i, ts, truth) == (j, ts2, truth2)
        assert np.array_equal(img, img2)
    assert other.truth != a.truth


def test_truth_boxes_sit_on_the_pasted_faces(pool: list[tuple[np.ndarray, str]], busy: WalkingScene) -> None:
    still = preset_scene("still_person", seed=1, pool=pool)
    checked = 0
    for i, faces in enumerate(still.truth):
        if not faces or faces[0].visible < 1:
            continue
        x, y, w, h = faces[0].box
        c = changed(still, i)
        assert c[y:y + h, x:x + w].mean() > 0.6, f"frame {i}: the face box {faces[0].box} is mostly background"
        # beside the face and above the hair there is only background
        assert c[max(0, y - h):y - h // 3, x + w // 4:x + 3 * w // 4].mean() < 0.1
        assert c[y:y + h // 3, x + w + w // 3:x + w + 4 * w // 5].mean() < 0.1
        checked += 1
    assert checked > 100
    shares = [changed(busy, i)[y:y + h, x:x + w].mean() for i, faces in enumerate(busy.truth) if i % 4 == 0
              for x, y, w, h in (f.box for f in faces if f.visible >= 0.9)]
    assert len(shares) > 50 and np.percentile(shares, 5) > 0.5


def test_a_still_person_stands_in_one_place_for_20_seconds(pool: list[tuple[np.ndarray, str]]) -> None:
    scene = preset_scene("still_person", seed=2, pool=pool)
    [person] = scene.people
    assert person.stood_still and person.still_frames is not None
    first, last = person.still_frames
    assert (last - first) / scene.fps >= 20
    boxes = {f.box for i in range(first, last + 1) for f in scene.truth[i]}
    assert len(boxes) == 1, f"the standing person moved: boxes {sorted(boxes)}"
    assert all(f.visible == 1 for i in range(first, last + 1) for f in scene.truth[i])
    # they walked in before and walk out after
    assert scene.truth[person.first_frame][0].box != scene.truth[first][0].box != scene.truth[person.last_frame][0].box


def test_empty_stretches_have_no_truth_and_nobody_in_them(pool: list[tuple[np.ndarray, str]]) -> None:
    scene = preset_scene("quiet", seed=3, duration_s=90, pool=pool)
    empty = scene.empty_frames()
    assert scene.people and len(empty) > 0.5 * len(scene)
    assert set(range(int(3 * scene.fps))) <= set(empty)  # the lead-in
    for i in empty[::5]:
        assert scene.truth[i] == []
        assert not changed(scene, i).any()
    seen = [i for i, faces in enumerate(scene.truth) if any(f.visible > 0.5 for f in faces)]
    assert seen and all(changed(scene, i).any() for i in seen[::5])


def test_the_light_drifts_slowly_flickers_and_can_be_switched(pool: list[tuple[np.ndarray, str]]) -> None:
    scene = walking_scene(seed=9, duration_s=60, people_per_min=0, light_switch_s=30, pool=pool)
    grey = [cv2.cvtColor(img, cv2.COLOR_BGR2GRAY).astype(np.float32) for _, _, img, _ in scene.frames()]
    means = np.array([g.mean() for g in grey])
    switch = int(30 * scene.fps)
    assert means[switch] < 0.75 * means[switch - 1]
    steps = np.abs(np.diff(means))
    assert np.delete(steps, switch - 1).max() < 1.5  # drift is slow...
    assert np.ptp(means[:switch]) > 3 or np.ptp(means[switch:]) > 3  # ...but it drifts
    assert all(np.abs(a - b).mean() > 0.3 for a, b in zip(grey, grey[1:]))  # no two frames alike: noise and JPEG


def test_everyone_enters_from_a_side_and_leaves_by_the_other(busy: WalkingScene) -> None:
    w = busy.size[0]
    assert len(busy.people) >= 10
    for p in busy.people:
        assert 0 < p.enter_frame <= p.first_frame < p.last_frame <= p.leave_frame < len(busy) - 1
        assert not any(f.person_id == p.id for f in busy.truth[p.enter_frame - 1] + busy.truth[p.leave_frame + 1])
        first, last = (next(f for f in busy.truth[i] if f.person_id == p.id).box for i in (p.first_frame, p.last_frame))
        centres = first[0] + first[2] / 2, last[0] + last[2] / 2
        assert min(centres) < w / 3 and max(centres) > 2 * w / 3, f"person {p.id} went from {first} to {last}"


def test_several_people_pass_each_other_and_the_nearer_hides_the_farther(busy: WalkingScene) -> None:
    assert max(len(t) for t in busy.truth) >= 3
    w, h = busy.size
    hidden = [(f, t) for t in busy.truth for f in t
              if 0 < f.visible < 1 and f.box[2] == f.box[3] and f.box[0] > 0 and f.box[0] + f.box[2] < w]
    assert hidden, "nobody ever walked in front of anybody"
    for f, t in hidden:
        assert any(g.box[2] >= f.box[2] for g in t if g.person_id != f.person_id), f"{f} hidden by a farther person"


def test_faces_keep_to_the_size_range_and_walk_at_human_speed(pool: list[tuple[np.ndarray, str]],
                                                              busy: WalkingScene) -> None:
    scene = walking_scene(seed=4, duration_s=60, people_per_min=20, face_px=(24, 40), pool=pool)
    sides = [f.box[2] for t in scene.truth for f in t if f.box[2] == f.box[3]]
    assert min(sides) >= 24 and max(sides) <= 40 and max(sides) - min(sides) >= 10
    sides = [f.box[2] for t in busy.truth for f in t if f.box[2] == f.box[3]]
    assert min(sides) >= 16 and max(sides) <= 80 and max(sides) >= 50
    crossing = [(p.leave_frame - p.enter_frame + 1) / busy.fps for p in busy.people if not p.stood_still]
    assert 3 <= float(np.median(crossing)) <= 8, f"people cross a 640 px view in {sorted(crossing)} s"


@pytest.mark.parametrize("suffix", [".avi", ".mp4"])
def test_the_written_video_decodes_to_every_frame_with_its_truth(pool: list[tuple[np.ndarray, str]], tmp_path: Path,
                                                                 suffix: str) -> None:
    scene = walking_scene(seed=6, duration_s=12, people_per_min=20, size=(1280, 720), pool=pool)
    truth = scene.write_video(tmp_path / f"walk{suffix}")
    cap = cv2.VideoCapture(str(tmp_path / f"walk{suffix}"))
    shapes = []
    while True:
        ok, img = cap.read()
        if not ok:
            break
        shapes.append(img.shape)
    cap.release()
    assert shapes == [(720, 1280, 3)] * len(scene) == [(720, 1280, 3)] * 60
    assert json.loads((tmp_path / "walk.json").read_text()) == truth
    assert truth["frames"] == len(truth["truth"]) == 60
    assert [[FaceTruth(f["id"], tuple(f["box"]), f["label"], f["visible"]) for f in t] for t in truth["truth"]] \
        == scene.truth
    assert [p["id"] for p in truth["people"]] == [p.id for p in scene.people]


def test_the_command_line_writes_a_video_its_truth_and_a_contact_sheet(tmp_path: Path,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    need_shared(DATA / "facemask12k" / "test")
    main(["--preset", "still_person", "--out", str(tmp_path)])
    report = json.loads(capsys.readouterr().out)
    assert report["people"] == 1 and report["stood_still"] == 1 and report["frames"] == 225
    sheet = cv2.imread(str(tmp_path / "walking-still_person-0-sheet.png"))
    assert sheet is not None and sheet.shape[1] == 4 * 320
    assert json.loads((tmp_path / "walking-still_person-0.json").read_text())["frames"] == 225
    assert (tmp_path / "walking-still_person-0.mp4").stat().st_size > 0


def test_a_face_crop_is_told_from_a_photo_with_a_small_face_in_it() -> None:
    """The walking bench's pool leaves out images whose face is a small part (truth boxes would not fit a face)."""
    from bench.scenes.compose import face_finder, face_width_share
    from bench.scenes.walking import MIN_FACE_SHARE

    fixtures = Path(__file__).parent / "fixtures"
    yunet = face_finder(fixtures / "models" / "face_detection_yunet_2023mar.onnx")
    face = cv2.imread(str(fixtures / "faces" / "astronaut.png"))
    photo = np.full((face.shape[0] * 4, face.shape[1] * 4, 3), 90, np.uint8)  # the same face, a quarter as wide
    photo[: face.shape[0], face.shape[1]: 2 * face.shape[1]] = face
    assert face_width_share(face, yunet) >= MIN_FACE_SHARE > face_width_share(photo, yunet)
    assert face_width_share(np.full((120, 120, 3), 127, np.uint8), yunet) == 0.0
