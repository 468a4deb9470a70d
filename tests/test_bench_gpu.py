"""Smoke run of `python -m bench.gpu` at its smallest size on the CPU: it runs, says it measured no GPU, and its
figures hold together (every batch size asked for, the same boxes as OpenCV, one JSON line last)."""

from __future__ import annotations

import json

import pytest

from tests.conftest import DATA, MODELS, need_shared


def test_without_cuda_the_gpu_bench_runs_the_batched_cpu_path_and_says_so(monkeypatch: pytest.MonkeyPatch,
                                                                          capsys: pytest.CaptureFixture[str]):
    need_shared(DATA / "facemask12k" / "test")
    need_shared(MODELS / "face_detection_yunet_2023mar.onnx")
    monkeypatch.setenv("MASKWATCH_MODEL_DIR", str(MODELS))
    from bench import gpu

    gpu.main(["--device", "cpu", "--batches", "2,3", "--seconds", "0.05", "--frames", "3", "--parity-frames", "2"])
    figures = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert figures["device"] == "cpu" and "scripts/gpu-check" in figures["note"] and figures["target_met"] is None
    assert [r["batch"] for r in figures["batches"]] == [2, 3]
    assert all(r["fps"] > 0 and r["e2e_fps"] > 0 and r["batches"] >= 1 for r in figures["batches"])
    assert figures["best"]["fps"] == max(r["fps"] for r in figures["batches"])
    parity = figures["parity"]
    assert parity["faces"] >= 8 and parity["opencv_boxes"] >= 6
    # ONNX Runtime runs OpenCV's graph here: the batched detector finds OpenCV's very boxes
    assert parity["same_boxes_share"] == 1.0 and parity["recall_batched"] == parity["recall_opencv_cpu"]
