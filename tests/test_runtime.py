"""Runtimes: ONNX Runtime and torch serve the same weights of one artifact and agree."""

from __future__ import annotations

import numpy as np
import pytest

from maskwatch.artifact import ModelArtifact, ModelMeta, default_model_path
from maskwatch.exceptions import ArtifactError
from maskwatch.runtimes import load_runtime

torch = pytest.importorskip("torch")
# Modules that need torch, imported once the line above has skipped this file where torch is absent.
from maskwatch.runtimes.torch import MaskNet, TorchRuntime  # noqa: E402
from trainer.model import to_onnx  # noqa: E402


@pytest.fixture(scope="module")
def random_model() -> tuple[ModelArtifact, MaskNet]:
    """A MaskNet with random weights and non-trivial batch-norm statistics, exported as the trainer does."""
    size = 64
    torch.manual_seed(0)
    net = MaskNet(2, [16]).eval()
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.normal_(0, 0.1)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
    return ModelArtifact(ModelMeta(input_size=size, head=[16]), to_onnx(net, size, "logits")), net


def batch(n: int = 5, size: int = 64) -> np.ndarray:
    return np.random.default_rng(0).normal(size=(n, 3, size, size)).astype(np.float32)


def test_torch_runtime_rebuilds_the_trained_module_from_the_onnx_initializers(random_model) -> None:
    art, net = random_model
    x = batch()
    with torch.inference_mode():
        ref = torch.softmax(net(torch.from_numpy(x)), 1).numpy()
    rt = TorchRuntime(art, device="cpu")
    assert rt.dtype == torch.float32
    np.testing.assert_allclose(rt.predict_proba(x), ref, atol=1e-5)
    np.testing.assert_allclose(load_runtime(art, "onnx").predict_proba(x), ref, atol=1e-5)


def test_onnx_and_torch_agree_on_the_shipped_model() -> None:
    art = ModelArtifact.load(default_model_path())
    x = batch(8, art.meta.input_size)
    onnx_p = load_runtime(art, "onnx").predict_proba(x)
    torch_p = load_runtime(art, "torch", "cpu").predict_proba(x)
    assert onnx_p.shape == (8, 2)
    np.testing.assert_allclose(torch_p, onnx_p, atol=1e-4)


def test_empty_batch_gives_no_rows(random_model) -> None:
    art, _ = random_model
    for rt in (load_runtime(art, "onnx"), load_runtime(art, "torch", "cpu")):
        assert rt.predict_proba(np.zeros((0, 3, 64, 64), np.float32)).shape == (0, 2)


def test_an_onnx_graph_without_torch_names_is_refused(random_model) -> None:
    art, _ = random_model
    wrong = ModelArtifact(ModelMeta(input_size=64, head=[32]), art.onnx)  # the head width does not match
    with pytest.raises(ArtifactError, match="missing|shape"):
        TorchRuntime(wrong, device="cpu")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_runs_fp16_and_matches_onnx(random_model) -> None:
    art, _ = random_model
    rt = load_runtime(art, "torch", "cuda")
    assert rt.dtype == torch.float16
    x = batch()
    np.testing.assert_allclose(rt.predict_proba(x), load_runtime(art, "onnx").predict_proba(x), atol=2e-2)
