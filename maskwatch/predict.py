"""`maskwatch predict PATH`: images, a folder of images or a video through the same pipeline as the worker.

``--json`` prints one object per image or frame::

    {"source": "lobby.mp4", "frame": 12, "faces": [{"box": [x, y, w, h], "label": "without_mask", "score": 0.97}]}

``-o`` writes annotated copies: a folder for images, a video file for a video.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from maskwatch.codec import Face
from maskwatch.settings import Settings
from maskwatch.vision.annotate import annotate
from maskwatch.vision.pipeline import IMAGE_SUFFIXES, Pipeline

log = logging.getLogger(__name__)


class InputError(ValueError):
    """A path that is not an image, a folder of images or a readable video."""


def _images(paths: list[Path]) -> Iterator[tuple[str, int, np.ndarray | None]]:
    for p in paths:
        yield str(p), 0, cv2.imread(str(p), cv2.IMREAD_COLOR)


def _video(path: Path, every: int) -> Iterator[tuple[str, int, np.ndarray | None]]:
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


def sources(path: Path, every: int = 1) -> tuple[Iterator[tuple[str, int, np.ndarray | None]], int | None, bool]:
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


def _batches(items: Iterator[tuple[str, int, np.ndarray | None]], size: int) -> Iterator[list[tuple[str, int, np.ndarray | None]]]:
    batch: list[tuple[str, int, np.ndarray | None]] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def main(s: Settings, path: Path, as_json: bool = False, out: Path | None = None, every: int = 1) -> int:
    items, total, is_video = sources(Path(path), max(1, every))
    pipeline = Pipeline.from_settings(s)
    writer: cv2.VideoWriter | None = None
    if out is not None and not is_video:
        out.mkdir(parents=True, exist_ok=True)
    unreadable = 0
    counts = {"with_mask": 0, "without_mask": 0}
    bar = tqdm(total=total, unit="frame" if is_video else "image", disable=None, file=sys.stderr)
    for batch in _batches(items, max(1, s.batch_size)):
        good = [(src, idx, img) for src, idx, img in batch if img is not None]
        for src, _, img in batch:
            if img is None:
                unreadable += 1
                log.warning("%s: not a readable image; skipped", src)
        faces_per = pipeline.analyze([img for _, _, img in good])
        for (src, idx, img), faces in zip(good, faces_per):
            for f in faces:
                counts[f.label] += 1
            if as_json:
                print(json.dumps({"source": src, "frame": idx, "faces": [f.to_json() for f in faces]}), flush=True)
            if out is not None:
                writer = _write(out, src, img, faces, is_video, writer)
        bar.update(len(batch))
    bar.close()
    if writer is not None:
        writer.release()
    seen = counts["with_mask"] + counts["without_mask"]
    summary = f"{seen} face(s): {counts['with_mask']} with mask, {counts['without_mask']} without"
    if seen:
        summary += f" (compliance {counts['with_mask'] / seen:.0%})"
    print(summary + (f"; {unreadable} unreadable file(s) skipped" if unreadable else ""), file=sys.stderr)
    return 0


def _write(out: Path, src: str, img: np.ndarray, faces: list[Face], is_video: bool,
           writer: cv2.VideoWriter | None) -> cv2.VideoWriter | None:
    drawn = annotate(img, faces)
    if not is_video:
        cv2.imwrite(str(out / Path(src).name), drawn)
        return None
    if writer is None:
        out.parent.mkdir(parents=True, exist_ok=True)
        fourcc = cv2.VideoWriter_fourcc(*("MJPG" if out.suffix.lower() == ".avi" else "mp4v"))
        cap = cv2.VideoCapture(src)
        fps = cap.get(cv2.CAP_PROP_FPS) or 10.0
        cap.release()
        writer = cv2.VideoWriter(str(out), fourcc, fps, (img.shape[1], img.shape[0]))
    writer.write(drawn)
    return writer
