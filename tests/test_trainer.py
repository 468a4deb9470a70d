"""`maskwatch train` end to end on a tiny copy of the shared data: artifact, outputs, resume, bad data."""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")

from maskwatch.artifact import ModelArtifact
from maskwatch.cli import build_parser
from maskwatch.cli import main as cli_main
from tests.conftest import DATA, MODELS, need_shared
from trainer import train as train_mod
from trainer.datasets import DatasetError, load_dataset

INIT = MODELS / "mobilenet_v2_imagenet.pth"


def copy_subset(dst: Path, per_class: dict[str, int], layout: str = "clean") -> Path:
    """A few 12K images per class and split, under the folder names of ``layout``."""
    src = need_shared(DATA / "facemask12k")
    split_names = {"clean": {"train": "train", "val": "val", "test": "test"},
                   "kaggle": {"train": "Train", "val": "Validation", "test": "Test"}}[layout]
    class_names = {"clean": {"with_mask": "with_mask", "without_mask": "without_mask"},
                   "kaggle": {"with_mask": "WithMask", "without_mask": "WithoutMask"}}[layout]
    for split, n in per_class.items():
        for cls, name in class_names.items():
            target = dst / split_names[split] / name
            target.mkdir(parents=True)
            for f in sorted((src / split / cls).iterdir())[:n]:
                shutil.copy(f, target / f.name)
    return dst


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Kaggle download as it unpacks: one top folder, then Train/Validation/Test x WithMask/WithoutMask."""
    root = tmp_path_factory.mktemp("kaggle")
    copy_subset(root / "Face Mask Dataset", {"train": 12, "val": 6, "test": 6}, layout="kaggle")
    return root


def train_argv(data: Path, out: Path, *extra: str) -> list[str]:
    """`maskwatch train` with a small, quick recipe."""
    need_shared(INIT)
    return ["train", "--data", str(data), "--out", str(out), "--epochs", "2", "--input-size", "64", "--views", "2",
            "--init-weights", str(INIT), "--unfreeze", "1", "--finetune-epochs", "1", "--batch-size", "8",
            "--seed", "3", *extra]


def train_args(data: Path, out: Path, *extra: str) -> argparse.Namespace:
    return build_parser().parse_args(train_argv(data, out, *extra))


@pytest.fixture(scope="module")
def trained(tiny: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    held_out = tmp_path_factory.mktemp("held") / "other"
    for cls in ("with_mask", "without_mask"):
        (held_out / cls).mkdir(parents=True)
        for f in sorted((need_shared(DATA / "chandrikadeb7") / cls).iterdir())[:4]:
            shutil.copy(f, held_out / cls / f.name)
    out = tmp_path_factory.mktemp("run")
    assert train_mod.main(train_args(tiny, out, "--eval", str(held_out))) == 0
    return out


def test_training_writes_a_loadable_artifact_and_every_report(trained: Path) -> None:
    art = ModelArtifact.load(trained / "model.mwm")
    assert art.meta.classes == ["with_mask", "without_mask"]
    assert art.meta.input_size == 64
    assert art.meta.recipe["unfreeze"] == 1 and art.meta.recipe["seed"] == 3
    assert len(art.meta.data_fingerprint) == 64
    assert {"torch", "onnxruntime", "maskwatch"} <= set(art.meta.versions)
    assert {"test", "test@24px", "val@32px", "other", "other@24px"} <= set(art.meta.metrics)
    metrics = json.loads((trained / "metrics.json").read_text())
    assert metrics["parity"]["ok"] and metrics["parity"]["max_abs_prob_diff"] < 1e-3
    assert metrics["data"]["train"] == {"n": 24, "with_mask": 12, "without_mask": 12, "skipped": 0}
    assert len(metrics["history"]) == 3  # two head epochs, one fine-tuning epoch
    # The reported accuracy is what the confusion matrix of the 12 test images says.
    test = metrics["evaluation"]["test"]
    confusion = np.array(test["confusion"])
    assert test["n"] == confusion.sum() == 12
    assert test["accuracy"] == pytest.approx(np.trace(confusion) / 12)
    assert test["per_class"]["without_mask"]["recall"] == pytest.approx(confusion[1, 1] / confusion[1].sum())
    for png in ("training_curves", "confusion_matrix", "roc", "samples", "samples_degraded", "samples_other_degraded"):
        assert (trained / f"{png}.png").stat().st_size > 5000
    card = (trained / "MODEL_CARD.md").read_text()
    assert "research-only" in card and "without_mask recall" in card


def test_training_learns_something(trained: Path) -> None:
    # 24 images and three epochs from pretrained features (ImageNet's in ../shared, the shipped model's in the
    # stand-in): masked and bare faces are far apart, so even this tiny run tells most held-out test faces
    # apart (chance is 0.5).
    test = json.loads((trained / "metrics.json").read_text())["evaluation"]["test"]
    assert test["accuracy"] >= 0.75 and test["balanced_accuracy"] >= 0.75, test


def test_same_seed_same_weights_and_an_interrupted_run_resumes_to_them(
        tiny: Path, trained: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    save = train_mod.Trainer.save_checkpoint

    def save_then_stop(self: train_mod.Trainer, phase: int, epoch: int, *a: object) -> None:
        save(self, phase, epoch, *a)
        if (phase, epoch) == (1, 1):
            raise KeyboardInterrupt  # as if the user stopped the run after its first epoch

    monkeypatch.setattr(train_mod.Trainer, "save_checkpoint", save_then_stop)
    with pytest.raises(KeyboardInterrupt):
        train_mod.main(train_args(tiny, tmp_path))
    monkeypatch.setattr(train_mod.Trainer, "save_checkpoint", save)
    ckpt = tmp_path / "checkpoint.pt"
    assert train_mod.main(train_args(tiny, tmp_path, "--resume", str(ckpt))) == 0
    resumed, first = ModelArtifact.load(tmp_path / "model.mwm"), ModelArtifact.load(trained / "model.mwm")
    assert resumed.sha256 == first.sha256
    history = json.loads((tmp_path / "metrics.json").read_text())["history"]
    assert [h["epoch"] for h in history] == [1, 2, 1]


def test_resume_refuses_a_checkpoint_of_other_settings(tiny: Path, trained: Path, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(train_argv(tiny, tmp_path, "--resume", str(trained / "checkpoint.pt"), "--lr", "0.01")) == 2
    assert "other settings (lr)" in capsys.readouterr().err


def test_plain_folder_gets_a_validation_split(tmp_path: Path) -> None:
    src = copy_subset(tmp_path / "split", {"train": 20})
    plain = tmp_path / "plain"
    shutil.move(src / "train", plain)
    splits = load_dataset(plain)
    assert set(splits) == {"train", "val"}
    assert len(splits["train"]) + len(splits["val"]) == 40
    assert not set(splits["train"].paths) & set(splits["val"].paths)
    assert set(splits["val"].labels.tolist()) == {0, 1}


def test_unreadable_images_are_skipped_and_counted(tmp_path: Path) -> None:
    data = copy_subset(tmp_path / "d", {"train": 3, "val": 2})
    (data / "train" / "with_mask" / "broken.jpg").write_bytes(b"not a jpeg")
    splits = load_dataset(data)
    assert len(splits["train"]) == 6
    assert [Path(p).name for p in splits["train"].skipped] == ["broken.jpg"]


@pytest.mark.parametrize("make, message", [
    (lambda d: (d / "with_mask").mkdir(parents=True), "no without_mask folder"),
    (lambda d: [(d / c).mkdir(parents=True) for c in ("with_mask", "without_mask", "maybe")],
     "unknown folder 'maybe'"),
    (lambda d: [(d / c).mkdir(parents=True) for c in ("with_mask", "without_mask")], "holds no images"),
    (lambda d: (d / "train" / "with_mask").mkdir(parents=True), "no val"),
    (lambda d: [(d / s).mkdir(parents=True) for s in ("train", "pictures")], "unknown folder 'pictures'"),
    (lambda d: None, "does not exist"),
])
def test_bad_data_folders_give_clear_errors(tmp_path: Path, make, message: str,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "data"
    make(data)
    with pytest.raises(DatasetError, match=message):
        load_dataset(data)
    assert cli_main(train_argv(data, tmp_path / "out")) == 2
    assert message in capsys.readouterr().err


def test_only_readable_class_images_count(tmp_path: Path) -> None:
    data = copy_subset(tmp_path / "d", {"train": 2, "val": 2})
    for f in (data / "val" / "without_mask").iterdir():
        f.write_bytes(b"\x00")
    with pytest.raises(DatasetError, match="no readable without_mask image in split 'val'"):
        load_dataset(data)


def test_missing_init_weights_are_an_error_not_a_random_start(tiny: Path, tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(train_argv(tiny, tmp_path, "--init-weights", str(tmp_path / "nope.pth"))) == 2
    assert "no such file" in capsys.readouterr().err
    assert not (tmp_path / "model.mwm").exists()


def test_views_are_repeatable(tiny: Path) -> None:
    from trainer.augment import AugmentConfig, augment, view_rng
    from trainer.datasets import decode

    img = decode(next((tiny / "Face Mask Dataset" / "Train" / "WithMask").iterdir()).read_bytes())
    a = augment(img, view_rng(1, 2, 3), AugmentConfig(), 0)
    b = augment(img, view_rng(1, 2, 3), AugmentConfig(), 0)
    c = augment(img, view_rng(1, 2, 4), AugmentConfig(), 0)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_from_scratch_is_said_aloud(tiny: Path, tmp_path: Path) -> None:
    assert train_mod.main(train_args(tiny, tmp_path, "--from-scratch", "--epochs", "1")) == 0
    art = ModelArtifact.load(tmp_path / "model.mwm")
    assert art.meta.recipe["init_weights_source"] == "random (--from-scratch)"
    assert "random (--from-scratch)" in (tmp_path / "MODEL_CARD.md").read_text()
