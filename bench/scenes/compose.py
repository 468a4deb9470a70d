"""Composed CCTV-like scenes with known faces: for tests, benchmarks and the end-to-end evaluation.

Face crops of known label are shrunk to CCTV sizes (e.g. 20-40 px), pasted at random places
on a textured background, and the frame is blurred and JPEG-compressed like a camera would.
No real background photos ship with MaskWatch, so backgrounds are procedural (walls, floor,
clutter, noise); see docs/quality.md for what that does and does not show.

>>> import numpy as np

from maskwatch.vision.pipeline import IMAGE_SUFFIXES
>>> rng = np.random.default_rng(0)
>>> pool = [(np.full((100, 100, 3), 128, np.uint8), "with_mask")]
>>> scene = compose_scene(pool, rng, size=(320, 240), faces=2, face_px=(24, 32))
>>> scene.image.shape, len(scene.faces)
((240, 320, 3), 2)
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from maskwatch.vision.pipeline import IMAGE_SUFFIXES

LABEL_DIRS = {"with_mask": ("with_mask", "WithMask"), "without_mask": ("without_mask", "WithoutMask")}


@dataclass(frozen=True)
class PlacedFace:
    box: tuple[int, int, int, int]
    label: str


@dataclass
class Scene:
    image: np.ndarray
    faces: list[PlacedFace]

    @property
    def compliance(self) -> float | None:
        if not self.faces:
            return None
        return sum(f.label == "with_mask" for f in self.faces) / len(self.faces)


def list_images(folder: Path) -> list[Path]:
    return sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)


def face_width_share(img: np.ndarray, yunet: cv2.FaceDetectorYN) -> float:
    """The width of the largest face YuNet finds in ``img`` as a share of the image's width (0: none).

    The image is shrunk to 160 px and set in a grey border as wide again, so a tight face crop has
    the context YuNet needs (``yunet``: :func:`face_finder`'s, reused over many images). A face crop
    scores about 0.4-0.9; a photo of a person from the waist up, or a drawing, far less.
    """
    h, w = img.shape[:2]
    scale = 160 / max(h, w)
    small = cv2.resize(img, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    h, w = small.shape[:2]
    canvas = np.full((2 * h, 2 * w, 3), 127, np.uint8)
    canvas[h // 2:h // 2 + h, w // 2:w // 2 + w] = small
    yunet.setInputSize((2 * w, 2 * h))
    _, rows = yunet.detect(canvas)
    return 0.0 if rows is None else float(max(r[2] for r in rows)) / w


def face_finder(model: Path) -> cv2.FaceDetectorYN:
    """YuNet as :func:`face_width_share` asks it: faces from 0.3, the input size set per image."""
    return cv2.FaceDetectorYN.create(str(model), "", (320, 320), 0.3, 0.3, 50)


def load_face_pool(data_dir: Path, per_class: int, rng: np.random.Generator) -> list[tuple[np.ndarray, str]]:
    """``per_class`` random readable crops of each label from a folder with with_mask/ and without_mask/."""
    pool: list[tuple[np.ndarray, str]] = []
    for label, names in LABEL_DIRS.items():
        folder = next((Path(data_dir) / n for n in names if (Path(data_dir) / n).is_dir()), None)
        if folder is None:
            raise FileNotFoundError(f"{data_dir} has no {names[0]}/ folder")
        files = list_images(folder)
        for i in rng.permutation(len(files))[: per_class * 2]:
            img = cv2.imread(str(files[i]), cv2.IMREAD_COLOR)
            if img is not None:
                pool.append((img, label))
            if sum(lab == label for _, lab in pool) >= per_class:
                break
    return pool


def background(rng: np.random.Generator, size: tuple[int, int]) -> np.ndarray:
    """A procedural indoor-ish background: a wall gradient, a floor, some boxes, sensor noise."""
    w, h = size
    base = rng.integers(60, 200, 3).astype(np.float32)
    grad = np.linspace(0.7, 1.2, h, dtype=np.float32)[:, None, None]
    img = np.clip(base[None, None, :] * grad * np.ones((h, w, 1), np.float32), 0, 255)
    horizon = int(h * rng.uniform(0.45, 0.7))
    img[horizon:] = np.clip(rng.integers(40, 160, 3) * np.ones((h - horizon, w, 3)), 0, 255)
    for _ in range(int(rng.integers(4, 12))):
        x0, y0 = int(rng.integers(0, w)), int(rng.integers(0, h))
        x1, y1 = x0 + int(rng.integers(w // 20, w // 4)), y0 + int(rng.integers(h // 20, h // 3))
        cv2.rectangle(img, (x0, y0), (x1, y1), [float(v) for v in rng.integers(0, 255, 3)], -1)
    img += rng.normal(0, 6, img.shape).astype(np.float32)
    return np.clip(img, 0, 255).astype(np.uint8)


def _free(box: tuple[int, int, int, int], taken: Sequence[tuple[int, int, int, int]], gap: int) -> bool:
    x, y, w, h = box
    return all(x + w + gap <= a or a + c + gap <= x or y + h + gap <= b or b + d + gap <= y for a, b, c, d in taken)


def compose_scene(pool: Sequence[tuple[np.ndarray, str]], rng: np.random.Generator, size: tuple[int, int] = (1280, 720),
                  faces: int = 6, face_px: tuple[int, int] = (20, 40), blur: float = 0.6, jpeg_quality: int = 70,
                  labels: Sequence[str] | None = None) -> Scene:
    """A frame of ``size`` with ``faces`` crops from ``pool`` at ``face_px`` sizes, non-overlapping.

    ``labels``, when given, fixes the label of each face in order (drawn from the pool's crops of that label).
    """
    w, h = size
    img = background(rng, size)
    by_label: dict[str, list[np.ndarray]] = {}
    for crop, label in pool:
        by_label.setdefault(label, []).append(crop)
    placed: list[PlacedFace] = []
    for i in range(faces):
        label = labels[i] if labels is not None else str(rng.choice(sorted(by_label)))
        crop = by_label[label][int(rng.integers(len(by_label[label])))]
        side = int(rng.integers(face_px[0], face_px[1] + 1))
        for _ in range(50):
            box = (int(rng.integers(0, w - side)), int(rng.integers(0, h - side)), side, side)
            if _free(box, [p.box for p in placed], gap=side // 2):
                break
        else:
            continue
        x, y = box[:2]
        img[y:y + side, x:x + side] = cv2.resize(crop, (side, side), interpolation=cv2.INTER_AREA)
        placed.append(PlacedFace(box, label))
    if blur > 0:
        img = cv2.GaussianBlur(img, (0, 0), blur)
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality])
    return Scene(cv2.imdecode(buf, cv2.IMREAD_COLOR) if ok else img, placed)


def write_video(path: Path, frames: Iterable[np.ndarray], fps: float = 10.0) -> Path:
    """Encode ``frames`` (BGR, one size) with OpenCV; ``.avi`` uses MJPG, anything else mp4v.

    ``frames`` may be a generator: frames are written as they come, so a long video needs no memory.
    """
    path = Path(path)
    frames = iter(frames)
    first = next(frames, None)
    if first is None:
        raise ValueError(f"no frames to write to {path}")
    h, w = first.shape[:2]
    fourcc = cv2.VideoWriter_fourcc(*("MJPG" if path.suffix.lower() == ".avi" else "mp4v"))
    writer = cv2.VideoWriter(str(path), fourcc, fps, (w, h))
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV cannot write {path} with codec {'MJPG' if path.suffix == '.avi' else 'mp4v'}")
    for f in itertools.chain([first], frames):
        writer.write(f)
    writer.release()
    return path


def _centre_inside(found: tuple[int, int, int, int], truth: tuple[int, int, int, int]) -> bool:
    fx, fy = found[0] + found[2] / 2, found[1] + found[3] / 2
    tx, ty, tw, th = truth
    return tx <= fx <= tx + tw and ty <= fy <= ty + th


def match(truth: Sequence[PlacedFace], found: Sequence[tuple[tuple[int, int, int, int], str]]
          ) -> list[tuple[PlacedFace, str | None]]:
    """Pair each pasted face with the label of a found face whose centre lies inside it, or None if missed.

    Pasted crops often hold more than the face (hair, shoulders), so a found box is matched by its
    centre, not by overlap; each found face serves one pasted face at most.
    """
    used: set[int] = set()
    out: list[tuple[PlacedFace, str | None]] = []
    for t in truth:
        j = next((j for j, f in enumerate(found) if j not in used and _centre_inside(f[0], t.box)), None)
        if j is not None:
            used.add(j)
        out.append((t, found[j][1] if j is not None else None))
    return out
