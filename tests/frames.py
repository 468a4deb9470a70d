"""Test helpers: scenes with known faces turned into frame entries on a camera's frames stream."""

from __future__ import annotations

import time
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import redis

from bench.scenes.compose import Scene, compose_scene, load_face_pool
from maskwatch.cameras import CameraConfig, Registry
from maskwatch.codec import Frame, encode_frame
from maskwatch.keys import Keys
from maskwatch.vision.jpeg import encode_jpeg
from maskwatch.vision.motion import GateDecision, MotionDetector, MotionGate


def scenes(data_dir: Path, n: int, seed: int = 0, faces: int = 4, face_px: tuple[int, int] = (48, 64),
           size: tuple[int, int] = (640, 360)) -> list[Scene]:
    """``n`` scenes, each with ``faces`` faces alternating with_mask / without_mask."""
    rng = np.random.default_rng(seed)
    pool = load_face_pool(data_dir, 24, rng)
    labels = ["with_mask", "without_mask"] * faces
    return [compose_scene(pool, rng, size=size, faces=faces, face_px=face_px, labels=labels[:faces]) for _ in range(n)]


def register(r: redis.Redis, keys: Keys, cam: str) -> None:
    """Register ``cam`` (workers analyse registered cameras only); no producer runs in these tests."""
    registry = Registry(r, keys)
    if registry.get(cam) is None:
        registry.put(CameraConfig(id=cam, url=f"{cam}.mp4"))


def push_frames(r: redis.Redis, keys: Keys, cam: str, images: list[np.ndarray], start_seq: int = 0) -> list[str]:
    """Register ``cam`` and XADD each image as a keyframe of it with capture time now; returns the entry ids."""
    register(r, keys, cam)
    ids = []
    for i, img in enumerate(images):
        h, w = img.shape[:2]
        f = Frame(cam=cam, seq=start_seq + i, ts=int(time.time() * 1000), w=w, h=h, jpg=encode_jpeg(img, 90))
        ids.append(r.xadd(keys.frames(cam), encode_frame(f)).decode())
    return ids


def push_gated(r: redis.Redis, keys: Keys, cam: str, frames: Iterable[tuple[int, int, np.ndarray]],
               start_ms: int, keyframe_s: float = 2.0) -> tuple[int, int]:
    """Push ``(seq, ts_ms, image)`` frames as a producer with motion gating would: keyframes, motion
    frames with their regions, idle frames left out. Capture times are ``start_ms + ts_ms``.
    Returns (frames sent, frames idle)."""
    register(r, keys, cam)
    detector, gate = MotionDetector(), MotionGate(keyframe_s)
    sent = idle = 0
    for seq, ts_ms, image in frames:
        motion = detector.update(image)
        decision = gate.decide(start_ms + ts_ms, motion)
        if decision is GateDecision.IDLE:
            idle += 1
            continue
        h, w = image.shape[:2]
        key = decision is GateDecision.KEYFRAME
        f = Frame(cam=cam, seq=seq, ts=start_ms + ts_ms, w=w, h=h, jpg=encode_jpeg(image, 90), key=key,
                  regions=() if key else tuple(motion.regions))
        r.xadd(keys.frames(cam), encode_frame(f))
        sent += 1
    return sent, idle


def totals(r: redis.Redis, keys: Keys, cam: str) -> dict[str, int]:
    return {k.decode(): int(v) for k, v in r.hgetall(keys.totals(cam)).items()}
