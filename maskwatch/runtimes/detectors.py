"""Which YuNet engine a process detects faces with: OpenCV on the CPU, or batched ONNX Runtime or torch.

``MASKWATCH_DETECTOR`` names it; ``auto`` follows the classifier: a classifier on CUDA means a
GPU worker, whose detection runs in torch on the GPU too (with the frames' pixels kept there), and
anything else keeps OpenCV's ``cv2.FaceDetectorYN``. Every engine finds OpenCV's boxes
(tests/test_yunet_batch.py). Only the torch engine imports torch, and only when chosen.
"""

from __future__ import annotations

from maskwatch.exceptions import SettingsError
from maskwatch.modelfiles import ensure_yunet
from maskwatch.settings import Settings
from maskwatch.vision.batch_detect import BatchFaceDetector, YuNetEngine
from maskwatch.vision.detect import FaceDetector


def detector_kind(s: Settings, device: str) -> str:
    """The engine ``s.detector`` means when the classifier runs on ``device`` (cpu or cuda)."""
    if s.detector == "auto":
        return "torch" if device == "cuda" else "opencv"
    return s.detector


def load_detector(s: Settings, device: str) -> FaceDetector:
    """The face detector of the settings, on ``device`` (where the classifier runs: cpu or cuda)."""
    path = ensure_yunet(s.model_dir)
    options = dict(score=s.det_score, upscale=s.det_upscale, max_side=s.det_max_side, zoom_score=s.det_zoom_score,
                   zoom_px=s.det_zoom_px, flip=s.det_flip, unsure_score=s.track_unsure_score)
    kind = detector_kind(s, device)
    if kind == "opencv":
        return FaceDetector(path, **options)  # type: ignore[arg-type]
    engine: YuNetEngine
    if kind == "onnx":
        from maskwatch.vision.yunet_ort import OrtYuNet

        engine = OrtYuNet(path, device=device, threads=s.threads)
    else:
        try:
            from maskwatch.runtimes.torch_yunet import TorchYuNet
        except ImportError as exc:
            raise SettingsError(f"the torch detector needs torch and onnx ({exc}): pip install 'maskwatch[torch]', "
                                "or use MASKWATCH_DETECTOR=opencv") from exc
        engine = TorchYuNet(path, device=device)
    return BatchFaceDetector(engine, path, max_batch=s.batch_size, **options)
