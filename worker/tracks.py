"""Track the faces of the held cameras and classify them when it pays (docs/architecture.md, "Keyed by camera").

One :class:`~maskwatch.vision.tracking.FaceTracker` per held camera, fed that camera's frames in
capture order. A face is classified only when its track asks for a look (new, markedly larger or
sharper than before, or not looked at lately); every face is labelled with its track's vote. All
looks of a batch, over all cameras, go through the classifier in one forward pass.

The tracker state after each frame goes into that frame's commit (JSON, never pickle), so the
camera's next worker resumes where the last committed frame left it: a hand-over loses nothing
and counts nothing twice.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import redis

from maskwatch.codec import Face, Frame
from maskwatch.keys import Keys
from maskwatch.vision.detect import Detection
from maskwatch.vision.pipeline import Pipeline
from maskwatch.vision.tracking import FaceTracker, LookPolicy, Track, TrackedFace, sharpness

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Tracked:
    """One frame of a batch through the tracker: its labelled faces and the tracker state after it."""

    faces: list[Face]
    state: str  # JSON


@dataclass
class _Look:
    track: Track
    crop: np.ndarray
    px: float
    sharpness: float
    ts: int
    box: tuple[int, int, int, int]


class CameraTracks:
    """The trackers of the cameras this worker holds, loaded from their checkpoints when first needed."""

    def __init__(self, r: redis.Redis, keys: Keys, pipeline: Pipeline, max_age_ms: int, relook_ms: int,
                 threshold: float):
        self.r, self.keys, self.pipeline = r, keys, pipeline
        self.settings: dict[str, Any] = {"max_age_ms": max_age_ms,
                                         "policy": LookPolicy(relook_ms=relook_ms, threshold=threshold)}
        self.trackers: dict[str, FaceTracker] = {}

    def forget(self, cam: str) -> None:
        """Drop a camera's tracker (it moved to another worker, or this one's copy went stale)."""
        self.trackers.pop(cam, None)

    def tracker(self, cam: str) -> FaceTracker:
        """The camera's tracker: in memory, else restored from its checkpoint, else new."""
        if cam not in self.trackers:
            raw = self.r.get(self.keys.tracks(cam))
            tracker = FaceTracker(**self.settings)
            if raw:
                try:
                    tracker = FaceTracker.from_state(json.loads(raw), **self.settings)
                except ValueError as exc:  # not JSON, or TrackerStateError: a malformed or older state
                    log.warning("tracker checkpoint unusable (%s); the camera's tracks start afresh", exc,
                                extra={"cam": cam})
            self.trackers[cam] = tracker
        return self.trackers[cam]

    def label(self, frames: list[tuple[Frame, np.ndarray, list[Detection]]]) -> tuple[list[Tracked], int]:
        """Each frame's faces, labelled by their tracks, and its tracker state; and the number of crops classified.

        Frames are taken per camera in capture order. A track gets at most one look a batch. The
        state of a camera's last frame of the batch includes the batch's looks; an earlier frame's
        state has the tracks of that frame and the looks of earlier batches, which is what a worker
        resuming after that frame needs to go on with the same ids.
        """
        order = sorted(range(len(frames)), key=lambda i: (frames[i][0].cam, frames[i][0].seq))
        tracked: list[list[TrackedFace]] = [[] for _ in frames]
        states = [""] * len(frames)
        looks: list[_Look] = []
        asked: set[tuple[str, int]] = set()
        last: dict[str, int] = {}
        for i in order:
            frame, image, dets = frames[i]
            tracker = self.tracker(frame.cam)
            h, w = image.shape[:2]
            tracked[i] = tracker.update(frame.ts, dets, (w, h)).faces
            for tf in tracked[i]:
                crop = self.pipeline.crop(image, tf.box)
                px, sharp = float(max(tf.box[2], tf.box[3])), sharpness(crop)
                if (frame.cam, tf.track_id) not in asked and tf.track.needs_look(px, sharp, frame.ts):
                    asked.add((frame.cam, tf.track_id))
                    looks.append(_Look(tf.track, crop, px, sharp, frame.ts, tf.box))
            states[i] = json.dumps(tracker.to_state(), separators=(",", ":"))
            last[frame.cam] = i
        for look, p in zip(looks, self.pipeline.p_without([look.crop for look in looks]).tolist()):
            look.track.add_look(p, look.px, look.sharpness, look.ts, look.box)
        for cam, i in last.items():
            states[i] = json.dumps(self.trackers[cam].to_state(), separators=(",", ":"))
        out = [Tracked([_face(frame.cam, tf) for tf in faces], state)
               for (frame, _, _), faces, state in zip(frames, tracked, states)]
        return out, len(looks)


def _face(cam: str, tf: TrackedFace) -> Face:
    label, confidence = tf.track.vote()
    # Every track of a batch has a look by now (a new track always asks); a vote-less one is a bug upstream.
    if label is None:
        raise RuntimeError(f"track {cam}-{tf.track_id} has no look to vote on")
    return Face(box=tf.box, label=label, score=confidence, track=f"{cam}-{tf.track_id}")
