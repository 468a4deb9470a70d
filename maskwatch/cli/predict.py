"""`maskwatch predict PATH`: images, a folder of images or a video through the same pipeline as the worker.

``--json`` prints one object per image or frame::

    {"source": "lobby.mp4", "frame": 12, "faces": [{"box": [x, y, w, h], "label": "without_mask", "score": 0.97}]}

``-o`` writes annotated copies: a folder for images, a video file for a video.

Without ``--json``, the summary (faces, with and without a mask) is the output, on stdout. An
image that cannot be read is named on stderr and skipped; when nothing could be read at all, the
command fails (status 2) naming the inputs.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from maskwatch.codec import Face
from maskwatch.exceptions import InputError
from maskwatch.settings import Settings
from maskwatch.vision.annotate import annotate
from maskwatch.vision.media import MediaItem, sources
from maskwatch.vision.pipeline import Pipeline


def _batches(items: Iterator[MediaItem], size: int) -> Iterator[list[MediaItem]]:
    batch: list[MediaItem] = []
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
    unreadable: list[str] = []
    read = 0
    counts = {"with_mask": 0, "without_mask": 0}
    bar = tqdm(total=total, unit="frame" if is_video else "image", disable=None, file=sys.stderr)
    for batch in _batches(items, max(1, s.batch_size)):
        good = [(src, idx, img) for src, idx, img in batch if img is not None]
        for src, _, img in batch:
            if img is None:
                unreadable.append(src)
                print(f"maskwatch predict: {src}: cannot be read as an image (not an image, or corrupt); skipped",
                      file=sys.stderr)
        read += len(good)
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
    if not read:
        names = ", ".join(unreadable[:3]) + (f" and {len(unreadable) - 3} more" if len(unreadable) > 3 else "")
        raise InputError(f"nothing could be read: {names} {'is' if len(unreadable) == 1 else 'are'} not a readable "
                         "image; give images (jpg, png, ...), a folder of them or a video")
    seen = counts["with_mask"] + counts["without_mask"]
    summary = f"{seen} face(s): {counts['with_mask']} with mask, {counts['without_mask']} without"
    if seen:
        summary += f" (compliance {counts['with_mask'] / seen:.0%})"
    summary += f"; {len(unreadable)} unreadable file(s) skipped" if unreadable else ""
    print(summary, file=sys.stderr if as_json else sys.stdout)
    return 0


def _write(out: Path, src: str, img: np.ndarray, faces: list[Face], is_video: bool,
           writer: cv2.VideoWriter | None) -> cv2.VideoWriter | None:
    drawn = annotate(img, faces)
    if not is_video:
        cv2.imwrite(str(out / Path(src).name), drawn)
        return None
    if writer is None:
        out.parent.mkdir(parents=True, exist_ok=True)
        fourcc = cv2.VideoWriter.fourcc(*("MJPG" if out.suffix.lower() == ".avi" else "mp4v"))
        cap = cv2.VideoCapture(src)
        fps = cap.get(cv2.CAP_PROP_FPS) or 10.0
        cap.release()
        writer = cv2.VideoWriter(str(out), fourcc, fps, (img.shape[1], img.shape[0]))
    writer.write(drawn)
    return writer
