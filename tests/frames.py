"""Test helpers: scenes with known faces turned into frame entries on the frames stream."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import redis

from maskwatch.codec import Frame, encode_frame
from maskwatch.keys import Keys
from bench.scenes.compose import Scene, compose_scene, load_face_pool
from maskwatch.vision.pipeline import encode_jpeg


def scenes(data_dir: Path, n: int, seed: int = 0, faces: int = 4, face_px: tuple[int, int] = (48, 64),
           size: tuple[int, int] = (640, 360)) -> list[Scene]:
    """``n`` scenes, each with ``faces`` faces alternating with_mask / without_mask."""
    rng = np.random.default_rng(seed)
    pool = load_face_pool(data_dir, 24, rng)
    labels = ["with_mask", "without_mask"] * faces
    return [compose_scene(pool, rng, size=size, faces=faces, face_px=face_px, labels=labels[:faces]) for _ in range(n)]


def push_frames(r: redis.Redis, keys: Keys, cam: str, images: list[np.ndarray], start_seq: int = 0) -> list[str]:
    """XADD each image as a frame of ``cam`` with capture time now; returns the entry ids."""
    ids = []
    for i, img in enumerate(images):
        h, w = img.shape[:2]
        f = Frame(cam=cam, seq=start_seq + i, ts=int(time.time() * 1000), w=w, h=h, jpg=encode_jpeg(img, 90))
        ids.append(r.xadd(keys.frames, encode_frame(f)).decode())
    return ids


def totals(r: redis.Redis, keys: Keys, cam: str) -> dict[str, int]:
    return {k.decode(): int(v) for k, v in r.hgetall(keys.totals(cam)).items()}


def wait_for(predicate, timeout: float = 30.0, every: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(every)
    return predicate()
