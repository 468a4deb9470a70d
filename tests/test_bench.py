"""Smoke runs of every benchmark at its smallest size: it runs end to end and its last line is the JSON it promises.

No timing is asserted (speed is compared within a benchmark run, never against a clock here);
what is checked is what a reader of the figures relies on: the keys, the invariants a run must
hold whatever the machine (every frame counted once, nothing pending, the faces that were pasted
found), and figures that agree with each other (a ratio is the quotient of the two rates it names,
an accuracy a share of the images scored, crops/s the crops of a frame times frames/s).
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


def quotient(a: float, b: float, rounding: float = 0.05) -> object:
    """``a / b`` as a reported ratio holds it: rounded to 3 places, of the rates before they were rounded to 0.1."""
    q = a / b
    return pytest.approx(q, abs=q * (rounding / a + rounding / b) * 1.01 + 5e-4)


def is_share(value: float, n: int) -> bool:
    """Whether ``value`` is k/n for a whole k (as rounded to 4 places): an accuracy over n images."""
    return any(abs(value - k / n) < 1e-4 for k in range(n + 1))


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
    speed = {(s["runtime"], s["size"], s["batch"]): s for s in f["speed"]}
    for (_, size, batch), s in speed.items():
        assert s["crops_per_s"] > 0, s
        assert s["ratio_vs_torch"] == quotient(s["crops_per_s"], speed[("torch", size, batch)]["crops_per_s"]), s
        assert s["ratio_vs_onnx"] == quotient(s["crops_per_s"], speed[("onnx", size, batch)]["crops_per_s"]), s
    # --limit 3: three images of each class per set, so an accuracy is k/6 and a recall k/3.
    for q in f["accuracy"]:
        assert set(q) == {"runtime", "size", "12k_test", "chandrikadeb7", "scored"}
        for name in ("12k_test", "chandrikadeb7"):
            assert is_share(q[name]["accuracy"], 6) and is_share(q[name]["without_recall"], 3), q
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
    default = f["allocators"][0]
    for a in f["allocators"]:
        assert a["runtime"] == "onnx" and a["size"] == 64 and a["batch"] == 2 and a["crops_per_s"] > 0, a
        assert a["ratio_vs_glibc_default"] == quotient(a["crops_per_s"], default["crops_per_s"]), a


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
    # Four frames of two pasted faces each (two scenes, each sent twice): the detector finds most of the 8.
    assert f["frames"] == 4 and 6 <= f["crops"] <= 8, "the composed faces were found"
    assert f["counted_once"] and f["pending_after"] == 0
    assert f["worker_crops_per_s"] > 0 and f["bare_crops_per_s"] > 0 and f["naive_crops_per_s"] > 0
    # One round: the worker's crops/s is its frames/s times the crops of a frame (both rounded).
    assert f["worker_crops_per_s"] == pytest.approx(f["worker_frames_per_s"] * f["crops"] / f["frames"], rel=0.02,
                                                    abs=0.1)
    assert f["worker_vs_bare"] == quotient(f["worker_crops_per_s"], f["bare_crops_per_s"])
    assert f["worker_vs_naive"] == quotient(f["worker_crops_per_s"], f["naive_crops_per_s"])
    assert f["worker_replayed_vs_bare"] == quotient(f["worker_replayed_detection_crops_per_s"], f["bare_crops_per_s"])
    assert f["targets"] == {"worker_vs_bare>=0.85": f["worker_vs_bare"] >= 0.85,
                            "worker_replayed_vs_bare>=0.85": f["worker_replayed_vs_bare"] >= 0.85,
                            "worker_vs_naive>=5": f["worker_vs_naive"] >= 5}


@pytest.mark.slow
def test_scaling_counts_every_frame_once_with_two_workers(bench_env, capsys):
    need_redis()
    from bench import scaling

    scaling.main(["--frames", "8", "--cameras", "2", "--setups", "1x1,2x1", "--batch-size", "1", "--faces", "1",
                  "--timeout", "120"])
    f = last_json(capsys)
    assert [s["setup"] for s in f["setups"]] == ["1x1", "2x1"]
    for s in f["setups"]:
        assert s["exactly_once"], s
        assert s["totals_frames"] == s["results"] == 8 and s["lost"] == s["counted_twice"] == s["pending"] == 0
        assert sum(s["by_worker"].values()) == 8 and len(s["by_worker"]) == s["processes"]
        # A camera is analysed in one place at a time: each camera's frames came from the workers that held it.
        assert set().union(*s["cameras_by_worker"].values()) == {"scale0", "scale1"}
        assert "cpu_ms_per_frame" in s and s["frames_per_s"] > 0
        assert s["ratio_vs_first"] == quotient(s["frames_per_s"], f["setups"][0]["frames_per_s"]), s


@pytest.mark.slow
def test_latency_measures_both_paths_under_maskwatch_up(bench_env, capsys):
    need_redis()
    need_shared(DATA / "chandrikadeb7")  # the walking scenes' faces
    from bench import latency

    latency.main(["--cameras", "1", "--no-search", "--cpu-cameras", "1", "--workers", "1", "--duration", "3",
                  "--warmup", "10", "--grace", "10", "--clip-seconds", "8"])
    f = last_json(capsys)
    assert set(f["paths"]) == {"gated", "today"}
    for path, p in f["paths"].items():
        assert [(t["mix"], t["cameras"]) for t in p["trials"]] == [("busy", 1), ("mixed", 1), ("quiet", 1)]
        for t in p["trials"]:
            assert t["path"] == path and t["frames_sent"] > 0 and t["results_missing"] == 0, t
            lat = t["latency_ms"]
            assert set(lat) == {"p50", "p95", "p99"} and 0 < lat["p50"] <= lat["p95"] <= lat["p99"]
            st = t["status"]
            # frames_due is rounded to 0.1 frame, the share to 3 places
            assert t["accounted_share"] == pytest.approx((st["sent"] + st["idle"]) / st["frames_due"], abs=0.01)
            assert t["held"] == (lat["p95"] < latency.P95_LIMIT_MS and t["accounted_share"] >= latency.HELD_SHARE)
            assert t["cpu_ms_per_camera_s"] > 0
            assert t["idle_estimate_cameras"] == latency.idle_estimate(t["cpu_ms_per_camera_s"])
            if path == "today":  # no gating: every frame sent whole, none idle
                assert st["idle"] == 0 and st["keyframes"] == st["sent"], t
            else:  # an 8 s clip of a quiet lobby: nobody walks, so frames go idle between keyframes
                assert st["keyframes"] <= st["sent"], t
                if t["mix"] == "quiet":
                    assert st["idle"] > 0, t
        by_mix = {t["mix"]: t for t in p["trials"]}
        assert p["cpu_ms_per_camera_s_quiet"] == by_mix["quiet"]["cpu_ms_per_camera_s"]
        assert p["cpu_ms_per_camera_s_busy"] == by_mix["busy"]["cpu_ms_per_camera_s"]
        assert p["cameras_held"] == (1 if by_mix["mixed"]["held"] else 0)
    gated = f["paths"]["gated"]
    assert {k: f[k] for k in ("cameras_held", "cpu_ms_per_camera_s_quiet", "cpu_ms_per_camera_s_busy")} == {
        k: gated[k] for k in ("cameras_held", "cpu_ms_per_camera_s_quiet", "cpu_ms_per_camera_s_busy")}
    assert f["today"]["cameras_held"] == f["paths"]["today"]["cameras_held"]
    assert f["target_8_cameras_held"] is False and "machine" in f


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


def test_threshold_chooses_on_one_half_and_checks_on_the_other(capsys):
    need_shared(DATA / "chandrikadeb7")
    from bench import threshold
    from maskwatch.settings import Settings

    threshold.main(["--data", str(DATA / "chandrikadeb7"), "--sizes", "0,24", "--thresholds", "0.3,0.4",
                    "--limit", "30"])
    out = capsys.readouterr().out
    assert "calibration half" in out and "check half" in out
    f = json.loads(out.strip().splitlines()[-1])
    assert f["images"] == 60 and f["calibration_images"] + f["check_images"] == 60
    assert f["chosen_threshold"] in (0.3, 0.4, 0.5) and f["chosen_threshold"] in f["near_best"]
    default = Settings().mask_threshold
    for px in ("0", "24"):
        assert set(f["check"][px]) == {str(t) for t in {0.5, f["chosen_threshold"], default}}
        for s in f["check"][px].values():
            # recalls are shares of the check half's images of one class; balanced accuracy is their mean
            assert s["balanced_accuracy"] == pytest.approx((s["without_mask_recall"] + s["with_mask_recall"]) / 2,
                                                           abs=1e-4)
    # a lower threshold never finds fewer unmasked faces
    by_t = f["check"]["24"]
    ts = sorted(by_t, key=float)
    assert all(by_t[a]["without_mask_recall"] >= by_t[b]["without_mask_recall"] for a, b in zip(ts, ts[1:]))


@pytest.mark.parametrize("args, message", [(["--thresholds", "0.3,1.5"], "strictly between 0 and 1"),
                                           (["--sizes", "0,2"], "at least 4 px"), (["--limit", "-1"], "--limit")])
def test_threshold_names_bad_arguments(args: list[str], message: str, capsys):
    from bench import threshold

    with pytest.raises(SystemExit):
        threshold.parse_args(args)
    assert message in capsys.readouterr().err
