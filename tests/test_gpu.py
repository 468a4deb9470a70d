"""The GPU worker's path: crops cut where the frames are, one batch from frames to labels, and the same on CUDA.

The torch code runs on the CPU here (fp32), against the CPU path it replaces: crops against
``square_crop`` + ``to_batch``, a whole batch against :meth:`Pipeline.analyze`. The tests marked
``cuda`` run it on a GPU in fp16 (``bash scripts/gpu-check``) and are skipped, saying so, without one.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from maskwatch.settings import Settings
from maskwatch.vision.crop import square_crop
from maskwatch.vision.detect import FaceDetector
from maskwatch.vision.pipeline import Pipeline
from maskwatch.vision.preprocess import to_batch
from tests.yunet_parity import assert_same_faces, scene_images

torch = pytest.importorskip("torch")

from maskwatch.runtimes.torch_batch import GpuBatch  # noqa: E402
from maskwatch.runtimes.torch_images import Staging, crop_inputs, decode_jpegs  # noqa: E402

GREY = 1 / 255 / 0.224  # one grey level in the classifier's normalised units (std ~0.224)
CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU: run `bash scripts/gpu-check` on one")


def settings(yunet_dir: Path, device: str) -> Settings:
    return Settings.from_env({"MASKWATCH_MODEL_DIR": str(yunet_dir), "MASKWATCH_DEVICE": device,
                              "MASKWATCH_RUNTIME": "torch", "MASKWATCH_DETECTOR": "torch", "MASKWATCH_THREADS": "2"})


def cpu_crops(images: list[np.ndarray], picks: list[tuple[int, tuple[int, int, int, int]]],
              pipe: Pipeline) -> np.ndarray:
    m = pipe.meta
    return to_batch([square_crop(images[f], box, 0.1) for f, box in picks], m.input_size, m.mean, m.std)


PICKS = [(0, (10, 10, 30, 30)), (1, (600, 450, 60, 60)), (1, (-5, 200, 40, 50)), (0, (300, 200, 17, 20))]
SHRUNK = [(0, (100, 100, 250, 250)), (1, (380, 200, 180, 220))]  # larger than the classifier's input


@pytest.fixture(scope="module")
def images() -> list[np.ndarray]:
    return scene_images((640, 480), 4, seed=21)


def test_crops_cut_on_the_device_are_the_cpu_crops(images: list[np.ndarray], yunet_dir: Path):
    pipe = Pipeline.from_settings(settings(yunet_dir, "cpu"))
    m = pipe.meta
    frames = Staging("cpu").upload(images)
    grown = crop_inputs(frames, PICKS, 0.1, m.input_size, m.mean, m.std, torch.float32).numpy()
    assert np.abs(grown - cpu_crops(images, PICKS, pipe)).max() <= 1.01 * GREY
    shrunk = crop_inputs(frames, SHRUNK, 0.1, m.input_size, m.mean, m.std, torch.float32).numpy()
    gap = np.abs(shrunk - cpu_crops(images, SHRUNK, pipe))
    assert gap.mean() <= 1.5 * GREY and gap.max() <= 12 * GREY  # INTER_AREA approximated by 2x2 samples


def test_one_batch_from_frames_to_labels_matches_the_pipeline(images: list[np.ndarray], yunet_dir: Path):
    pipe = Pipeline.from_settings(settings(yunet_dir, "cpu"))
    expected = pipe.analyze(images)
    got = GpuBatch(pipe).analyze(images)
    assert sum(len(f) for f in expected) >= 12
    for want, have in zip(expected, got):
        assert [f.box for f in have] == [f.box for f in want]
        assert [f.label for f in have] == [f.label for f in want]
        assert [f.score for f in have] == pytest.approx([f.score for f in want], abs=0.02)


def test_the_batch_path_refuses_an_opencv_detector(yunet_dir: Path):
    from maskwatch.exceptions import SettingsError

    with pytest.raises(SettingsError, match="MASKWATCH_DETECTOR=torch"):
        GpuBatch(Pipeline.from_settings(settings(yunet_dir, "cpu").override(detector="opencv")))


@pytest.mark.cuda
@CUDA
def test_cuda_workers_detect_on_the_gpu_in_fp16_and_find_opencvs_faces(yunet_dir: Path):
    env = {"MASKWATCH_MODEL_DIR": str(yunet_dir), "MASKWATCH_DEVICE": "cuda"}
    pipe = Pipeline.from_settings(Settings.from_env(env))
    assert pipe.runtime.device == "cuda" and pipe.detector.engine.name == "torch"  # type: ignore[attr-defined]
    images = scene_images((640, 480), 8, seed=4)
    expected = [FaceDetector(yunet_dir / "face_detection_yunet_2023mar.onnx").detect(im) for im in images]
    assert assert_same_faces(expected, pipe.detector.detect_batch(images), max_gap=0.03) >= 30  # type: ignore[attr-defined]


@pytest.mark.cuda
@CUDA
def test_cuda_batch_labels_as_the_cpu_pipeline(images: list[np.ndarray], yunet_dir: Path):
    cpu = Pipeline.from_settings(settings(yunet_dir, "cpu"))
    gpu = GpuBatch(Pipeline.from_settings(settings(yunet_dir, "cuda")))
    expected, got = cpu.analyze(images), gpu.analyze(images)
    pairs = [(w, h) for want, have in zip(expected, got) for w, h in zip(want, have)]
    assert len(pairs) == sum(len(f) for f in expected) >= 12
    assert sum(w.label == h.label for w, h in pairs) >= len(pairs) - 1


@pytest.mark.cuda
@CUDA
def test_jpegs_decoded_on_the_gpu_are_opencvs_frames(images: list[np.ndarray]):
    jpegs = [cv2.imencode(".jpg", im, [cv2.IMWRITE_JPEG_QUALITY, 85])[1].tobytes() for im in images]
    frames = decode_jpegs(jpegs, "cuda")
    assert frames.shapes == tuple(im.shape[:2] for im in images)
    ref = np.stack([cv2.imdecode(np.frombuffer(j, np.uint8), cv2.IMREAD_COLOR) for j in jpegs]).astype(int)
    gap = np.abs(frames.pixels.cpu().numpy().astype(int) - ref)
    # nvJPEG and libjpeg-turbo differ in IDCT and chroma upsampling: on an H200, mean 0.41 and 99th percentile 7
    assert gap.mean() < 1.0 and np.percentile(gap, 99) <= 10
