"""Face detection with YuNet (``cv2.FaceDetectorYN``), made to find small, far-away faces.

YuNet finds faces down to about 10 px at the resolution it is given. CCTV faces are often
15-30 px, at the edge of that range, so frames are enlarged by up to ``upscale`` before
detection (never past ``max_side`` pixels), and boxes are mapped back to frame pixels.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np


@dataclass(frozen=True)
class Detection:
    """A face box in frame pixels ``[x, y, w, h]`` and the detector's confidence."""

    box: tuple[int, int, int, int]
    confidence: float


class FaceDetector:
    """Thread-safe YuNet wrapper: one ``cv2.FaceDetectorYN`` per thread (they hold per-size state)."""

    def __init__(self, model_path: Path, score: float = 0.6, upscale: float = 2.0, max_side: int = 1920,
                 nms: float = 0.3, top_k: int = 500):
        if not Path(model_path).is_file():
            raise FileNotFoundError(f"YuNet model {model_path} not found; run `maskwatch models fetch` or set MASKWATCH_MODEL_DIR")
        self.model_path = str(model_path)
        self.score, self.upscale, self.max_side, self.nms, self.top_k = score, upscale, max_side, nms, top_k
        self._local = threading.local()

    def _net(self, w: int, h: int) -> cv2.FaceDetectorYN:
        net = getattr(self._local, "net", None)
        if net is None:
            net = cv2.FaceDetectorYN.create(self.model_path, "", (w, h), self.score, self.nms, self.top_k)
            self._local.net = net
            self._local.size = (w, h)
        elif self._local.size != (w, h):
            net.setInputSize((w, h))
            self._local.size = (w, h)
        return net

    def scale_for(self, w: int, h: int) -> float:
        """The enlargement applied to a ``w`` x ``h`` frame before detection."""
        return max(1.0, min(self.upscale, self.max_side / max(w, h)))

    def detect(self, image: np.ndarray) -> list[Detection]:
        h, w = image.shape[:2]
        scale = self.scale_for(w, h)
        if scale > 1.0:
            image = cv2.resize(image, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_LINEAR)
        ih, iw = image.shape[:2]
        _, faces = self._net(iw, ih).detect(image)
        out: list[Detection] = []
        if faces is None:
            return out
        for row in faces:
            x, y, bw, bh = (float(v) / scale for v in row[:4])
            x0, y0 = max(0.0, x), max(0.0, y)
            x1, y1 = min(float(w), x + bw), min(float(h), y + bh)
            if x1 - x0 < 2 or y1 - y0 < 2:
                continue
            out.append(Detection((round(x0), round(y0), round(x1 - x0), round(y1 - y0)), float(row[-1])))
        return out
