"""Smoke runs of every benchmark at its smallest size: it runs end to end and its last line is the JSON it promises.

No timing is asserted (speed is compared within a benchmark run, never against a clock here);
what is checked is what a reader of the figures relies on: the keys, and the invariants a run
must hold whatever the machine (every frame counted once, nothing pending).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.conftest import DATA, MODELS, need_shared


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real artifact as `maskwatch train` writes it (random weights, 64 px): fast, fine for speed, not accuracy."""
    import torch

    from maskwatch.artifact import ModelArtifact, ModelMeta
    from maskwatch.runtimes.torch import MaskNet
    from trainer.model import to_onnx

    torch.manual_seed(0)
    net = MaskNet().eval()
    for m in net.modules():  # fresh batch norms fold to identical zero biases, which the exporter would merge
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.normal_(0, 0.1)
            m.running_var.uniform_(0.5, 2.0)
            m.bias.data.normal_(0, 0.1)
    path = tmp_path_factory.mktemp("model") / "tiny.mwm"
    return ModelArtifact(ModelMeta(input_size=64), to_onnx(net, 64, "logits")).save(path)


@pytest.fixture
def bench_env(monkeypatch: pytest.MonkeyPatch, tiny_model: Path) -> Path:
    need_shared(DATA / "facemask12k" / "test")
    need_shared(MODELS / "face_detection_yunet_2023mar.onnx")
    monkeypatch.setenv("MASKWATCH_MODEL", str(tiny_model))
    monkeypatch.setenv("MASKWATCH_MODEL_DIR", str(MODELS))
    return tiny_model


def need_redis() -> None:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed (apt-get install redis-server)")


def last_json(capsys: pytest.CaptureFixture[str]) -> dict:
    out = capsys.readouterr().out.strip().splitlines()
    assert out, "the benchmark printed nothing"
    return json.loads(out[-1])


def test_classifier_reports_speed_and_accuracy(bench_env, capsys):
    from bench import classifier

    classifier.main(["--sizes", "64,32", "--batches", "1,4", "--runtimes", "torch,onnx,onnx_int8", "--limit", "3",
                     "--calib", "4", "--min-time", "0.01", "--rounds", "1", "--no-alloc"])
    out = capsys.readouterr().out
    assert "crops/s by runtime" in out and "accuracy" in out
    f = json.loads(out.strip().splitlines()[-1])
    assert f["bench"] == "classifier" and f["model_input_size"] == 64 and f["machine"]["nproc"] >= 1
    assert {(s["runtime"], s["size"], s["batch"]) for s in f["speed"]} == {
        (rt, size, b) for rt in ("torch", "onnx", "onnx_int8") for size in (64, 32) for b in (1, 4)}
    assert all(s["crops_per_s"] > 0 and s["ratio_vs_torch"] > 0 for s in f["speed"])
    assert all(s["ratio_vs_torch"] == 1.0 for s in f["speed"] if s["runtime"] == "torch")
    for q in f["accuracy"]:
        assert set(q) == {"runtime", "size", "12k_test", "chandrikadeb7", "scored"}
        assert 0 <= q["12k_test"]["accuracy"] <= 1 and 0 <= q["chandrikadeb7"]["without_recall"] <= 1
    # torch and ONNX Runtime serve the same weights: the same calls on the same crops.
    by = {(q["runtime"], q["size"]): q for q in f["accuracy"]}
    assert by[("torch", 64)]["12k_test"] == by[("onnx", 64)]["12k_test"]
    assert f["allocators"] == []


@pytest.mark.slow
def test_classifier_compares_allocators_in_child_processes(bench_env, capsys):
    from bench import classifier

    classifier.main(["--sizes", "64", "--batches", "2", "--runtimes", "torch,onnx", "--limit", "2", "--calib", "2",
                     "--min-time", "0.01", "--rounds", "1", "--alloc-runtimes", "onnx", "--alloc-batch", "2"])
    f = last_json(capsys)
    from bench.classifier import ALLOCATORS, JEMALLOC

    expected = [name for name, env in ALLOCATORS.items() if "LD_PRELOAD" not in env or Path(JEMALLOC).exists()]
    assert [a["allocator"] for a in f["allocators"]] == expected
    assert f["allocators"][0]["ratio_vs_glibc_default"] == 1.0
    assert all(a["runtime"] == "onnx" and a["size"] == 64 and a["crops_per_s"] > 0 and a["minor_faults_per_crop"] >= 0
               for a in f["allocators"])


def test_classifier_refuses_a_run_without_its_baseline(bench_env):
    from bench import classifier

    with pytest.raises(SystemExit):
        classifier.main(["--runtimes", "onnx"])


def test_pipeline_compares_worker_bare_and_naive(bench_env, capsys):
    need_redis()
    from bench import pipeline

    pipeline.main(["--frames", "4", "--naive-frames", "1", "--rounds", "1", "--distinct", "2", "--faces", "2",
                   "--batch-size", "2"])
    f = last_json(capsys)
    for key in ("worker_crops_per_s", "bare_crops_per_s", "naive_crops_per_s", "worker_frames_per_s",
                "worker_vs_bare", "worker_vs_naive", "worker_replayed_vs_bare", "cpu_ms", "targets"):
        assert key in f, key
    assert f["frames"] == 4 and f["crops"] >= 1, "the composed faces were found"
    assert f["counted_once"] and f["pending_after"] == 0
    assert f["worker_crops_per_s"] > 0 and f["bare_crops_per_s"] > 0 and f["naive_crops_per_s"] > 0


@pytest.mark.slow
def test_scaling_counts_every_frame_once_with_two_workers(bench_env, capsys):
    need_redis()
    from bench import scaling

    scaling.main(["--frames", "6", "--setups", "1x1,2x1", "--batch-size", "1", "--faces", "1", "--timeout", "120"])
    f = last_json(capsys)
    assert [s["setup"] for s in f["setups"]] == ["1x1", "2x1"]
    for s in f["setups"]:
        assert s["exactly_once"], s
        assert s["totals_frames"] == s["results"] == 6 and s["lost"] == s["counted_twice"] == s["pending"] == 0
        assert sum(s["by_worker"].values()) == 6 and len(s["by_worker"]) == s["processes"]
        assert "frames_per_s" in s and "ratio_vs_first" in s and "cpu_ms_per_frame" in s
    assert f["setups"][0]["ratio_vs_first"] == 1.0


@pytest.mark.slow
def test_latency_measures_a_camera_under_maskwatch_up(bench_env, capsys):
    need_redis()
    from bench import latency

    latency.main(["--cameras", "1", "--no-search", "--workers", "1", "--duration", "2", "--warmup", "10",
                  "--grace", "10", "--clip-frames", "3", "--faces", "1"])
    f = last_json(capsys)
    (t,) = f["trials"]
    assert t["cameras"] == 1 and t["frames"] > 0 and t["results_missing"] == 0
    assert set(t["latency_ms"]) == {"p50", "p95", "p99"} and t["latency_ms"]["p50"] > 0
    assert t["system_cpu_ms_per_frame"] > 0 and t["idle_estimate_cameras"] >= 0
    assert {"capacity_cameras", "target_8_cameras_p95_under_500ms", "machine"} <= set(f)


def test_capacity_search_doubles_then_bisects():
    from bench.latency import search

    tried = []

    def holds_up_to_6(n: int) -> bool:
        tried.append(n)
        return n <= 6

    assert search(holds_up_to_6, [1, 4], [8], limit=32) == 6
    assert tried == [6, 7]
    tried.clear()
    assert search(holds_up_to_6, [1], [], limit=32) == 6
    assert tried == [2, 4, 8, 6, 7]
    assert search(lambda n: True, [4], [], limit=5) == 5
