"""What `maskwatch analyze` accepts: one video file, known by its content rather than its name.

Checked before the job is queued, so a folder, an image or a text file is refused at once with
what to pass instead, not by a job that fails later.
"""

from __future__ import annotations

from pathlib import Path

import cv2

from maskwatch.exceptions import InputError

HEAD_BYTES = 4096  # what is read to tell text from binary


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
