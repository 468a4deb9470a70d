"""Turn a batch of stream entries into outcomes: decode, run the vision pipeline once, pick events.

Entries that cannot be decoded come back as failures (entry, reason) for the dead-letter stream;
they never stop the rest of the batch.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import Executor
from dataclasses import dataclass, field

import cv2
import numpy as np

from maskwatch.cameras import CameraConfig
from maskwatch.codec import Event, Face, Frame, MessageError, Result, decode_frame
from maskwatch.vision.annotate import annotate
from maskwatch.vision.pipeline import DecodeError, FrameSpec, Pipeline, decode_jpeg, encode_jpeg
from worker.commit import Outcome, now_ms
from worker.consumer import Entry

log = logging.getLogger(__name__)
SNAPSHOT_MAX_WIDTH = 960


@dataclass
class BatchOutput:
    outcomes: list[Outcome] = field(default_factory=list)
    failures: list[tuple[Entry, str]] = field(default_factory=list)
    newest: dict[str, tuple[Frame, np.ndarray, list[Face]]] = field(default_factory=dict)  # per camera, for the live view
    crops: int = 0
    detect_s: float = 0.0
    infer_s: float = 0.0


def _decode(entry: Entry) -> tuple[Frame, np.ndarray]:
    frame = decode_frame(entry.fields)
    try:
        return frame, decode_jpeg(frame.jpg)
    except DecodeError as exc:
        raise MessageError("frame", "jpg", f"is not a decodable JPEG ({exc})") from None


def _shrink(image: np.ndarray, max_width: int) -> np.ndarray:
    h, w = image.shape[:2]
    if w <= max_width:
        return image
    return cv2.resize(image, (max_width, round(h * max_width / w)), interpolation=cv2.INTER_AREA)


class Processor:
    """Runs one batch through the pipeline; keeps per-camera throttles local to avoid needless snapshot work."""

    def __init__(self, pipeline: Pipeline, worker_id: str, throttle_s: float, executor: Executor | None = None):
        self.pipeline, self.worker_id, self.executor = pipeline, worker_id, executor
        self.throttle_ms = int(throttle_s * 1000)
        self._last_event: dict[str, int] = {}

    def process(self, entries: list[Entry], cameras: dict[str, CameraConfig]) -> BatchOutput:
        out = BatchOutput()
        decoded: list[tuple[Entry, Frame, np.ndarray]] = []
        t0 = time.perf_counter()
        mapper = self.executor.map if self.executor is not None else map
        for entry, got in zip(entries, mapper(_try_decode, entries)):
            if isinstance(got, str):
                out.failures.append((entry, got))
            else:
                decoded.append((entry, *got))
        specs = [_spec(cameras.get(f.cam)) for _, f, _ in decoded]
        timings: dict[str, float] = {}
        faces_per_frame = self.pipeline.analyze([img for _, _, img in decoded], specs, self.executor, timings)
        out.crops, out.infer_s = int(timings["crops"]), timings["infer_s"]
        out.detect_s = time.perf_counter() - t0 - out.infer_s  # decode + detect + crop
        done = now_ms()
        for (entry, frame, image), faces in zip(decoded, faces_per_frame):
            result = Result(cam=frame.cam, seq=frame.seq, ts=frame.ts, done_ts=done, faces=faces, worker=self.worker_id)
            event, snap = self._event(frame, image, result)
            out.outcomes.append(Outcome(entry.id, result, event, snap))
            newest = out.newest.get(frame.cam)
            if newest is None or frame.seq > newest[0].seq:
                out.newest[frame.cam] = (frame, image, faces)
        return out

    def _event(self, frame: Frame, image: np.ndarray, result: Result) -> tuple[Event | None, bytes]:
        bad = [f for f in result.faces if f.label == "without_mask"]
        if not bad or frame.ts - self._last_event.get(frame.cam, -self.throttle_ms) < self.throttle_ms:
            return None, b""
        self._last_event[frame.cam] = frame.ts
        worst = max(bad, key=lambda f: f.score)
        event_id = f"{frame.cam}-{frame.ts}-{frame.seq}"
        snapshot = encode_jpeg(_shrink(annotate(image, result.faces), SNAPSHOT_MAX_WIDTH), 80)
        return Event(cam=frame.cam, seq=frame.seq, ts=frame.ts, score=worst.score, box=worst.box, snap=event_id), snapshot


def _try_decode(entry: Entry) -> tuple[Frame, np.ndarray] | str:
    try:
        return _decode(entry)
    except MessageError as exc:
        return str(exc)


def _spec(cam: CameraConfig | None) -> FrameSpec:
    return FrameSpec(roi=cam.roi, min_face_px=cam.min_face_px) if cam else FrameSpec()
