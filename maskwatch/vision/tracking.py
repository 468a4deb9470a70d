"""Per-camera face tracking, and when a tracked face is worth classifying again.

The worker feeds one :class:`FaceTracker` per camera with that camera's detections, frame by frame
in capture order; each face comes back with a track id that stays the same while the person stays
in view, so a face is classified only when that pays (:meth:`Track.needs_look`) and its label is
voted from its best looks (:meth:`Track.vote`), as DeepStream runs its secondary classifier on
tracked objects. A track not seen for ``max_age_ms`` (or carried out of the frame) ends and is
reported once, as the material of a person record (docs/architecture.md, "Detect, track, classify
when it pays").

Why a tracker of our own rather than norfair, supervision's ByteTrack or motpy (``python -m
bench.tracking`` measures them side by side): a camera moves between workers, so its tracker state
is checkpointed in Redis with each commit and must restore in another process with the same ids.
:meth:`FaceTracker.to_state` is plain JSON (Redis content is never unpickled); the libraries keep
their state in objects (filters, class-level id counters) that only pickle restores. Their
frame-count clocks also do not fit motion-gated cameras, whose frames come with gaps.

Motion model. Each track is a constant-velocity Kalman filter on the face's centre and size
(``sqrt(w * h)``), with its noise in face sizes, so a 16 px and an 80 px face behave alike. At 5 fps
a walking person's small face moves more than its own width between frames, so boxes of
consecutive frames rarely overlap and IoU matching loses them: a detection goes to the track whose
prediction explains it best (Mahalanobis distance; cost the negative log-likelihood, so a
well-known track beats a vague one), cheapest first, within ``max_jump`` face sizes. What no
prediction explains but lies where an unmatched track was last seen is that person, who stopped:
people stop quicker than a constant-velocity filter follows. Motion gating sends nothing while
nothing moves, so a gap of more than ``still_gap_ms`` means everyone stood still: the tracks wait
where they were seen instead of coasting on. Given the frame size, a track carried out of the frame
ends, so it cannot catch the next person coming in where it left.

Unsure detections (:class:`~maskwatch.vision.detect.Detection` ``unsure``: candidates under the
face threshold) come second, as in ByteTrack: they may continue a track that no sure detection of
the frame continued and that a sure detection saw within ``unsure_ms``, and never start one. YuNet
scores a masked face under its threshold in most frames of a walk, so without them such a person
is seen in two or three frames and split or lost; the time limit keeps a track from living on a
patch of clutter after its person left. (The worker classifies only sure sightings: worker/tracks.py.)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import cv2
import numpy as np

from maskwatch.vision.detect import Detection

STATE_VERSION = 1

# Motion model, in face sizes (s = sqrt(w * h), about 0.2 m) and seconds: a walking person's face crosses
# 5-8 face sizes a second. The values did best when swept on bench/tracking.py's walking scenes.
ACCEL = np.array([3.0, 3.0, 0.5])  # std of acceleration of (cx, cy, s), face sizes / s^2
MEAS_NOISE = np.array([0.1, 0.1, 0.1])  # std of a detection's centre and size, face sizes
INIT_SPEED = np.array([4.0, 4.0, 0.2])  # std of a new track's unknown velocity, face sizes / s
GATE = 16.27  # chi-square with 3 degrees of freedom at 99.9 %: beyond it a detection is not this track's
STILL_SWAY = 0.25  # face sizes a standing person sways between two keyframes
STOP_REACH = 1.5  # face sizes from where a track was last seen that a person who stopped may be found
MAX_SPEED = 12.0  # face sizes / s: no face moves faster between two sightings (plus one size of slack)
# Variance of the Laplacian at which a look counts half: crisp faces of the walking scenes measure
# 300-3000 (sensor noise and JPEG included), a motion-blurred one far less.
SHARP_HALF = 200.0


APPEARANCE_BINS = (8, 4)  # hue x saturation: colour that survives a 16 px face, JPEG and changing light
APPEARANCE_MEMORY = 0.3  # weight of a new sighting in a track's running appearance


def appearance(crop: np.ndarray) -> np.ndarray:
    """A face crop's colour as a normalised hue-saturation histogram, for telling two faces apart.

    Hue and saturation, not brightness: the light drifts, and a face's colours (skin, hair, a
    mask) stay. Compare two with :func:`appearance_distance`.

    >>> red = np.zeros((16, 16, 3), np.uint8); red[..., 2] = 200
    >>> blue = np.zeros((16, 16, 3), np.uint8); blue[..., 0] = 200
    >>> appearance_distance(appearance(red), appearance(red)), appearance_distance(appearance(red), appearance(blue))
    (0.0, 1.0)
    """
    if crop.size == 0:
        return np.full(APPEARANCE_BINS[0] * APPEARANCE_BINS[1], 1 / (APPEARANCE_BINS[0] * APPEARANCE_BINS[1]))
    hsv = cv2.cvtColor(crop, cv2.COLOR_BGR2HSV)
    hist = cv2.calcHist([hsv], [0, 1], None, list(APPEARANCE_BINS), [0, 180, 0, 256]).ravel().astype(np.float64)
    return hist / max(float(hist.sum()), 1.0)


def appearance_distance(p: np.ndarray, q: np.ndarray) -> float:
    """Hellinger distance of two :func:`appearance` histograms: 0 the same colours, 1 none in common."""
    return round(float(np.sqrt(max(0.0, 1.0 - float(np.sqrt(p * q).sum())))), 6)


def sharpness(crop: np.ndarray) -> float:
    """Variance of the Laplacian of the crop in grey: low when blurred (motion, focus, compression).

    Compare it only between looks at the same face; it depends on the scene's texture too.

    >>> flat = np.full((32, 32, 3), 128, np.uint8)
    >>> sharpness(flat)
    0.0
    >>> edges = np.zeros((32, 32), np.uint8); edges[:, ::2] = 255
    >>> sharpness(edges) > 1000
    True
    """
    if crop.size == 0:
        return 0.0
    grey = crop if crop.ndim == 2 else cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY)
    return float(cv2.Laplacian(grey, cv2.CV_64F).var())


@dataclass(frozen=True)
class Look:
    """One classification of a track's face: P(without_mask), how large and sharp the face was, when and where."""

    p_without: float
    face_px: float
    sharpness: float
    ts_ms: int
    box: tuple[int, int, int, int]

    @property
    def weight(self) -> float:
        """How much this look counts in the vote: larger and sharper faces are classified better."""
        return self.face_px * self.sharpness / (self.sharpness + SHARP_HALF) if self.sharpness > 0 else 0.0

    def to_json(self) -> list[Any]:
        return [self.p_without, self.face_px, self.sharpness, self.ts_ms, list(self.box)]

    @classmethod
    def from_json(cls, data: Sequence[Any]) -> Look:
        p, px, sharp, ts, box = data
        return cls(float(p), float(px), float(sharp), int(ts), (int(box[0]), int(box[1]), int(box[2]), int(box[3])))


@dataclass(frozen=True)
class LookPolicy:
    """When a track's face is classified again, and how many looks it keeps for its vote."""

    keep: int = 5  # best looks kept (and voted on): bounds the state of a long track
    grow: float = 1.3  # a face this much larger (in px) than the largest looked at is worth a look
    sharper: float = 1.5  # likewise for sharpness
    relook_ms: int = 2000  # and every so often anyway: a mask goes on or off
    threshold: float = 0.5  # the voted P(without_mask) above which the label is without_mask

    def __post_init__(self) -> None:
        if self.keep < 1 or self.grow <= 1 or self.sharper <= 1 or self.relook_ms < 0 or not 0 < self.threshold < 1:
            raise ValueError(f"look policy out of range: {self}; keep >= 1, grow > 1, sharper > 1, relook_ms >= 0, "
                             "0 < threshold < 1")


class Track:
    """One face followed over frames: its motion filter, when it was seen, and its best looks."""

    def __init__(self, track_id: int, ts_ms: int, box: tuple[int, int, int, int], policy: LookPolicy):
        self.id, self.policy = track_id, policy
        self.first_ts = self.last_ts = self.sure_ts = ts_ms  # sure_ts: last seen by a sure detection
        self.frames = 1
        self.box = box
        self.x, self.P = np.zeros((3, 2)), np.zeros((3, 2, 2))
        self.stop()
        self.looks: list[Look] = []
        self.n_looks = 0
        self.last_look_ts: int | None = None
        self.best_px = 0.0  # largest face looked at, over all looks (also those no longer kept)
        self.best_sharpness = 0.0
        self.appearance: np.ndarray | None = None  # running :func:`appearance` of its face, once seen
        self.counted: str | None = None  # the label it was counted as a person with while still in view
        self.counted_snap = ""  # the snapshot stored then ("" none): still theirs if no better look comes

    def see(self, look: np.ndarray) -> None:
        """Fold one sighting's :func:`appearance` into the track's."""
        self.appearance = look if self.appearance is None else (
            (1 - APPEARANCE_MEMORY) * self.appearance + APPEARANCE_MEMORY * look)

    # --- motion -------------------------------------------------------------------------------------

    @property
    def size(self) -> float:
        return max(float(self.x[2, 0]), 1.0)

    def predict(self, dt: float) -> None:
        """Carry the filter ``dt`` seconds forward at constant velocity."""
        if dt <= 0:
            return
        F = np.array([[1.0, dt], [0.0, 1.0]])
        q = (ACCEL * self.size) ** 2
        Q = np.array([[dt**3 / 3, dt**2 / 2], [dt**2 / 2, dt]])
        self.x = self.x @ F.T
        self.P = F @ self.P @ F.T + q[:, None, None] * Q

    def outside(self, frame_size: tuple[int, int]) -> bool:
        """Whether the predicted centre of the face has left a frame of ``frame_size`` (width, height)."""
        cx, cy = self.x[0, 0], self.x[1, 0]
        return not (0 <= cx < frame_size[0] and 0 <= cy < frame_size[1])

    def stop(self, sway: float = 0.0) -> None:
        """Restart the filter where the face was seen last (give or take ``sway`` face sizes), its motion unknown."""
        z = measure(self.box)
        # Kalman state per axis (cx, cy, s): [position, velocity], and covariance [[p00, p01], [p01, p11]].
        self.x[:, 0], self.x[:, 1] = z, 0.0
        self.P[:] = 0.0
        self.P[:, 0, 0], self.P[:, 1, 1] = (MEAS_NOISE**2 + sway**2) * z[2] ** 2, (INIT_SPEED * z[2]) ** 2

    def correct(self, ts_ms: int, box: tuple[int, int, int, int]) -> None:
        """Fold in the detection ``box`` seen at ``ts_ms``."""
        z = measure(box)
        r = (MEAS_NOISE * self.size) ** 2
        S = self.P[:, 0, 0] + r
        K = self.P[:, :, 0] / S[:, None]  # gain on (position, velocity) per axis
        self.x += K * (z - self.x[:, 0])[:, None]
        self.P = self.P - K[:, :, None] * self.P[:, 0, None, :]
        self.box, self.last_ts = box, max(self.last_ts, ts_ms)
        self.frames += 1

    # --- classification -----------------------------------------------------------------------------

    def needs_look(self, face_px: float, sharpness: float, ts_ms: int) -> bool:
        """Whether to classify the face now: never looked at, markedly larger or sharper than ever, or not lately.

        ``face_px`` is the face's side in pixels, ``sharpness`` its crop's :func:`sharpness`.
        """
        p = self.policy
        if self.last_look_ts is None:
            return True
        return (face_px >= p.grow * self.best_px or (sharpness >= p.sharper * self.best_sharpness and sharpness > 0)
                or ts_ms - self.last_look_ts >= p.relook_ms)

    def add_look(self, p_without: float, face_px: float, sharpness: float, ts_ms: int,
                 box: tuple[int, int, int, int] | None = None) -> None:
        """Record a classification; ``box`` defaults to where the track was seen last (this frame's)."""
        self.looks.append(Look(float(p_without), float(face_px), float(sharpness), int(ts_ms), box or self.box))
        # Keep the best, newest first among equals, so the state stays small however long the track lives.
        self.looks.sort(key=lambda look: (look.weight, look.ts_ms), reverse=True)
        del self.looks[self.policy.keep:]
        self.n_looks += 1
        self.last_look_ts = int(ts_ms)
        self.best_px = max(self.best_px, float(face_px))
        self.best_sharpness = max(self.best_sharpness, float(sharpness))

    def vote(self) -> tuple[str | None, float]:
        """The label of the kept looks, weighted by face size and sharpness, and the probability behind it.

        ``(None, 0.0)`` while the face has not been looked at.
        """
        if not self.looks:
            return None, 0.0
        weights = [look.weight for look in self.looks]
        total = sum(weights)
        if total > 0:
            p = sum(w * look.p_without for w, look in zip(weights, self.looks)) / total
        else:  # only blank crops: count them alike
            p = sum(look.p_without for look in self.looks) / len(self.looks)
        if p > self.policy.threshold:
            return "without_mask", p
        return "with_mask", 1.0 - p

    @property
    def best_look(self) -> Look | None:
        return self.looks[0] if self.looks else None

    # --- state --------------------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "first": self.first_ts, "last": self.last_ts, "frames": self.frames,
                "box": list(self.box), "sure": self.sure_ts, "x": self.x.tolist(),
                "p": [[float(p[0, 0]), float(p[0, 1]), float(p[1, 1])] for p in self.P],
                "looks": [look.to_json() for look in self.looks], "n_looks": self.n_looks,
                "look_ts": self.last_look_ts, "best_px": self.best_px, "best_sharpness": self.best_sharpness,
                "app": None if self.appearance is None else [round(float(v), 5) for v in self.appearance],
                "counted": self.counted, "counted_snap": self.counted_snap}

    @classmethod
    def from_json(cls, data: dict[str, Any], policy: LookPolicy) -> Track:
        box = data["box"]
        track = cls(int(data["id"]), int(data["first"]), (int(box[0]), int(box[1]), int(box[2]), int(box[3])), policy)
        track.last_ts, track.frames = int(data["last"]), int(data["frames"])
        track.sure_ts = int(data.get("sure", track.last_ts))  # absent in states written before unsure detections
        track.x = np.array(data["x"], np.float64).reshape(3, 2)
        track.P = np.array([[[p00, p01], [p01, p11]] for p00, p01, p11 in data["p"]], np.float64).reshape(3, 2, 2)
        track.looks = [Look.from_json(look) for look in data["looks"]][:policy.keep]
        track.n_looks = int(data["n_looks"])
        track.last_look_ts = None if data["look_ts"] is None else int(data["look_ts"])
        track.best_px, track.best_sharpness = float(data["best_px"]), float(data["best_sharpness"])
        app = data.get("app")  # absent in states written before appearance was kept
        track.appearance = None if app is None else np.array(app, np.float64)
        # absent in states written before people were counted in view
        track.counted, track.counted_snap = data.get("counted"), str(data.get("counted_snap", ""))
        return track


def measure(box: Sequence[float]) -> np.ndarray:
    """A box ``[x, y, w, h]`` as the filter's measurement (cx, cy, s)."""
    x, y, w, h = box
    return np.array([x + w / 2, y + h / 2, math.sqrt(max(w * h, 1))])


@dataclass(frozen=True)
class TrackedFace:
    """A detection of this frame (``index`` in the frame's detections) with the track it belongs to
    (``is_new``: the track starts here)."""

    track: Track
    box: tuple[int, int, int, int]
    confidence: float
    is_new: bool
    index: int

    @property
    def track_id(self) -> int:
        return self.track.id


@dataclass(frozen=True)
class EndedTrack:
    """A track that ended (unseen for ``max_age_ms``, or carried out of the frame): what a person record is made of."""

    track_id: int
    first_ts: int
    last_ts: int
    frames: int  # detections of this face
    looks: int  # classifications of it
    label: str | None  # voted; None if it was never classified
    confidence: float
    best_box: tuple[int, int, int, int] | None  # where the best look was, when
    best_ts: int | None
    counted: str | None = None  # the label it was counted as a person with while in view (Track.counted)

    @classmethod
    def of(cls, track: Track) -> EndedTrack:
        label, confidence = track.vote()
        best = track.best_look
        return cls(track.id, track.first_ts, track.last_ts, track.frames, track.n_looks, label, confidence,
                   best.box if best else None, best.ts_ms if best else None, track.counted)


class TrackerStateError(ValueError):
    """A checkpointed tracker state that cannot be restored; the caller starts the camera afresh."""


class FrameTracks(NamedTuple):
    """What :meth:`FaceTracker.update` returns: each detection's track, in order (unsure detections that
    continued no track left out), and the tracks that ended."""

    faces: list[TrackedFace]
    ended: list[EndedTrack]


class FaceTracker:
    """The tracks of one camera. Call :meth:`update` with each frame's detections in capture order.

    ``max_age_ms``: a track not seen for this long ends (6 s: a standing person is seen only on
    keyframes, every 2 s, and the detector may miss one or two of them). ``max_jump``: face sizes
    a detection may lie from a track's prediction. ``still_gap_ms``: a longer gap between frames
    means motion gating saw nothing move. ``policy``: when to classify (:class:`LookPolicy`).
    ``max_appearance``: when detections come with their :func:`appearance`, a detection farther
    than this from a track's running appearance is not that track's face (1: colours not used),
    so two people who cross where the motion model cannot tell them apart keep their tracks.
    ``unsure_ms``: how long after its last sure detection a track may be continued by unsure ones.
    Track ids count up from 1 per camera and survive :meth:`to_state` / :meth:`from_state`.
    """

    def __init__(self, max_age_ms: int = 6000, max_jump: float = 4.0, still_gap_ms: int = 1000,
                 policy: LookPolicy | None = None, max_appearance: float = 1.0, unsure_ms: int = 2000):
        if max_age_ms <= 0 or max_jump <= 0 or still_gap_ms <= 0 or not 0 < max_appearance <= 1 or unsure_ms < 0:
            raise ValueError(f"tracker settings must be positive: max_age_ms={max_age_ms}, max_jump={max_jump}, "
                             f"still_gap_ms={still_gap_ms}; 0 < max_appearance={max_appearance} <= 1; "
                             f"unsure_ms={unsure_ms} >= 0")
        self.max_age_ms, self.max_jump, self.still_gap_ms = max_age_ms, max_jump, still_gap_ms
        self.unsure_ms = unsure_ms
        self.max_appearance = max_appearance
        self.policy = policy or LookPolicy()
        self.tracks: dict[int, Track] = {}
        self.next_id = 1
        self.ts: int | None = None  # capture time of the last frame seen

    def update(self, ts_ms: int, detections: Sequence[Detection], frame_size: tuple[int, int] | None = None,
               appearances: Sequence[np.ndarray] | None = None) -> FrameTracks:
        """Associate a frame's detections with tracks: each detection's track, in order, and the tracks that ended.

        ``frame_size`` (width, height), when given, ends a track whose face the motion model
        carries out of the frame, so it cannot catch someone who comes in where it left.
        ``appearances``, when given, one :func:`appearance` a detection, keep a track from taking
        a face of other colours (``max_appearance``) and are folded into the tracks. A frame
        older than the last one (a redelivery after a hand-over) is associated without moving the
        tracks back in time.
        """
        dt = 0.0 if self.ts is None else max(0, ts_ms - self.ts) / 1000
        for track in self.tracks.values():
            if dt * 1000 > self.still_gap_ms:
                track.stop(STILL_SWAY)
            else:
                track.predict(dt)
        self.ts = ts_ms if self.ts is None else max(self.ts, ts_ms)
        ended = [t for t in self.tracks.values()
                 if self.ts - t.last_ts > self.max_age_ms or (frame_size is not None and t.outside(frame_size))]
        for track in ended:
            del self.tracks[track.id]

        faces: dict[int, TrackedFace] = {}
        sure = [i for i, d in enumerate(detections) if not d.unsure]
        unsure = [i for i, d in enumerate(detections) if d.unsure]
        tracks = list(self.tracks.values())
        self._follow(faces, tracks, detections, sure, ts_ms, appearances)
        taken = {face.track_id for face in faces.values()}
        lately = [t for t in tracks if t.id not in taken and ts_ms - t.sure_ts <= self.unsure_ms]
        self._follow(faces, lately, detections, unsure, ts_ms, appearances)
        for di in sure:
            if di not in faces:
                track = Track(self.next_id, ts_ms, detections[di].box, self.policy)
                self.next_id += 1
                self.tracks[track.id] = track
                faces[di] = TrackedFace(track, detections[di].box, detections[di].confidence, is_new=True, index=di)
        if appearances is not None:
            for di, face in faces.items():
                face.track.see(appearances[di])
        return FrameTracks([faces[di] for di in sorted(faces)], [EndedTrack.of(t) for t in ended])

    def _follow(self, faces: dict[int, TrackedFace], tracks: Sequence[Track], detections: Sequence[Detection],
                which: Sequence[int], ts_ms: int, appearances: Sequence[np.ndarray] | None) -> None:
        """Continue ``tracks`` with the detections at indices ``which``, adding each match to ``faces``."""
        dets = [detections[i] for i in which]
        apps = None if appearances is None else [appearances[i] for i in which]
        for ti, k, stopped in self._associate(tracks, dets, ts_ms, apps):
            track, det = tracks[ti], dets[k]
            if stopped:
                track.stop()
            track.correct(ts_ms, det.box)
            if not det.unsure:
                track.sure_ts = max(track.sure_ts, ts_ms)
            faces[which[k]] = TrackedFace(track, det.box, det.confidence, is_new=False, index=which[k])

    def end_all(self) -> list[EndedTrack]:
        """End every track now (the camera is removed, or a recorded video is over)."""
        ended = [EndedTrack.of(t) for t in self.tracks.values()]
        self.tracks.clear()
        return ended

    def _associate(self, tracks: Sequence[Track], detections: Sequence[Detection], ts_ms: int,
                   appearances: Sequence[np.ndarray] | None) -> list[tuple[int, int, bool]]:
        """(track, detection, stopped) index pairs: first by the motion model, then "stopped where last seen".

        People stop abruptly, quicker than a constant-velocity model follows; a detection that no
        track's prediction explains but that lies on the spot where a still unmatched track was
        last seen is that person, who stopped.
        """
        if not tracks or not detections:
            return []
        X = np.array([t.x[:, 0] for t in tracks])  # (T, 3) predicted cx, cy, s
        sizes = np.maximum(X[:, 2], 1.0)
        S = np.array([t.P[:, 0, 0] for t in tracks]) + (MEAS_NOISE * sizes[:, None]) ** 2  # (T, 3)
        Z = np.array([measure(d.box) for d in detections])  # (D, 3)
        Y = Z[None, :, :] - X[:, None, :]  # (T, D, 3)
        d2 = (Y**2 / S[:, None, :]).sum(axis=2)
        jump = np.hypot(Y[:, :, 0], Y[:, :, 1]) / sizes[:, None]
        away = np.array([(ts_ms - t.last_ts) / 1000 for t in tracks])
        reach = np.minimum(self.max_jump, 1 + MAX_SPEED * away)  # face sizes a face can have moved since
        moving_ok = (d2 <= GATE) & (jump <= reach[:, None])
        seen = np.array([measure(t.box) for t in tracks])
        off = np.hypot(Z[None, :, 0] - seen[:, None, 0], Z[None, :, 1] - seen[:, None, 1]) / seen[:, None, 2]
        stopped_ok = (off <= STOP_REACH) & (np.abs(np.log(Z[None, :, 2] / seen[:, None, 2])) <= math.log(1.5))
        if appearances is not None and self.max_appearance < 1:
            alike = np.array([[t.appearance is None or appearance_distance(t.appearance, a) <= self.max_appearance
                               for a in appearances] for t in tracks])
            moving_ok &= alike
            stopped_ok &= alike
        pairs: list[tuple[int, int, bool]] = []
        used_t: set[int] = set()
        used_d: set[int] = set()
        # Greedy, cheapest first: a camera holds a handful of faces, and bench/tracking.py found it
        # switching identities no more often than the optimal assignment does.
        for cost, ok, stopped in ((d2 + np.log(S).sum(axis=1)[:, None], moving_ok, False), (off, stopped_ok, True)):
            for flat in np.argsort(np.where(ok, cost, np.inf), axis=None, kind="stable"):
                ti, di = divmod(int(flat), len(detections))
                if not ok[ti, di]:
                    break
                if ti not in used_t and di not in used_d:
                    pairs.append((ti, di, stopped))
                    used_t.add(ti)
                    used_d.add(di)
        return pairs

    # --- checkpoint ---------------------------------------------------------------------------------

    def to_state(self) -> dict[str, Any]:
        """The tracker as plain JSON data (numbers, lists, dicts): ``json.dumps`` it into Redis."""
        return {"v": STATE_VERSION, "next_id": self.next_id, "ts": self.ts,
                "tracks": [t.to_json() for t in self.tracks.values()]}

    @classmethod
    def from_state(cls, state: dict[str, Any], **settings: Any) -> FaceTracker:
        """A tracker restored from :meth:`to_state`'s data, with ``settings`` as for the constructor."""
        tracker = cls(**settings)
        if not isinstance(state, dict) or state.get("v") != STATE_VERSION:
            version = state.get("v") if isinstance(state, dict) else type(state).__name__
            raise TrackerStateError(f"tracker state: field 'v' is {version!r}, expected {STATE_VERSION}; "
                                    "the camera's tracks start afresh")
        try:
            tracker.next_id = int(state["next_id"])
            tracker.ts = None if state["ts"] is None else int(state["ts"])
            for data in state["tracks"]:
                track = Track.from_json(data, tracker.policy)
                tracker.tracks[track.id] = track
        except (KeyError, TypeError, ValueError) as exc:
            raise TrackerStateError(f"tracker state is malformed ({exc!r}); the camera's tracks start afresh") from exc
        return tracker
