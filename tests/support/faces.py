"""Face crops of both classes made from one public-domain portrait, for a checkout without ../shared.

tests/fixtures/faces/astronaut.png (NASA, public domain; its README says where it comes from) is
cut into square face crops like the shared data's: ``without_mask`` as photographed, ``with_mask``
with a pleated mask drawn over nose, mouth and chin with its ear loops. Each crop varies the
framing (margin and offset around the face), rotation, mirroring, size (64-224 px), light,
colour cast and blur, so the crops of a folder differ as a camera's sightings of one face do. The
same seed always writes the same files.

One face and drawn masks: enough to run detection, classification, tracking, the jobs, the
trainer and the benchmarks end to end, not to judge a model (the real crops are for that).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

PORTRAIT = Path(__file__).resolve().parent.parent / "fixtures" / "faces" / "astronaut.png"
LABELS = ("with_mask", "without_mask")

# Where the face is in the portrait (YuNet's box, x, y, w, h), and the mask's outline over it: from the
# bridge of the nose, below the eyes, round the cheeks to under the chin.
FACE = (84, 66, 92, 112)
MASK_OUTLINE = np.array([(84, 124), (106, 118), (128, 116), (150, 118), (176, 124), (174, 142), (162, 165),
                         (142, 177), (128, 179), (114, 177), (94, 165), (86, 142)], np.int32)
PLEATS = ((129, 3), (141, 5), (154, 5))  # (height at the sides, how far the middle sags)
EAR_LOOPS = (((85, 127), (76, 110)), ((175, 127), (184, 110)))
SOFT = 0.4  # share of crops upscaled from a small sighting
# Light colours only: under the portrait's chin is a black collar, which would swallow a dark mask's outline.
MASK_COLOURS = ((235, 205, 160), (240, 240, 236), (190, 190, 195), (200, 170, 230), (150, 190, 160),
                (150, 220, 230))  # BGR: surgical blue, white, grey, lilac, sage, pale yellow


def portrait() -> np.ndarray:
    img = cv2.imread(str(PORTRAIT), cv2.IMREAD_COLOR)
    if img is None:
        raise FileNotFoundError(f"cannot read {PORTRAIT}: the checkout is incomplete")
    return img


def draw_mask(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The portrait with a mask of a random colour drawn on: shaded as it curves round, pleated, with ear loops."""
    colour = np.clip(np.array(MASK_COLOURS[int(rng.integers(len(MASK_COLOURS)))], np.float32) + rng.normal(0, 8, 3),
                     0, 255)
    cloth = np.empty(img.shape, np.float32)
    cloth[:] = colour
    h, w = img.shape[:2]
    across = ((np.arange(w, dtype=np.float32) - FACE[0] - FACE[2] / 2) / (FACE[2] / 2)) ** 2
    cloth *= np.linspace(1.05, 0.85, h, dtype=np.float32)[:, None, None] * (1 - 0.2 * across)[None, :, None]
    for y, sag in PLEATS:
        cv2.polylines(cloth, [np.array([(90, y), (128, y + sag), (170, y)], np.int32)], False,
                      (colour * 0.75).tolist(), 2)
    cloth += rng.normal(0, 3, cloth.shape).astype(np.float32)
    cover = np.zeros(img.shape[:2], np.uint8)
    cv2.fillPoly(cover, [MASK_OUTLINE], 255)
    alpha = cv2.GaussianBlur(cover, (3, 3), 0).astype(np.float32)[:, :, None] / 255  # a soft edge, as photographed
    out = (img * (1 - alpha) + cloth * alpha).astype(np.uint8)
    for a, b in EAR_LOOPS:
        cv2.line(out, a, b, (colour * 0.9).tolist(), 2)
    return out


def face_crop(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A square crop round the portrait's face: random margin, offset, tilt, mirror, size, light, colour, blur."""
    x, y, w, h = FACE
    cx, cy = x + w / 2 + rng.normal(0, 0.04 * w), y + h / 2 + rng.normal(0, 0.04 * h)
    side = int(rng.integers(64, 225))
    scale = side / (max(w, h) * rng.uniform(0.95, 1.3))
    m = cv2.getRotationMatrix2D((cx, cy), rng.uniform(-10, 10), scale)
    m[:, 2] += (side / 2 - cx, side / 2 - cy)
    crop = cv2.warpAffine(img, m, (side, side), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REFLECT)
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    gain = rng.uniform(0.7, 1.25) * rng.uniform(0.88, 1.12, 3)  # exposure times a colour cast
    crop = np.clip(crop.astype(np.float32) * gain + rng.uniform(-30, 30), 0, 255).astype(np.uint8)
    if rng.random() < 0.3:
        crop = cv2.GaussianBlur(crop, (0, 0), rng.uniform(0.5, 1.5))
    if rng.random() < SOFT:  # a face first seen small and scaled up, as many web and CCTV crops are
        small = int(rng.integers(12, 28))
        crop = cv2.resize(cv2.resize(crop, (small, small), interpolation=cv2.INTER_AREA), (side, side),
                          interpolation=cv2.INTER_LINEAR)
    return np.ascontiguousarray(crop)


def write_crops(folder: Path, per_class: int, seed: int) -> Path:
    """``per_class`` JPEG crops in ``folder``/with_mask and ``folder``/without_mask (names unique across both)."""
    rng = np.random.default_rng(seed)
    bare = portrait()
    for label in LABELS:
        target = folder / label
        target.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            source = draw_mask(bare, rng) if label == "with_mask" else bare
            cv2.imwrite(str(target / f"{label}_{i:04d}.jpg"), face_crop(source, rng), [cv2.IMWRITE_JPEG_QUALITY, 90])
    return folder
