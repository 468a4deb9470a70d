"""End-to-end vision quality: the bench harness scores correctly, and the real pipeline finds small faces.

Scenes are composed from ../shared/data crops (or, where it is absent, the stand-in's made ones:
tests/conftest.py) and run through the shipped classifier and YuNet, as the worker runs them.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from bench.quality import BUCKETS, compose_scenes, evaluate, main, score_scene
from bench.scenes.compose import PlacedFace, Scene, match
from maskwatch.modelfiles import ensure_yunet
from maskwatch.settings import Settings
from maskwatch.vision.detect import FaceDetector
from maskwatch.vision.pipeline import Pipeline
from tests.conftest import DATA, need_shared

INDEPENDENT = DATA / "chandrikadeb7"


def test_a_scene_is_scored_face_by_face() -> None:
    truth = [PlacedFace((10, 10, 30, 30), "without_mask"), PlacedFace((100, 10, 30, 30), "with_mask"),
             PlacedFace((200, 10, 20, 20), "with_mask")]
    scene = Scene(np.zeros((100, 300, 3), np.uint8), truth)
    found = [((12, 12, 26, 26), "with_mask"),  # the unmasked face, called masked
             ((104, 8, 24, 28), "with_mask"),  # the masked face, right
             ((250, 60, 20, 20), "without_mask")]  # nothing there
    s = score_scene(scene, found)
    assert [(o.label, o.side, o.found) for o in s.outcomes] == [
        ("without_mask", 30, "with_mask"), ("with_mask", 30, "with_mask"), ("with_mask", 20, None)]
    assert s.false_positives == 1
    assert s.truth_compliance == pytest.approx(2 / 3) and s.found_compliance == pytest.approx(2 / 3)


def test_the_harness_prints_a_table_and_one_json_line(capsys: pytest.CaptureFixture[str], yunet_dir: Path) -> None:
    need_shared(INDEPENDENT)
    args = ["--data", str(INDEPENDENT), "--scenes", "3", "--per-class", "12", "--faces", "4-6", "--seed", "3"]
    assert main(args) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert "flagged (found+without_mask)" in "\n".join(lines[:-1])
    doc = json.loads(lines[-1])
    r = doc["pools"]["chandrikadeb7"]
    # The same arguments compose the same scenes: what was pasted is the ground truth the counts must equal.
    pasted = [f for sc in compose_scenes(INDEPENDENT, 3, seed=3, size=(640, 360), face_px=(20, 40), faces=(4, 6),
                                         per_class=12) for f in sc.faces]
    unmasked, masked = (sum(f.label == label for f in pasted) for label in ("without_mask", "with_mask"))
    assert unmasked > 0 and masked > 0
    assert r["scenes"] == 3 and (r["unmasked_faces"], r["masked_faces"]) == (unmasked, masked)
    assert {name: b["faces"] for name, b in r["by_size"].items()} == {
        name: sum(lo <= f.box[2] < hi for f in pasted) for lo, hi, name in BUCKETS}
    # Each share counts faces of its kind; flagged and called-masked faces are found faces.
    for key, n in (("unmasked_found", unmasked), ("unmasked_flagged", unmasked), ("masked_found", masked),
                   ("masked_called_masked", masked)):
        assert any(abs(r[key] - k / n) < 1e-4 for k in range(n + 1)), (key, r[key], n)
    assert r["unmasked_flagged"] <= r["unmasked_found"] and r["masked_called_masked"] <= r["masked_found"]
    assert any(abs(r["false_positives_per_frame"] - k / 3) < 1e-3 for k in range(100)), "false positives per scene"
    assert r["ms_per_frame"] > 0
    assert doc["settings"]["det_score"] == Settings().det_score


@pytest.mark.parametrize("args, message", [
    (["--size", "640by360"], "--size must look like 12x34"),
    (["--data", "/nonexistent/crops"], "is not a folder"),
    (["--scenes", "0"], "--scenes must be at least 1"),
    (["--face-px", "40-20"], "--face-px must be positive and ascending"),
])
def test_bad_arguments_are_named(args: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(args)
    assert exc.value.code == 2 and message in capsys.readouterr().err


def test_a_missing_model_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str], yunet_dir: Path) -> None:
    need_shared(INDEPENDENT)
    assert main(["--data", str(INDEPENDENT), "--model", str(tmp_path / "none.mwm")]) == 2
    assert "none.mwm does not exist" in capsys.readouterr().err


@pytest.fixture(scope="module")
def scenes() -> list[Scene]:
    """Small faces (20-40 px) of the independent set on 640x360 frames: a fixed, seeded set."""
    need_shared(INDEPENDENT)
    return compose_scenes(INDEPENDENT, 8, seed=11, size=(640, 360), face_px=(20, 40), faces=(5, 8), per_class=60)


def test_the_pipeline_flags_most_unmasked_faces(scenes: list[Scene], yunet_dir: Path) -> None:
    pipe = Pipeline.from_settings(Settings.from_env().override(model_dir=yunet_dir, threads=1))
    r = evaluate(pipe, scenes, "scenes")
    assert r["unmasked_faces"] >= 15
    assert r["unmasked_found"] >= 0.85, r
    assert r["unmasked_flagged"] >= 0.6, r
    assert r["false_positives_per_frame"] <= 0.5, r


def found_share(detector: FaceDetector, scenes: list[Scene], label: str) -> float:
    pairs = [p for sc in scenes for p in match(sc.faces, [(d.box, "?") for d in detector.detect(sc.image)])
             if p[0].label == label]
    return sum(found is not None for _, found in pairs) / len(pairs)


def test_the_zoom_pass_finds_small_masked_faces_the_frame_pass_misses(scenes: list[Scene], yunet_dir: Path) -> None:
    model = ensure_yunet(yunet_dir)
    frame_only = FaceDetector(model, upscale=1.0, zoom_score=0)
    zoomed = FaceDetector(model, upscale=1.0)
    before, after = found_share(frame_only, scenes, "with_mask"), found_share(zoomed, scenes, "with_mask")
    assert after >= before + 0.1, (before, after)
    assert found_share(zoomed, scenes, "without_mask") >= found_share(frame_only, scenes, "without_mask")


# --- walking-people scenes: today's path against motion gating + tracking (bench/quality_walking.py) ---


def test_walking_scores_per_frame_per_person_and_tracks() -> None:
    from bench.quality_walking import Score
    from bench.scenes.walking import FaceTruth
    from maskwatch.codec import Face

    def t(pid: int, x: int, label: str, visible: float = 1.0) -> FaceTruth:
        return FaceTruth(pid, (x, 100, 40, 40), label, visible)

    u, m = "without_mask", "with_mask"
    truth = [[t(1, 100, u), t(2, 300, m), t(3, 500, u, visible=0.3)],  # person 3 mostly hidden: not counted
             [t(1, 110, u), t(2, 310, m)],
             [t(1, 120, u)],
             [t(1, 130, u)]]
    analysed = {  # frame 1 was left idle by the gate
        0: [Face((102, 98, 38, 40), u, 0.9, "c-1"), Face((300, 100, 40, 40), u, 0.6, "c-2"),
            Face((500, 100, 40, 40), m, 0.9, "c-3"),  # the hidden person: neither counted nor a false positive
            Face((600, 300, 30, 30), m, 0.9, "c-4")],  # nobody there
        2: [Face((121, 100, 40, 40), m, 0.8, "c-5")],
        3: [Face((131, 101, 40, 40), m, 0.8, "c-5"),
            Face((150, 100, 40, 40), u, 0.7, "c-6")],  # IoU 0.33 with person 1, who is taken by the better box
    }
    score = Score()
    score.add_scene(truth, analysed)
    tracked, untracked = score.figures(tracked=True), score.figures(tracked=False)
    assert (tracked["frames_due"], tracked["frames_analysed"], tracked["analysed_share"]) == (4, 3, 0.75)
    assert tracked["per_frame"] == {"unmasked_faces": 3, "unmasked_found": 1.0, "unmasked_flagged": 0.3333,
                                    "masked_faces": 1, "masked_found": 1.0, "masked_called_masked": 0.0,
                                    "false_positives_per_frame": 0.667}
    # Over every frame due, the idle frame's faces count as missed.
    assert tracked["per_frame_due"] == {"unmasked_faces": 4, "unmasked_found": 0.75, "unmasked_flagged": 0.25,
                                        "masked_faces": 2, "masked_found": 0.5, "masked_called_masked": 0.0}
    # Person 1's main track (two of three matches) was last voted masked: not flagged, though shown unmasked once.
    assert tracked["per_person"] == {"unmasked_people": 1, "unmasked_found": 1.0, "unmasked_flagged": 0.0,
                                     "unmasked_flagged_any": 1.0, "masked_people": 1, "masked_found": 1.0,
                                     "masked_called_masked": 0.0, "masked_flagged_any": 1.0}
    assert tracked["tracks"] == {"people_found": 2, "tracks_per_person": 1.5, "id_switches": 1, "merged_tracks": 0}
    # Without tracks a person's label is the majority of their frames (one of three unmasked: masked).
    assert untracked["per_person"]["unmasked_flagged"] == 0.0 and untracked["tracks"] is None


def test_walking_mode_runs_both_paths_on_the_same_frames(capsys: pytest.CaptureFixture[str], yunet_dir: Path) -> None:
    from bench.scenes.walking import face_pool, preset_scene, visible_faces

    need_shared(INDEPENDENT)
    need_shared(DATA / "facemask12k" / "test")  # the walking scenes' faces come from both crop folders
    args = ["--walking", "--busy", "1", "--quiet", "0", "--still", "0", "--seconds", "15", "--seed", "1",
            "--variant", "up3:det_upscale=3"]
    assert main(args) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert "per person: unmasked people" in "\n".join(lines[:-1])
    doc = json.loads(lines[-1])
    assert doc["mode"] == "walking"
    assert set(doc["paths"]) == {"today", "gated", "gated+up3", "today@gated_frames"}
    # The truth the figures are counted against: the same seeded scene, built again here.
    scene = preset_scene("busy", seed=1, duration_s=15, pool=face_pool(faces_only=True))  # as the bench builds it
    seen = [f for t in scene.truth for f in visible_faces(t)]
    unmasked = sum(f.label == "without_mask" for f in seen)
    gate = doc["groups"]["busy"]["gate"]
    assert gate["frames"] == len(scene) == 75 and gate.get("keyframe", 0) + gate.get("send", 0) + gate.get(
        "idle", 0) == 75
    assert gate.get("keyframe", 0) >= 75 // 10, "a keyframe every 2 s at 5 fps"
    for name, path in doc["paths"].items():
        busy, every = path["busy"], path["all"]
        assert busy["per_frame_due"]["unmasked_faces"] == unmasked and busy["frames_due"] == 75
        for part in ("per_frame", "per_frame_due"):
            f = busy[part]
            assert f["unmasked_flagged"] <= f["unmasked_found"] and f["masked_called_masked"] <= f["masked_found"]
        # Idle frames add faces missed, never faces flagged: flagged counts agree over both denominators.
        pf, pd = busy["per_frame"], busy["per_frame_due"]
        assert pf["unmasked_flagged"] * pf["unmasked_faces"] == pytest.approx(
            pd["unmasked_flagged"] * pd["unmasked_faces"], abs=0.01)
        assert every["per_frame"] == busy["per_frame"], "one group: the total is that group"
        if name == "today@gated_frames":  # today's results on the gated frames: the same faces as gated's
            gated = doc["paths"]["gated"]["busy"]
            assert busy["frames_analysed"] == gated["frames_analysed"]
            assert pf["unmasked_faces"] == gated["per_frame"]["unmasked_faces"]
            assert pf["masked_faces"] == gated["per_frame"]["masked_faces"]
            continue
        assert busy["cpu"]["worker_ms_per_camera_s"] > 0
        assert busy["cpu"]["total_ms_per_camera_s"] == pytest.approx(
            busy["cpu"]["worker_ms_per_camera_s"] + busy["cpu"]["producer_ms_per_camera_s"], abs=0.11)
        if name == "today":  # every frame sent whole, every face classified, no tracks
            assert busy["frames_analysed"] == 75 and {k: pf[k] for k in pd} == pd
            assert busy["tracks"] is None
        else:  # only the frames the gate sent; every face carries a track
            assert busy["frames_analysed"] == gate.get("keyframe", 0) + gate.get("send", 0)
            assert busy["tracks"]["id_switches"] >= 0 and busy["tracks"]["people_found"] >= 1
    assert doc["per_frame_unmasked_flagged"] == {p: doc["paths"][p]["all"]["per_frame"]["unmasked_flagged"]
                                                 for p in doc["paths"]}
    delta = doc["gated_vs_today_pts"]["per_frame_analysed"]
    assert delta == pytest.approx(100 * (doc["per_frame_unmasked_flagged"]["gated"]
                                         - doc["per_frame_unmasked_flagged"]["today"]), abs=0.01)
    assert doc["gated_within_1pt_of_today"] == (delta >= -1.0)
    assert doc["cpu_ms_per_camera_s_busy"]["today"] == doc["paths"]["today"]["busy"]["cpu"]["total_ms_per_camera_s"]


@pytest.mark.parametrize("args, message", [
    (["--walking", "--busy", "0", "--quiet", "0", "--still", "0"], "one of them at least 1"),
    (["--walking", "--variant", "up3"], "write NAME:FLAG=VALUE"),
    (["--walking", "--variant", "x:no_such_setting=1"], "no_such_setting is not a setting"),
])
def test_bad_walking_arguments_are_named(args: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(args)
    assert exc.value.code == 2 and message in capsys.readouterr().err
