"""Reading images, folders of images and video files as (source, frame index, image) items.

Used by `maskwatch predict`, the offline analysis job and the evaluation, so they all read media
the same way.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from maskwatch.exceptions import InputError
from maskwatch.vision.pipeline import IMAGE_SUFFIXES

MediaItem = tuple[str, int, np.ndarray | None]


def _images(paths: list[Path]) -> Iterator[MediaItem]:
    for p in paths:
        yield str(p), 0, cv2.imread(str(p), cv2.IMREAD_COLOR)


def _video(path: Path, every: int) -> Iterator[MediaItem]:
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise InputError(f"{path}: OpenCV cannot open this video (corrupt, or a codec it lacks)")
    try:
        index = 0
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            if index % every == 0:
                yield str(path), index, frame
            index += 1
        if index == 0:
            raise InputError(f"{path}: no frame could be decoded; the file is corrupt or empty")
    finally:
        cap.release()


def sources(path: Path, every: int = 1) -> tuple[Iterator[MediaItem], int | None, bool]:
    """(source, frame index, image) items, their count if known, and whether the input is a video."""
    if not path.exists():
        raise InputError(f"{path} does not exist")
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise InputError(f"{path} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
        return _images(files), len(files), False
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return _images([path]), 1, False
    cap = cv2.VideoCapture(str(path))
    total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) if cap.isOpened() else 0
    cap.release()
    return _video(path, every), (total // every if total > 0 else None), True
