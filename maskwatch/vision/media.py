"""Reading images, folders of images and video files as (source, frame index, image) items.

Used by `maskwatch predict`, the offline analysis job and the evaluation, so they all read media
the same way. :func:`check_video` tells what a file given as a video really is, by its content
rather than its name, for `maskwatch analyze` before it queues a job and for the job itself.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from maskwatch.exceptions import InputError
from maskwatch.vision.pipeline import IMAGE_SUFFIXES

MediaItem = tuple[str, int, np.ndarray | None]
HEAD_BYTES = 4096  # what check_video reads to tell text from binary


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


def check_video(path: Path) -> None:
    """Raise :class:`InputError` unless ``path`` is a video file OpenCV can decode a frame of."""
    if path.is_dir():
        raise InputError(f"{path} is a folder; `analyze` takes one video file, e.g. `maskwatch analyze "
                         f"{path / 'recording.mp4'}` (for a folder of images: `maskwatch predict {path}`)")
    if not path.exists():
        raise InputError(f"{path}: no such file; give the path of a recorded video")
    try:
        with path.open("rb") as f:
            head = f.read(HEAD_BYTES)
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}") from None
    if not head:
        raise InputError(f"{path} is empty; give a recorded video (mp4, avi, mkv, ...)")
    if cv2.haveImageReader(str(path)):  # by the file's signature, whatever its name
        raise InputError(f"{path} is an image, not a video; for images use `maskwatch predict {path}`")
    if _is_text(head):
        raise InputError(f"{path} is a text file, not a video; give a recorded video (mp4, avi, mkv, ...)")
    cap = cv2.VideoCapture(str(path))
    try:
        readable = cap.isOpened() and cap.read()[0]
    finally:
        cap.release()
    if not readable:
        raise InputError(f"{path} is not a video OpenCV can read (corrupt, or a format or codec it lacks)")


def _is_text(head: bytes) -> bool:
    """UTF-8 text without NUL bytes (a multi-byte character cut at the end of ``head`` allowed)."""
    if b"\0" in head:
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        return exc.start >= len(head) - 3 and len(head) == HEAD_BYTES
    return True
