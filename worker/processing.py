"""Turn a batch of stream entries into outcomes: decode, detect, track, classify once, pick events.

Faces are searched in a frame's motion regions, or in the whole frame for keyframes. With
tracking (:mod:`worker.tracks`), a face is classified only when its track asks for a look, and
labelled with its track's vote; without, every face of every frame is classified. Either way the
crops of the whole batch go through the classifier in one forward pass.

Entries that the codec refuses, or whose JPEG decodes to another size than its header said, come
back as failures (entry, error) for the dead-letter stream; they never stop the rest of the batch.
An entry must name the camera of the stream it was read from, so a frame is only ever counted for
the registered camera whose stream the worker holds.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import Executor
from dataclasses import dataclass, field

import numpy as np

from maskwatch.cameras import CameraConfig
from maskwatch.codec import Event, Face, Frame, Result, decode_frame
from maskwatch.exceptions import DecodeError, MessageError
from maskwatch.settings import Settings
from maskwatch.utils import now_ms
from maskwatch.vision.detect import Detection, Region
from maskwatch.vision.jpeg import decode_jpeg
from maskwatch.vision.motion import merge_regions
from maskwatch.vision.pipeline import FrameSpec, Pipeline
from maskwatch.vision.privacy import Privacy
from maskwatch.vision.violations import find_violation, snapshot
from worker.commit import Outcome
from worker.consumer import Entry
from worker.tracks import CameraTracks, Tracked

log = logging.getLogger(__name__)


@dataclass
class BatchOutput:
    outcomes: list[Outcome] = field(default_factory=list)
    failures: list[tuple[Entry, MessageError]] = field(default_factory=list)
    # per camera, the newest frame with its faces, for the live view
    newest: dict[str, tuple[Frame, np.ndarray, list[Face]]] = field(default_factory=dict)
    privacy: dict[str, Privacy] = field(default_factory=dict)  # per camera of the batch
    crops: int = 0  # faces classified
    detect_s: float = 0.0
    infer_s: float = 0.0


def _decode(entry: Entry) -> tuple[Frame, np.ndarray]:
    """The frame (every field bounded, its size matched against its JPEG's header) and its pixels."""
    frame = decode_frame(entry.fields, cam=entry.cam)
    try:
        image = decode_jpeg(frame.jpg)
    except DecodeError as exc:
        raise MessageError("frame", "jpg", f"is not a decodable JPEG ({exc})") from None
    if image.shape[:2] != (frame.h, frame.w):
        raise MessageError("frame", "jpg", f"decoded to {image.shape[1]}x{image.shape[0]}, "
                                           f"not the declared {frame.w}x{frame.h}")
    return frame, image


class Processor:
    """Runs one batch through the pipeline; keeps per-camera throttles local to avoid needless snapshot work."""

    def __init__(self, pipeline: Pipeline, worker_id: str, s: Settings, executor: Executor | None = None,
                 tracks: CameraTracks | None = None):
        self.pipeline, self.worker_id, self.s, self.executor, self.tracks = pipeline, worker_id, s, executor, tracks
        self.throttle_ms = int(s.event_throttle_s * 1000)
        self._last_event: dict[str, int] = {}

    def process(self, entries: list[Entry], cameras: dict[str, CameraConfig]) -> BatchOutput:
        out = BatchOutput()
        decoded: list[tuple[Entry, Frame, np.ndarray]] = []
        t0 = time.perf_counter()
        mapper = self.executor.map if self.executor is not None else map
        for entry, got in zip(entries, mapper(_try_decode, entries)):
            if isinstance(got, MessageError):
                out.failures.append((entry, got))
            else:
                decoded.append((entry, *got))
        specs = [FrameSpec.for_camera(cameras.get(f.cam)) for _, f, _ in decoded]
        privacy = {cam: Privacy.for_camera(self.s, cameras.get(cam)) for cam in {f.cam for _, f, _ in decoded}}
        out.privacy = privacy
        regions = [self._regions(frame) for _, frame, _ in decoded]
        detections = list(mapper(self._detect, decoded, specs, regions))
        t1 = time.perf_counter()
        if self.tracks is not None:
            tracked, out.crops = self.tracks.label([(f, img, dets) for (_, f, img), dets in zip(decoded, detections)],
                                                   privacy)
        else:
            tracked, out.crops = self._classify_all(decoded, detections), sum(len(d) for d in detections)
        out.detect_s, out.infer_s = t1 - t0, time.perf_counter() - t1  # decode + detect; track + classify
        done = now_ms()
        for (entry, frame, image), t in zip(decoded, tracked):
            result = Result(cam=frame.cam, seq=frame.seq, ts=frame.ts, done_ts=done, faces=t.faces,
                            worker=self.worker_id)
            # With tracking, a violation is a person (one event when they leave); without, a throttled frame.
            event, snap = (None, b"") if self.tracks is not None else self._event(frame, image, result,
                                                                                   privacy[frame.cam])
            out.outcomes.append(Outcome(entry.id, result, event, snap, t.state, t.people, privacy[frame.cam]))
            newest = out.newest.get(frame.cam)
            if newest is None or frame.seq > newest[0].seq:
                out.newest[frame.cam] = (frame, image, t.faces)
        return out

    def _regions(self, frame: Frame) -> list[Region] | None:
        """Where to search a frame: None (whole) for a keyframe; else its motion regions and, with tracking,
        where the camera's tracks were last seen, so a person standing still while others walk is searched
        in every frame sent, not only in keyframes (bench/quality_walking.py measured it)."""
        if frame.key:
            return None
        tracker = self.tracks.tracker(frame.cam) if self.tracks is not None else None
        if tracker is None or not tracker.tracks:
            return list(frame.regions)
        return merge_regions([*frame.regions, *(t.box for t in tracker.tracks.values())])

    def _detect(self, item: tuple[Entry, Frame, np.ndarray], spec: FrameSpec,
                regions: list[Region] | None) -> list[Detection]:
        return self.pipeline.detect(item[2], spec, regions, unsure=self.tracks is not None)

    def _classify_all(self, decoded: list[tuple[Entry, Frame, np.ndarray]],
                      detections: list[list[Detection]]) -> list[Tracked]:
        """Today's path without tracking: every face of every frame classified, in one forward pass."""
        crops = [self.pipeline.crop(img, d.box) for (_, _, img), dets in zip(decoded, detections) for d in dets]
        probs = iter(self.pipeline.p_without(crops).tolist())
        return [Tracked([self.pipeline.label(d.box, next(probs)) for d in dets], "") for dets in detections]

    def _event(self, frame: Frame, image: np.ndarray, result: Result, privacy: Privacy) -> tuple[Event | None, bytes]:
        violation = find_violation(result.faces)
        if violation is None or frame.ts - self._last_event.get(frame.cam, -self.throttle_ms) < self.throttle_ms:
            return None, b""
        self._last_event[frame.cam] = frame.ts
        worst = violation.worst
        event = Event(cam=frame.cam, seq=frame.seq, ts=frame.ts, score=worst.score, box=worst.box,
                      snap=f"{frame.cam}-{frame.ts}-{frame.seq}")
        if privacy.store == "none":
            return event, b""
        return event, snapshot(privacy.snapshot(image, result.faces, worst.box), result.faces)


def _try_decode(entry: Entry) -> tuple[Frame, np.ndarray] | MessageError:
    try:
        return _decode(entry)
    except MessageError as exc:
        return exc
