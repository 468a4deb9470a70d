"""Test helpers: composed scenes for the detectors, and the check that two detectors found the same faces."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from bench.scenes.compose import compose_scene, load_face_pool
from maskwatch.vision.detect import Detection
from tests.conftest import DATA, need_shared
from tests.frames import scenes

MIN_IOU = 0.9  # a box of one detector and its match in the other overlap at least this much...
MAX_SCORE_GAP = 0.02  # ...and score within this of each other


def scene_images(size: tuple[int, int], n: int, seed: int) -> list[np.ndarray]:
    """``n`` frames of ``size``: half from tests/frames.py's scenes (4 faces), half busier (6 smaller faces)."""
    data = need_shared(DATA / "facemask12k" / "test")
    images = [s.image for s in scenes(data, n - n // 2, seed=seed, faces=4, face_px=(20, 64), size=size)]
    rng = np.random.default_rng(seed)
    pool = load_face_pool(data, 16, rng)
    images += [compose_scene(pool, rng, size=size, faces=6, face_px=(14, 48)).image for _ in range(n // 2)]
    return images


def iou(a: Sequence[float], b: Sequence[float]) -> float:
    x0, y0 = max(a[0], b[0]), max(a[1], b[1])
    x1, y1 = min(a[0] + a[2], b[0] + b[2]), min(a[1] + a[3], b[1] + b[3])
    inter = max(0.0, x1 - x0) * max(0.0, y1 - y0)
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


def assert_same_faces(expected: Sequence[Sequence[Detection]], got: Sequence[Sequence[Detection]],
                      min_iou: float = MIN_IOU, max_gap: float = MAX_SCORE_GAP) -> int:
    """Per frame, as many faces, each matched one-to-one with IoU >= ``min_iou`` and a score within ``max_gap``.

    Returns the number of faces compared, so a caller can check there were some.
    """
    assert len(expected) == len(got)
    for i, (want, have) in enumerate(zip(expected, got)):
        assert len(have) == len(want), f"frame {i}: {len(have)} faces, expected {len(want)}: {have} vs {want}"
        free = list(have)
        for d in want:
            best = max(free, key=lambda e: iou(d.box, e.box))
            assert iou(d.box, best.box) >= min_iou, f"frame {i}: {d} found as {best}"
            assert abs(d.confidence - best.confidence) <= max_gap, f"frame {i}: {d} scored {best.confidence}"
            free.remove(best)
    return sum(len(w) for w in expected)
