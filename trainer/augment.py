"""Augmented views of a face crop, against the gap between the training data and CCTV faces.

In Face Mask 12K the classes differ by source: with_mask faces are soft web images, without_mask
faces sharp CelebA crops. A model can score well by learning sharpness and framing instead of
masks, and then calls blurred unmasked faces masked. Every view here may be recropped, flipped,
recoloured, blurred, shrunk to a 16-48 px face and scaled back (what a camera sees), and
JPEG-recompressed, for both classes alike, so none of those cues tells the classes apart.

Everything works on BGR uint8 images with a ``numpy.random.Generator``, so a view is a function
of (seed, image, view) and training is repeatable.

>>> img = np.full((100, 80, 3), 128, np.uint8)
>>> degrade(img, 24).shape
(100, 80, 3)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import cv2
import numpy as np


def degrade(img: np.ndarray, px: int) -> np.ndarray:
    """Shrink ``img`` to ``px`` wide (area averaging) and scale it back up (bilinear).

    This is ``maskwatch evaluate --degrade PX``: a face as a camera sees it ``px`` wide.
    """
    h, w = img.shape[:2]
    if px >= w:
        return img
    small = cv2.resize(img, (px, max(1, round(h * px / w))), interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


@dataclass(frozen=True)
class AugmentConfig:
    """Probabilities and ranges of each augmentation (recorded in the artifact's recipe)."""

    crop_scale: tuple[float, float] = (0.55, 1.0)
    crop_ratio: tuple[float, float] = (0.8, 1.25)
    flip: float = 0.5
    jitter: float = 0.8
    brightness: float = 0.3
    contrast: float = 0.3
    saturation: float = 0.4
    hue_deg: float = 8.0
    gray: float = 0.1
    # Blur and downscaling probabilities per class (with_mask, without_mask): 12K's without_mask faces
    # are sharp where its with_mask faces are soft, so softening them more evens out the shortcut.
    blur: tuple[float, float] = (0.2, 0.4)
    blur_sigma: tuple[float, float] = (0.4, 1.6)
    downscale: tuple[float, float] = (0.4, 0.7)
    face_px: tuple[int, int] = (16, 48)
    jpeg: float = 0.5
    jpeg_quality: tuple[int, int] = (25, 90)

    def as_dict(self) -> dict:
        return asdict(self)


def random_resized_crop(img: np.ndarray, rng: np.random.Generator, scale: tuple[float, float],
                        ratio: tuple[float, float]) -> np.ndarray:
    """A random crop of ``scale`` of the area and aspect ``ratio`` (torchvision's recipe)."""
    h, w = img.shape[:2]
    for _ in range(10):
        area = h * w * rng.uniform(*scale)
        aspect = np.exp(rng.uniform(np.log(ratio[0]), np.log(ratio[1])))
        cw, ch = round(np.sqrt(area * aspect)), round(np.sqrt(area / aspect))
        if 0 < cw <= w and 0 < ch <= h:
            x, y = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
            return img[y:y + ch, x:x + cw]
    return img


def colour_jitter(img: np.ndarray, rng: np.random.Generator, cfg: AugmentConfig) -> np.ndarray:
    """Random brightness, contrast, saturation and hue, applied in HSV/float space."""
    hsv = cv2.cvtColor(img, cv2.COLOR_BGR2HSV_FULL).astype(np.float32)
    hsv[..., 0] = (hsv[..., 0] + rng.uniform(-cfg.hue_deg, cfg.hue_deg) * 256 / 360) % 256
    hsv[..., 1] *= rng.uniform(1 - cfg.saturation, 1 + cfg.saturation)
    out = cv2.cvtColor(np.clip(hsv, 0, 255).astype(np.uint8), cv2.COLOR_HSV2BGR_FULL).astype(np.float32)
    mean = out.mean()
    out = (out - mean) * rng.uniform(1 - cfg.contrast, 1 + cfg.contrast) + mean
    out *= rng.uniform(1 - cfg.brightness, 1 + cfg.brightness)
    return np.clip(out, 0, 255).astype(np.uint8)


def jpeg(img: np.ndarray, quality: int) -> np.ndarray:
    ok, enc = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    out = cv2.imdecode(enc, cv2.IMREAD_COLOR) if ok else None
    return img if out is None else out


def augment(img: np.ndarray, rng: np.random.Generator, cfg: AugmentConfig, label: int) -> np.ndarray:
    """One random view of a BGR face crop of class index ``label``."""
    img = random_resized_crop(img, rng, cfg.crop_scale, cfg.crop_ratio)
    if rng.random() < cfg.flip:
        img = img[:, ::-1]
    if rng.random() < cfg.jitter:
        img = colour_jitter(img, rng, cfg)
    if rng.random() < cfg.gray:
        img = cv2.cvtColor(cv2.cvtColor(img, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
    if rng.random() < cfg.blur[label]:
        sigma = rng.uniform(*cfg.blur_sigma) * img.shape[1] / 112
        img = cv2.GaussianBlur(img, (0, 0), sigma)
    h, w = img.shape[:2]
    if rng.random() < cfg.downscale[label]:
        px = int(rng.integers(cfg.face_px[0], cfg.face_px[1] + 1))
        if px < w:
            img = cv2.resize(img, (px, max(1, round(h * px / w))), interpolation=cv2.INTER_AREA)
    if rng.random() < cfg.jpeg:
        img = jpeg(img, int(rng.integers(cfg.jpeg_quality[0], cfg.jpeg_quality[1] + 1)))
    if img.shape[:2] != (h, w):
        img = cv2.resize(img, (w, h), interpolation=cv2.INTER_LINEAR)
    return np.ascontiguousarray(img)


def view_rng(seed: int, image: int, view: int) -> np.random.Generator:
    """The generator of one view: independent of the order views are made in (resumable, parallel)."""
    return np.random.default_rng([seed, image, view])
