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
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import redis

from maskwatch.codec import Face, Frame
from maskwatch.keys import Keys
from maskwatch.settings import Settings
from maskwatch.vision.detect import Detection
from maskwatch.vision.pipeline import Pipeline
from maskwatch.vision.privacy import Privacy
from maskwatch.vision.tracking import EndedTrack, FaceTracker, LookPolicy, Track, TrackedFace, appearance, sharpness
from maskwatch.vision.violations import snapshot

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Person:
    """A track as one person: its record (the JSON of docs/architecture.md) and best-look snapshot.

    Made when the track ends or, for someone in view ``person_decide_s``, then; such a person's record
    is completed when they leave (``update``: written over, not counted again)."""

    cam: str
    n: int  # the track number: the person is f"{cam}-{n}"
    label: str
    record: dict[str, Any]
    snapshot: bytes  # b"" when none may be stored
    update: bool = False

    @property
    def id(self) -> str:
        return f"{self.cam}-{self.n}"

    @property
    def snap_id(self) -> str:
        return f"person-{self.id}"


@dataclass(frozen=True)
class Tracked:
    """One frame of a batch through the tracker: its labelled faces, the tracker state after it, who left."""

    faces: list[Face]
    state: str  # JSON
    people: list[Person] = field(default_factory=list)


@dataclass
class _Look:
    frame: int  # index in the batch
    track: Track
    crop: np.ndarray
    px: float
    sharpness: float
    ts: int
    box: tuple[int, int, int, int]


class CameraTracks:
    """The trackers of the cameras this worker holds, loaded from their checkpoints when first needed."""

    def __init__(self, r: redis.Redis, keys: Keys, pipeline: Pipeline, s: Settings):
        self.r, self.keys, self.pipeline = r, keys, pipeline
        self.settings: dict[str, Any] = {
            "max_age_ms": s.track_max_age_ms, "max_appearance": s.track_max_appearance, "unsure_ms": s.track_unsure_ms,
            "policy": LookPolicy(relook_ms=s.track_relook_ms, threshold=s.mask_threshold)}
        # A track seen in fewer frames is not a person: a false detection, or a face glimpsed at the edge.
        self.min_frames = s.person_min_frames
        self.decide_ms = int(s.person_decide_s * 1000)
        self.trackers: dict[str, FaceTracker] = {}
        # Best-look snapshot of each live track, in memory only: whether it may be stored is known when
        # the person leaves (their voted label). A camera that moves loses these; its records do not.
        self.best: dict[tuple[str, int], bytes] = {}

    def forget(self, cam: str) -> None:
        """Drop a camera's tracker (it moved to another worker, or this one's copy went stale)."""
        self.trackers.pop(cam, None)
        self.best = {k: v for k, v in self.best.items() if k[0] != cam}

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

    def label(self, frames: list[tuple[Frame, np.ndarray, list[Detection]]],
              privacy: dict[str, Privacy]) -> tuple[list[Tracked], int]:
        """Each frame's faces labelled by their tracks, its tracker state and the people who left in it;
        and the number of crops classified. ``privacy``: each camera's (what snapshots may be made).

        Frames are taken per camera in capture order. A track gets at most one look a batch. The
        state of a camera's last frame of the batch includes the batch's looks; an earlier frame's
        state has the tracks of that frame and the looks of earlier batches, which is what a worker
        resuming after that frame needs to go on with the same ids.
        """
        order = sorted(range(len(frames)), key=lambda i: (frames[i][0].cam, frames[i][0].seq))
        tracked: list[list[TrackedFace]] = [[] for _ in frames]
        left: list[list[Track]] = [[] for _ in frames]
        states = [""] * len(frames)
        counted: list[list[Person]] = [[] for _ in frames]  # people counted while in view, in this frame
        looks: list[_Look] = []
        asked: set[tuple[str, int]] = set()
        last: dict[str, int] = {}
        for i in order:
            frame, image, dets = frames[i]
            tracker = self.tracker(frame.cam)
            h, w = image.shape[:2]
            alive = dict(tracker.tracks)
            crops = [self.pipeline.crop(image, d.box) for d in dets]
            update = tracker.update(frame.ts, dets, (w, h), [appearance(c) for c in crops])
            tracked[i] = update.faces
            left[i] = [alive[e.track_id] for e in update.ended if e.track_id in alive]
            for tf in tracked[i]:  # the detections that are faces of tracks (unsure ones continuing no track left)
                if dets[tf.index].unsure:  # its box may cut the face badly: it keeps the track, the sure ones vote
                    continue
                crop = crops[tf.index]
                px, sharp = float(max(tf.box[2], tf.box[3])), sharpness(crop)
                if (frame.cam, tf.track_id) not in asked and tf.track.needs_look(px, sharp, frame.ts):
                    asked.add((frame.cam, tf.track_id))
                    looks.append(_Look(i, tf.track, crop, px, sharp, frame.ts, tf.box))
            counted[i] = self._count_in_view(frame.cam, privacy[frame.cam])
            states[i] = json.dumps(tracker.to_state(), separators=(",", ":"))
            last[frame.cam] = i
        best_before = {id(look.track): look.track.best_look for look in looks}
        for look, p in zip(looks, self.pipeline.p_without([look.crop for look in looks]).tolist()):
            look.track.add_look(p, look.px, look.sharpness, look.ts, look.box)
        faces = [[_face(frame.cam, tf) for tf in found] for (frame, _, _), found in zip(frames, tracked)]
        for look in looks:  # a look that became its track's best: keep the picture, until the person leaves
            cam = frames[look.frame][0].cam
            if look.track.best_look is not best_before[id(look.track)] and privacy[cam].store != "none":
                image = privacy[cam].snapshot(frames[look.frame][1], faces[look.frame], look.box)
                self.best[(cam, look.track.id)] = snapshot(image, faces[look.frame])
        people = [[self._person(frame.cam, t, privacy[frame.cam], left=True) for t in gone
                   if self.is_person(t.n_looks, t.frames)] + early
                  for (frame, _, _), gone, early in zip(frames, left, counted)]
        for cam, i in last.items():  # with this batch's looks: tracks first looked at now may be due too
            people[i] += self._count_in_view(cam, privacy[cam])
            states[i] = json.dumps(self.trackers[cam].to_state(), separators=(",", ":"))
        return [Tracked(*t) for t in zip(faces, states, people)], len(looks)

    def is_person(self, looks: int, frames: int) -> bool:
        """Whether a track that ended counts as a person: looked at, and seen in enough frames."""
        return looks > 0 and frames >= self.min_frames

    def _count_in_view(self, cam: str, privacy: Privacy) -> list[Person]:
        """The camera's live tracks in view ``person_decide_s`` and not yet counted, counted now (a frame's state
        written after this says so: a worker resuming from it does not count them again)."""
        out = []
        for track in self.trackers[cam].tracks.values():
            if (self.decide_ms > 0 and track.counted is None and track.last_ts - track.first_ts >= self.decide_ms
                    and self.is_person(track.n_looks, track.frames)):
                out.append(self._person(cam, track, privacy, left=False))
                track.counted, track.counted_snap = out[-1].label, out[-1].record["snap"]
        return out

    def _person(self, cam: str, track: Track, privacy: Privacy, left: bool) -> Person:
        """The track as a person who ``left``, or who is still in view and counted now."""
        ended = EndedTrack.of(track)
        # Only tracks with looks become people: the vote is there. One counted in view keeps the label it was
        # counted with; the confidence stays that of this label.
        label = track.counted or ended.label or "with_mask"
        confidence = ended.confidence if ended.label == label else 1.0 - ended.confidence
        snap = self.best.pop((cam, track.id), b"") if left else self.best.get((cam, track.id), b"")
        keep = bool(snap) and privacy.may_keep(label)
        # Without a picture in memory (the camera moved since), the one stored when they were counted stays.
        record = {"id": f"{cam}-{track.id}", "cam": cam, "first_ts": ended.first_ts, "last_ts": ended.last_ts,
                  "duration_ms": ended.last_ts - ended.first_ts, "frames": ended.frames, "looks": ended.looks,
                  "label": label, "confidence": round(confidence, 4), "best_ts": ended.best_ts,
                  "best_box": list(ended.best_box) if ended.best_box else None,
                  "snap": f"person-{cam}-{track.id}" if keep else track.counted_snap}
        return Person(cam, track.id, label, record, snap if keep else b"", update=track.counted is not None)


def _face(cam: str, tf: TrackedFace) -> Face:
    label, confidence = tf.track.vote()
    # Every track of a batch has a look by now (a new track always asks); a vote-less one is a bug upstream.
    if label is None:
        raise RuntimeError(f"track {cam}-{tf.track_id} has no look to vote on")
    return Face(box=tf.box, label=label, score=confidence, track=f"{cam}-{tf.track_id}")
