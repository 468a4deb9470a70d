"""Helpers of the producer tests: producers in this process, test videos, reading what they wrote to Redis."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import cv2
import numpy as np
import redis

from maskwatch.codec import Frame, decode_frame
from maskwatch.keys import Keys
from maskwatch.settings import Settings
from producer.service import ProducerService

StartProducer = Callable[..., ProducerService]


@contextmanager
def producers(settings: Settings) -> Iterator[StartProducer]:
    """Start producers in this process with ``settings`` (overridable per producer); all stopped on exit."""
    started: list[ProducerService] = []

    def start(**overrides: object) -> ProducerService:
        service = ProducerService(settings.override(**overrides)).start()
        started.append(service)
        return service

    try:
        yield start
    finally:
        for service in started:
            service.stop()


def make_video(path: Path, seconds: float, fps: float = 25.0, size: tuple[int, int] = (320, 240)) -> Path:
    """An MJPG .avi of ``seconds`` at ``fps``: a bar that moves, so consecutive frames differ."""
    w, h = size
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (w, h))
    assert writer.isOpened(), f"OpenCV cannot write {path}"
    for i in range(round(seconds * fps)):
        img = np.full((h, w, 3), 60, np.uint8)
        x = (i * 7) % w
        img[:, x:x + 10] = (0, 200, 255)
        writer.write(img)
    writer.release()
    return path


def frames(r: redis.Redis, keys: Keys, cam: str) -> list[Frame]:
    """Every frame on the camera's stream, decoded, oldest first."""
    return [decode_frame(fields) for _, fields in r.xrange(keys.frames(cam))]


def status(r: redis.Redis, keys: Keys, cam: str) -> dict[str, str]:
    return {k.decode(): v.decode() for k, v in r.hgetall(keys.cam_status(cam)).items()}


def lease_owners(r: redis.Redis, keys: Keys, cams: list[str]) -> dict[str, str | None]:
    return {cam: (v.decode() if (v := r.get(keys.lease(cam))) else None) for cam in cams}
