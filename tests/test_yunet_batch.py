"""The batched YuNet path on the CPU: OpenCV's decoding, batching that never mixes pictures, and the same faces.

ONNX Runtime's CPU provider runs the very graph OpenCV runs, so the batched detector must find
OpenCV's faces on composed scenes at several frame sizes, with the mirror pass and with motion
windows. The torch engine runs the same graph in fp32 on the CPU here (fp16 on CUDA: test_gpu.py).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from maskwatch.exceptions import SettingsError
from maskwatch.runtimes.detectors import load_detector
from maskwatch.settings import Settings
from maskwatch.vision import yunet
from maskwatch.vision.batch_detect import BatchFaceDetector
from maskwatch.vision.detect import FaceDetector
from maskwatch.vision.yunet_ort import OrtYuNet, providers_for
from tests.yunet_parity import assert_same_faces, scene_images

YUNET = "face_detection_yunet_2023mar.onnx"


@pytest.fixture(scope="module")
def model(yunet_dir: Path) -> Path:
    return yunet_dir / YUNET


@pytest.fixture(scope="module")
def ort_engine(model: Path) -> OrtYuNet:
    return OrtYuNet(model, threads=2)


def candidates(cells: list[tuple[int, int, list[float], float]]) -> yunet.Candidates:
    """Candidates from (picture, cell, raw values, score) tuples."""
    return yunet.Candidates(np.array([c[0] for c in cells]), np.array([c[1] for c in cells]),
                            np.array([c[2] for c in cells], np.float32), np.array([c[3] for c in cells], np.float32))


def test_a_cell_decodes_to_a_box_centred_on_it_in_input_pixels():
    # Input 64x32: stride 8 has 8x4 cells, so cell 8 + 3 is column 3 of row 1; stride 16's first cell is cell 32.
    raw = [0.0, 0.0, 0.0, 0.0] + [0.5, 0.5] * 5  # centred, one cell wide, landmarks half a cell on
    rows = yunet.decode(candidates([(0, 11, raw, 0.9), (0, 32, [0.25, 0, np.log(2), 0] + [0.0] * 10, 0.8)]), 64, 32)
    assert rows[0, :4].tolist() == [3 * 8 - 4, 1 * 8 - 4, 8, 8]
    assert rows[0, 4:6].tolist() == [3.5 * 8, 1.5 * 8]
    assert rows[1, :4].tolist() == [0.25 * 16 - 16, -8, 32, 16]
    assert rows[:, 14].tolist() == pytest.approx([0.9, 0.8])


def test_scores_are_opencvs_clipped_geometric_mean():
    assert yunet.face_scores(np.array([0.81, 1.2, -0.1]), np.array([1.0, 0.25, 0.5])).tolist() == \
        pytest.approx([0.9, 0.5, 0.0])


def test_nms_keeps_the_best_of_overlapping_boxes_within_a_picture_never_across_pictures():
    box = [0.0, 0.0, 0.0, 0.0] + [0.0] * 10
    cells = [(0, 11, box, 0.7), (0, 11, box, 0.9), (1, 11, box, 0.8), (1, 12, box, 0.6)]  # picture 1: 8 px apart
    rows = yunet.faces(candidates(cells), 3, 64, 32, nms=0.3, top_k=10)
    assert [r[:, 14].tolist() for r in rows] == [pytest.approx([0.9]), pytest.approx([0.8, 0.6]), []]
    top1 = yunet.faces(candidates(cells), 3, 64, 32, nms=0.3, top_k=1)
    assert [len(r) for r in top1] == [1, 1, 0]


def test_a_batch_gives_each_picture_what_it_gets_alone(ort_engine: OrtYuNet):
    images = scene_images((320, 224), 3, seed=1)
    batch = np.stack([im.transpose(2, 0, 1) for im in images]).astype(np.float32)
    together = yunet.faces(ort_engine.candidates(batch, 0.3), 3, 320, 224, 0.3, 500)
    assert sum(len(r) for r in together) >= 6
    for i in range(3):
        alone = yunet.faces(ort_engine.candidates(batch[i:i + 1], 0.3), 1, 320, 224, 0.3, 500)[0]
        np.testing.assert_allclose(together[i], alone, rtol=1e-4, atol=1e-3)


def test_frames_are_padded_with_zeros_to_a_multiple_of_32(ort_engine: OrtYuNet):
    image = np.full((50, 70, 3), 200, np.uint8)
    batch = ort_engine.frame_inputs([image], [(0, (0, 0, 70, 50), False, 1.5)], *yunet.padded(105, 75))
    assert batch.shape == (1, 3, 96, 128)
    assert batch[0, :, :75, :105].min() == 200 and batch[0, :, 75:].max() == 0 and batch[0, :, :, 105:].max() == 0


@pytest.mark.parametrize("size", [(640, 480), (640, 360), (1280, 720), (320, 240)])
def test_the_onnx_detector_finds_opencvs_faces(model: Path, ort_engine: OrtYuNet, size: tuple[int, int]):
    images = scene_images(size, 6, seed=size[0] + size[1])
    expected = [FaceDetector(model).detect(im) for im in images]
    got = BatchFaceDetector(ort_engine, model, max_batch=4).detect_batch(images)
    assert assert_same_faces(expected, got) >= 20


def test_the_onnx_detector_finds_opencvs_faces_in_motion_windows_and_mirrored(model: Path, ort_engine: OrtYuNet):
    images = scene_images((640, 480), 4, seed=9)
    regions = [[(40, 40, 200, 160), (380, 260, 160, 140)], None, [], [(0, 0, 320, 240)]]
    expected = [FaceDetector(model, flip=True).detect(im, r) for im, r in zip(images, regions)]
    got = BatchFaceDetector(ort_engine, model, flip=True).detect_batch(images, regions)
    assert assert_same_faces(expected, got) >= 4
    assert got[2] == []  # no motion, no faces


def test_the_torch_engine_finds_opencvs_faces_on_the_cpu(model: Path):
    pytest.importorskip("torch")
    from maskwatch.runtimes.torch_yunet import TorchYuNet

    images = scene_images((640, 480), 4, seed=3)
    regions = [None, [(100, 80, 220, 200)], None, None]
    expected = [FaceDetector(model, flip=True).detect(im, r) for im, r in zip(images, regions)]
    got = BatchFaceDetector(TorchYuNet(model, "cpu"), model, flip=True).detect_batch(images, regions)
    assert assert_same_faces(expected, got) >= 10


def test_the_settings_choose_the_engine(yunet_dir: Path):
    s = Settings.from_env({"MASKWATCH_MODEL_DIR": str(yunet_dir)})
    assert type(load_detector(s, "cpu")) is FaceDetector  # auto on the CPU: OpenCV, as before
    onnx = load_detector(s.override(detector="onnx", batch_size=8), "cpu")
    assert isinstance(onnx, BatchFaceDetector) and onnx.engine.name == "onnx" and onnx.max_batch == 8


def test_cuda_without_a_cuda_provider_says_what_to_install():
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this ONNX Runtime has the CUDA provider")
    with pytest.raises(SettingsError, match=r"maskwatch\[cuda\]"):
        providers_for("cuda")


@pytest.mark.parametrize("kind", ["opencv", "onnx"])
def test_unsure_candidates_come_after_the_faces_and_away_from_them(model: Path, ort_engine: OrtYuNet, kind: str):
    images = scene_images((640, 360), 4, seed=3)
    # A strict face threshold leaves some real faces under it, as a mask leaves many under the default one.
    strict = {"score": 0.9, "unsure_score": 0.1}
    detector = FaceDetector(model, **strict) if kind == "opencv" else BatchFaceDetector(ort_engine, model, max_batch=4,
                                                                                        **strict)
    unsure_seen = 0
    for image in images:
        sure, both = detector.detect(image), detector.detect(image, unsure=True)
        assert both[:len(sure)] == sure and not any(d.unsure for d in sure)
        doubtful = both[len(sure):]
        assert all(d.unsure and detector.unsure_score <= d.confidence < detector.score for d in doubtful)
        for d in doubtful:  # never on the head of a face found
            cx, cy = d.box[0] + d.box[2] / 2, d.box[1] + d.box[3] / 2
            assert not any(abs(cx - (f.box[0] + f.box[2] / 2)) <= 0.9 * f.box[2]
                           and abs(cy - (f.box[1] + f.box[3] / 2)) <= 0.9 * f.box[3] for f in sure), (d, sure)
        unsure_seen += len(doubtful)
    assert unsure_seen >= 2
    off = FaceDetector(model, score=0.9, unsure_score=0)
    assert all(not d.unsure for im in images for d in off.detect(im, unsure=True))
