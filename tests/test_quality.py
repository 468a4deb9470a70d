"""End-to-end vision quality: the bench harness scores correctly, and the real pipeline finds small faces.

Scenes are composed from ../shared/data crops (skipped, with the reason, where it is absent) and
run through the shipped classifier and YuNet, as the worker runs them.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from bench.quality import compose_scenes, evaluate, main, score_scene
from maskwatch.modelfiles import ensure_yunet
from maskwatch.settings import Settings
from bench.scenes.compose import PlacedFace, Scene, match
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
    assert main(["--data", str(INDEPENDENT), "--scenes", "3", "--per-class", "12", "--faces", "4-6", "--seed", "3"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert "flagged (found+without_mask)" in "\n".join(lines[:-1])
    doc = json.loads(lines[-1])
    r = doc["pools"]["chandrikadeb7"]
    assert r["scenes"] == 3 and 12 <= r["unmasked_faces"] + r["masked_faces"] <= 18
    assert set(r["by_size"]) == {"<24", "24-32", "32-40"}
    assert sum(b["faces"] for b in r["by_size"].values()) == r["unmasked_faces"] + r["masked_faces"]
    for key in ("unmasked_found", "unmasked_flagged", "masked_found", "masked_called_masked"):
        assert r[key] is None or 0 <= r[key] <= 1
    assert r["unmasked_flagged"] is None or r["unmasked_flagged"] <= r["unmasked_found"]
    assert r["ms_per_frame"] > 0 and r["false_positives_per_frame"] >= 0
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
