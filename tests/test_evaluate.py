"""`maskwatch evaluate`: metrics, the --json shape and values on hand-made folders, --degrade, no torch."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from maskwatch.cli import main as cli_main
from tests.conftest import DATA, ROOT, need_shared
from trainer.metrics import roc_auc, summary

KEYS = {"n", "accuracy", "balanced_accuracy", "roc_auc", "per_class", "confusion"}


def evaluate_json(capsys: pytest.CaptureFixture[str], *args: str) -> dict:
    assert cli_main(["evaluate", *args, "--json"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1, out
    return json.loads(out[0])


def faces(dst: Path, cls: str, n: int, src_cls: str | None = None) -> Path:
    src = need_shared(DATA / "chandrikadeb7") / (src_cls or cls)
    dst.mkdir(parents=True, exist_ok=True)
    for f in sorted(src.iterdir())[:n]:
        shutil.copy(f, dst / f.name)
    return dst


def test_summary_values_by_hand() -> None:
    labels = np.array([0, 0, 0, 1, 1])
    p = np.array([0.1, 0.2, 0.8, 0.9, 0.3])  # one with_mask called without, one without_mask missed
    s = summary(labels, p)
    assert s["confusion"] == [[2, 1], [1, 1]]
    assert s["accuracy"] == pytest.approx(3 / 5)
    assert s["per_class"]["with_mask"] == pytest.approx({"precision": 2 / 3, "recall": 2 / 3, "f1": 2 / 3, "n": 3})
    assert s["per_class"]["without_mask"]["recall"] == pytest.approx(0.5)
    assert s["balanced_accuracy"] == pytest.approx((2 / 3 + 0.5) / 2)
    assert s["roc_auc"] == pytest.approx(5 / 6)  # (without, with) pairs ranked right: 0.9 beats 3, 0.3 beats 2
    assert roc_auc(np.array([0, 1]), np.array([0.5, 0.5])) == 0.5


def test_json_shape_and_values_on_a_folder_of_identical_classes(tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    # Both class folders hold the same images: whatever the model says, it is right on exactly one of
    # each pair, so accuracy, balanced accuracy and ROC-AUC are 0.5 and the confusion rows are equal.
    data = tmp_path / "twins"
    faces(data / "WithMask", "with_mask", 3)
    faces(data / "WithMask", "without_mask", 3)
    shutil.copytree(data / "WithMask", data / "WithoutMask")
    (data / "notes").mkdir()  # other subfolders are ignored
    s = evaluate_json(capsys, "--data", str(data))
    assert set(s) == KEYS
    assert set(s["per_class"]) == {"with_mask", "without_mask"}
    assert set(s["per_class"]["with_mask"]) == {"precision", "recall", "f1", "n"}
    assert s["n"] == 12
    assert s["accuracy"] == 0.5 and s["balanced_accuracy"] == 0.5 and s["roc_auc"] == 0.5
    assert s["confusion"][0] == s["confusion"][1] and sum(s["confusion"][0]) == 6
    assert s["per_class"]["with_mask"]["recall"] + s["per_class"]["without_mask"]["recall"] == pytest.approx(1.0)


def test_the_shipped_model_tells_the_classes_apart(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "clear"
    faces(data / "with_mask", "with_mask", 20)
    faces(data / "without_mask", "without_mask", 20)
    s = evaluate_json(capsys, "--data", str(data))
    assert s["n"] == 40 and s["accuracy"] >= 0.9 and s["roc_auc"] >= 0.95
    degraded = evaluate_json(capsys, "--data", str(data), "--degrade", "24")
    assert degraded["n"] == 40 and degraded != s  # the model saw other pixels
    assert degraded["balanced_accuracy"] >= 0.75


def test_evaluate_needs_no_torch(tmp_path: Path) -> None:
    data = tmp_path / "d"
    faces(data / "with_mask", "with_mask", 2)
    faces(data / "without_mask", "without_mask", 2)
    code = ("import sys, json; from maskwatch.cli import main; "
            "rc = main(['evaluate', '--data', sys.argv[1], '--json']);"
            "assert rc == 0; assert 'torch' not in sys.modules, 'evaluate imported torch'")
    proc = subprocess.run([sys.executable, "-c", code, str(data)], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["n"] == 4


@pytest.mark.parametrize("setup, message", [
    (lambda d: (d / "with_mask").mkdir(parents=True), "no without_mask folder"),
    (lambda d: [(d / c).mkdir(parents=True) for c in ("with_mask", "without_mask")], "holds no images"),
    (lambda d: None, "is not a folder"),
])
def test_bad_folders_give_clear_errors(tmp_path: Path, setup, message: str, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "data"
    setup(data)
    assert cli_main(["evaluate", "--data", str(data)]) == 2
    assert message in capsys.readouterr().err


def test_a_missing_model_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "d"
    faces(data / "with_mask", "with_mask", 1)
    faces(data / "without_mask", "without_mask", 1)
    assert cli_main(["evaluate", "--data", str(data), "--model", str(tmp_path / "none.mwm")]) == 2
    assert "does not exist" in capsys.readouterr().err
