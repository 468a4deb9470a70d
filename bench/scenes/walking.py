"""Walking people: seeded CCTV-like videos with ground truth per face and per person.

For measuring motion gating and tracking (docs/architecture.md): people (a plain body with a real
face crop of known label on its head) enter from a side of a lobby, cross it, pass each other (the
nearer one in front), some stand still for a while, then leave; between them the view is empty.
Faces are 16-80 px, larger the nearer the person; people walk at 1-1.5 m/s, so a 640 px view is
crossed in about 2 s close up and 7 s far away. The light drifts (and may switch), the sensor adds
noise and every frame is JPEG-compressed at a varying quality, so nothing in a frame is exactly
still. The same arguments always give the same frames and truth. What it does not show: bodies
are flat shapes, a face is the same frontal crop all the way (no turning, no motion blur), and
the background is drawn, not filmed.

API::

    scene = walking_scene(seed=0, duration_s=60, fps=5, size=(640, 360), people_per_min=6)
    scene = preset_scene("busy", seed=1)          # "quiet", "busy", "still_person" (see PRESETS)
    for seq, ts_ms, image, truth in scene.frames():  # BGR uint8; ts_ms from 0; truth: list[FaceTruth]
        ...
    scene.truth[i]        # frame i's FaceTruth list, without rendering the frame
    scene.render(i)       # frame i alone (people=False: the same frame with nobody in it)
    scene.people          # list[Person]: id, label, enter/leave and first/last face frame, frames_visible,
                          # face_px range, stood_still and still_frames
    scene.empty_frames()  # indices of frames with nobody in view
    scene.write_video("x.mp4")  # .avi is MJPG, else mp4v; writes x.json too; returns its dict

A :class:`FaceTruth` is listed while any of its face box is inside the frame, even when a nearer
person hides it: ``visible`` is the share of the whole face box that can be seen (inside the frame
and not hidden), so filter with :func:`visible_faces`. ``box`` is (x, y, w, h), clipped to the frame.
Faces come from a pool of (crop, label) pairs, by default 12K's test split and chandrikadeb7 in the
shared data (:func:`face_pool`); pass ``pool=`` to reuse one across scenes.

Command line (a video, its truth JSON and a contact sheet PNG to look at)::

    python -m bench.scenes.walking --preset busy --seconds 30 --out /tmp/walk

>>> pool = [(np.full((64, 64, 3), 90, np.uint8), "with_mask"), (np.full((64, 64, 3), 200, np.uint8), "without_mask")]
>>> scene = walking_scene(seed=3, duration_s=20, pool=pool)
>>> len(scene), scene.fps, scene.size
(100, 5.0, (640, 360))
>>> seq, ts_ms, image, truth = next(scene.frames())
>>> image.shape, ts_ms, truth
((360, 640, 3), 0, [])
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, NamedTuple

import cv2
import numpy as np

from bench.scenes.compose import face_finder, face_width_share, load_face_pool, write_video

Colour = tuple[float, float, float]
FacePool = Sequence[tuple[np.ndarray, str]]

# The scene is a level camera with a shifted lens looking across a lobby floor, so a face's size
# and its image row are both linear in 1/depth (see _Camera). Lengths are metres.
FACE_M = 0.2  # the face box spans the face and a margin, as the pooled crops do
FOCAL_FACE = 200.0  # px*m: a face box at depth z metres is FOCAL_FACE / z px (a focal length of 1000 px)
FACE_HEIGHT_M = 1.6  # the face centre of a person of mean height, above the floor
STRIDE_M = 1.4  # one gait cycle (two steps); legs swing with the distance walked
SPEED_MPS = (1.0, 1.5)
OFFSCREEN_M = 0.45  # people start and end this far beyond the frame's side, so they enter and leave whole
MIN_FACE_SHARE = 0.3  # a face crop's face spans at least this share of its width (face_pool's faces_only)

PRESETS: dict[str, dict[str, Any]] = {
    # mostly empty: about one person a minute walks through
    "quiet": {"duration_s": 120.0, "people_per_min": 1.0, "still_share": 0.0},
    # several people in view at once, crossing and passing each other; now and then one stands a while
    "busy": {"duration_s": 60.0, "people_per_min": 24.0, "still_share": 0.1, "still_s": (8.0, 20.0)},
    # one person walks in, stands 25 s, walks out; nobody else; a face large enough to be found
    "still_person": {"duration_s": 45.0, "people_per_min": 0.0, "standers": 1, "still_s": (25.0, 25.0),
                     "face_px": (32, 80)},
}


@dataclass(frozen=True)
class FaceTruth:
    person_id: int
    box: tuple[int, int, int, int]  # x, y, w, h of the pasted face, clipped to the frame
    label: str
    visible: float  # share of the whole face box that is in the frame and not behind a nearer person


@dataclass(frozen=True)
class Person:
    id: int
    label: str
    enter_frame: int  # first frame with any part of the person in view
    leave_frame: int  # last one
    first_frame: int  # first frame with the face in the truth (-1: the face never showed)
    last_frame: int
    frames_visible: int  # frames where some of the face can be seen (visible > 0)
    face_px: tuple[int, int]  # smallest and largest face side while in the truth
    stood_still: bool
    still_frames: tuple[int, int] | None  # first and last frame of standing still, both included


class WalkFrame(NamedTuple):
    seq: int  # the frame's number in the scene, from 0
    ts_ms: int  # since the scene's start
    image: np.ndarray
    truth: list[FaceTruth]


def visible_faces(truth: Sequence[FaceTruth], min_visible: float = 0.5) -> list[FaceTruth]:
    """The faces a detector could be expected to find: at least ``min_visible`` of the face seen."""
    return [f for f in truth if f.visible >= min_visible]


@dataclass(frozen=True)
class _Camera:
    """A level camera with a shifted lens across a lobby: face sizes and face rows are linear in 1/depth."""

    width: int
    height: int
    face_px: tuple[int, int]

    @property
    def rows_per_px(self) -> float:
        """Face rows move this many image rows per px of face size: far faces at 22% of the height, near at 62%."""
        return 0.40 * self.height / (self.face_px[1] - self.face_px[0])

    @property
    def horizon(self) -> float:
        return 0.22 * self.height - self.face_px[0] * self.rows_per_px

    @property
    def height_m(self) -> float:
        return FACE_HEIGHT_M + self.rows_per_px * FACE_M

    @property
    def depths(self) -> tuple[float, float]:
        return FOCAL_FACE / self.face_px[1], FOCAL_FACE / self.face_px[0]

    def face(self, z: float) -> float:
        return FOCAL_FACE / z

    def column(self, x: float, s: float) -> float:
        return self.width / 2 + x * s / FACE_M

    def row(self, above_floor_m: float, s: float) -> float:
        return self.horizon + s * (self.height_m - above_floor_m) / FACE_M

    def half_width_m(self, z: float) -> float:
        return self.width / 2 * FACE_M / self.face(z)


@dataclass(frozen=True)
class _Walker:
    """One person's script: a straight walk from ``start`` to ``end`` (x, depth), maybe a stop on the way."""

    id: int
    label: str
    crop: int
    start_s: float
    start: tuple[float, float]
    end: tuple[float, float]
    speed: float
    face_h: float
    clothes: tuple[Colour, Colour, Colour, Colour]  # shirt, trousers, hair, skin
    stop_m: float | None = None  # distance along the path where the person stands still
    still_s: float = 0.0

    @property
    def length(self) -> float:
        return math.dist(self.start, self.end)

    @property
    def end_s(self) -> float:
        return self.start_s + self.length / self.speed + self.still_s

    def still_span(self) -> tuple[float, float] | None:
        if self.stop_m is None:
            return None
        t = self.start_s + self.stop_m / self.speed
        return t, t + self.still_s

    def point(self, walked: float) -> tuple[float, float]:
        f = walked / self.length
        return self.start[0] + f * (self.end[0] - self.start[0]), self.start[1] + f * (self.end[1] - self.start[1])

    def walked(self, t: float) -> tuple[float, bool] | None:
        """Distance walked at scene time ``t`` and whether the person is moving; None when not in the scene."""
        if not self.start_s <= t <= self.end_s:
            return None
        e = t - self.start_s
        if self.stop_m is None or e * self.speed < self.stop_m:
            return e * self.speed, True
        if e < self.stop_m / self.speed + self.still_s:
            return self.stop_m, False
        return (e - self.still_s) * self.speed, True


@dataclass
class _Pose:
    """Where one person's parts are in one frame, in drawing order (far limbs first)."""

    walker: _Walker
    depth: float
    face: tuple[int, int, int]  # x, y, side
    parts: list[tuple[np.ndarray, Colour]]
    head: tuple[tuple[int, int], tuple[int, int]]  # hair ellipse: centre, axes
    bounds: tuple[int, int, int, int] = field(init=False)  # x0, y0, x1, y1 of the whole person

    def __post_init__(self) -> None:
        pts = np.concatenate([p for p, _ in self.parts])
        x, y, side = self.face
        self.bounds = (min(int(pts[:, 0].min()), x), min(int(pts[:, 1].min()), y - side // 4),
                       max(int(pts[:, 0].max()), x + side), int(pts[:, 1].max()))

    def paint(self, owner: np.ndarray, value: int) -> None:
        """Mark the pixels this person covers (the occlusion map behind ``visible``)."""
        cv2.fillPoly(owner, [p for p, _ in self.parts], value)
        cv2.ellipse(owner, self.head[0], self.head[1], 0, 0, 360, value, -1)
        x, y, side = self.face
        owner[max(y, 0):max(y + side, 0), max(x, 0):max(x + side, 0)] = value

    def in_view(self, width: int, height: int) -> bool:
        x0, y0, x1, y1 = self.bounds
        return x1 >= 0 and y1 >= 0 and x0 < width and y0 < height


def _limb(top: tuple[float, float], angle: float, length: float, w0: float, w1: float) -> np.ndarray:
    """A tapered limb hanging from ``top``, turned ``angle`` radians from straight down."""
    down = np.array([math.sin(angle), math.cos(angle)])
    across = np.array([math.cos(angle), -math.sin(angle)])
    t = np.array(top)
    return np.array([t - across * w0 / 2, t + across * w0 / 2, t + down * length + across * w1 / 2,
                     t + down * length - across * w1 / 2])


# Torso outline around the face centre, in face sides (y down): neck, shoulders, hips.
_TORSO = np.array([(-0.3, 0.55), (-0.95, 0.95), (-1.05, 1.35), (-0.8, 3.8), (0.8, 3.8), (1.05, 1.35), (0.95, 0.95),
                   (0.3, 0.55)])


def _pose(walker: _Walker, t: float, cam: _Camera) -> _Pose | None:
    state = walker.walked(t)
    if state is None:
        return None
    walked, moving = state
    x, z = walker.point(walked)
    s = cam.face(z)
    u, v = cam.column(x, s), cam.row(walker.face_h, s)
    b = s * walker.face_h / FACE_HEIGHT_M  # body lengths scale with the person's height
    lateral = abs(walker.end[0] - walker.start[0]) / walker.length  # legs swing across the image only when crossing it
    swing = 0.45 * lateral * math.sin(2 * math.pi * walked / STRIDE_M) if moving else 0.0
    shirt, trousers, _, skin = walker.clothes
    shade = _shade(shirt), _shade(trousers)

    def leg(lr: float, angle: float) -> np.ndarray:  # lr: -1 the left one in the image, 1 the right
        return _limb((u + lr * 0.38 * s, v + 3.7 * b), angle, 4.3 * b, 0.62 * s, 0.42 * s)

    def arm(lr: float, angle: float) -> np.ndarray:
        return _limb((u + lr * 0.92 * s, v + 1.15 * b), angle + lr * 0.08, 3.0 * b, 0.42 * s, 0.32 * s)

    torso = np.column_stack([u + _TORSO[:, 0] * s, v + _TORSO[:, 1] * b])
    neck = np.array([(u - 0.18 * s, v + 0.35 * s), (u + 0.18 * s, v + 0.35 * s), (u + 0.18 * s, v + 0.8 * b),
                     (u - 0.18 * s, v + 0.8 * b)])
    parts = [(leg(-1, swing), shade[1]), (arm(-1, -0.8 * swing), shade[0]), (neck, skin), (torso, shirt),
             (leg(1, -swing), trousers), (arm(1, 0.8 * swing), shirt)]
    side = round(s)
    return _Pose(walker, z, (round(u - side / 2), round(v - side / 2), side),
                 [(np.round(p).astype(np.int32), c) for p, c in parts],
                 ((round(u), round(v - 0.1 * s)), (round(0.56 * s), round(0.66 * s))))


def _shade(colour: Colour, by: float = 0.75) -> Colour:
    return colour[0] * by, colour[1] * by, colour[2] * by


def _palette(rng: np.random.Generator) -> tuple[Colour, Colour, Colour, Colour]:
    def pick(options: Sequence[Colour], jitter: float) -> Colour:
        b, g, r = np.clip(np.array(options[int(rng.integers(len(options)))]) + rng.normal(0, jitter, 3), 0, 255)
        return float(b), float(g), float(r)

    shirts = [(40, 40, 160), (150, 90, 30), (60, 140, 60), (200, 200, 200), (30, 30, 30), (90, 60, 120), (40, 160, 200)]
    trousers = [(40, 30, 25), (90, 60, 30), (60, 60, 60), (120, 110, 100), (25, 25, 25)]
    hair = [(20, 20, 25), (30, 45, 70), (40, 70, 110), (120, 150, 180), (60, 60, 60)]
    skin = [(150, 180, 220), (120, 150, 190), (80, 110, 150), (60, 80, 110)]
    return pick(shirts, 20), pick(trousers, 10), pick(hair, 8), pick(skin, 8)


class _Script:
    """Draws who walks when and where, from one generator."""

    def __init__(self, rng: np.random.Generator, cam: _Camera, labels: dict[str, list[int]], unmasked_share: float):
        self.rng, self.cam, self.unmasked_share = rng, cam, unmasked_share
        self.crops = {label: list(rng.permutation(idx)) for label, idx in labels.items()}
        self.walkers: list[_Walker] = []

    def _crop(self, label: str) -> int:
        queue = self.crops[label]
        queue.append(queue.pop(0))  # cycle, so faces repeat only when the pool runs out
        return int(queue[-1])

    def _stop(self, walker: _Walker) -> float:
        """A distance along the path where the whole face is well inside the frame."""
        inside = []
        for f in np.linspace(0.15, 0.85, 29):
            x, z = walker.point(f * walker.length)
            s = self.cam.face(z)
            if s <= self.cam.column(x, s) <= self.cam.width - s:
                inside.append(f)
        f = float(self.rng.choice(inside)) if inside else 0.5
        return f * walker.length

    def person(self, start_s: float, still_s: float) -> _Walker:
        rng, cam = self.rng, self.cam
        direction = 1 if rng.random() < 0.5 else -1
        # Face sizes log-uniform over the range: as many 16-36 px faces as 36-80 px ones, where
        # depths drawn uniformly would leave few near faces.
        low, high = (math.log(px) for px in cam.face_px)
        z0, z1 = (FOCAL_FACE / math.exp(v) for v in rng.uniform(low, high, 2))
        label = "without_mask" if rng.random() < self.unmasked_share else "with_mask"
        walker = _Walker(
            id=len(self.walkers) + 1, label=label, crop=self._crop(label), start_s=start_s,
            start=(-direction * (cam.half_width_m(z0) + OFFSCREEN_M), z0),
            end=(direction * (cam.half_width_m(z1) + OFFSCREEN_M), z1),
            speed=float(rng.uniform(*SPEED_MPS)), face_h=float(rng.uniform(1.52, 1.68)), clothes=_palette(rng))
        if still_s > 0:
            walker = replace(walker, stop_m=self._stop(walker), still_s=still_s)
        return walker

    def add(self, walker: _Walker, until_s: float) -> None:
        """Keep ``walker`` if they leave before ``until_s``: every person in a scene enters and leaves."""
        if walker.end_s <= until_s:
            self.walkers.append(walker)


def _background(rng: np.random.Generator, cam: _Camera) -> np.ndarray:
    """A lobby: a back wall with doors, a poster and a bench, a tiled floor in perspective, a plant."""
    w, h = cam.width, cam.height
    back_z = cam.depths[1] * 1.25
    s_back = cam.face(back_z)
    base = int(cam.row(0.0, s_back))  # where the back wall meets the floor
    m = s_back / FACE_M  # px per metre on the back wall

    def texture(scale: int, amount: float) -> np.ndarray:
        small = rng.normal(0, amount, (max(2, h // scale), max(2, w // scale), 1)).astype(np.float32)
        return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)[:, :, None]

    img = np.empty((h, w, 3), np.float32)
    wall, floor = rng.uniform(150, 210, 3), rng.uniform(70, 140, 3)
    img[:base] = wall * np.linspace(0.85, 1.05, base)[:, None, None]
    img[base:] = floor * np.linspace(0.9, 1.1, h - base)[:, None, None]
    img += texture(40, 6.0) + texture(6, 3.0)
    for k in range(-40, 41):  # floor tiles: lines towards the vanishing point, and rows every 0.8 m
        far, near = (round(cam.column(k * 0.8, s)) for s in (s_back, cam.face(0.3)))
        cv2.line(img, (far, base), (near, round(cam.row(0.0, cam.face(0.3)))), tuple(floor * 0.8), 1, cv2.LINE_AA)
    for z in np.arange(back_z - 0.8, 0.5, -0.8):
        y = round(cam.row(0.0, cam.face(float(z))))
        cv2.line(img, (0, y), (w - 1, y), tuple(floor * 0.8), 1, cv2.LINE_AA)
    cv2.rectangle(img, (0, base - round(0.12 * m)), (w, base), tuple(wall * 0.55), -1)  # skirting board
    # Two doors, a poster and a bench, each in its own 2 m slot of the wall so they never overlap.
    slots = [round(k * w / max(4, int(w / (2 * m))) + 0.2 * m) for k in rng.permutation(max(4, int(w / (2 * m))))]
    for x in slots[:2]:
        cv2.rectangle(img, (x, base - round(2.1 * m)), (x + round(0.95 * m), base), tuple(rng.uniform(40, 110, 3)), -1)
        cv2.circle(img, (x + round(0.8 * m), base - round(1.0 * m)), max(1, round(0.04 * m)), (180, 180, 180), -1)
    x = slots[2]
    cv2.rectangle(img, (x, base - round(2.0 * m)), (x + round(0.7 * m), base - round(1.0 * m)),
                  tuple(rng.uniform(30, 230, 3)), -1)
    cv2.rectangle(img, (x + round(0.1 * m), base - round(1.8 * m)), (x + round(0.6 * m), base - round(1.5 * m)),
                  tuple(rng.uniform(30, 230, 3)), -1)
    x = slots[3]
    cv2.rectangle(img, (x, base - round(0.45 * m)), (x + round(1.6 * m), base - round(0.38 * m)), (50, 70, 90), -1)
    for leg in (x + round(0.1 * m), x + round(1.45 * m)):
        cv2.rectangle(img, (leg, base - round(0.4 * m)), (leg + max(1, round(0.05 * m)), base), (40, 40, 40), -1)
    # A potted plant by the wall, behind everyone's path: a static distractor nobody walks through.
    z = cam.depths[1] * 1.12
    s, side = cam.face(z), float(rng.choice([-1, 1]))
    px, py = round(cam.column(side * cam.half_width_m(z) * 0.8, s)), round(cam.row(0.0, s))
    pm = s / FACE_M  # px per metre at the plant
    cv2.rectangle(img, (px - round(0.15 * pm), py - round(0.35 * pm)), (px + round(0.15 * pm), py), (40, 60, 120), -1)
    for _ in range(9):
        centre = (px + round(rng.normal(0, 0.15) * pm), py - round(rng.uniform(0.45, 1.0) * pm))
        axes = (max(1, round(0.18 * pm)), max(1, round(0.08 * pm)))
        leaf = tuple(rng.uniform([20, 90, 20], [70, 160, 70]))
        cv2.ellipse(img, centre, axes, float(rng.uniform(0, 180)), 0, 360, leaf, -1, cv2.LINE_AA)
    cv2.rectangle(img, (0, 0), (w, max(2, round(0.03 * h))), tuple(wall * 1.1), -1)  # ceiling lights' glare band
    return np.clip(img, 0, 255).astype(np.uint8)


@dataclass(frozen=True)
class _Light:
    """Slow global drift of brightness and contrast, and optionally a light switched at ``switch_s``."""

    period_s: tuple[float, float]
    phase: tuple[float, float]
    drift: float
    contrast: float
    switch_s: float | None
    switch_gain: float

    def at(self, t: float) -> tuple[float, float]:
        """``alpha, beta`` of ``out = alpha * image + beta``."""
        gain = 1 + self.drift * math.sin(2 * math.pi * t / self.period_s[0] + self.phase[0])
        if self.switch_s is not None and t >= self.switch_s:
            gain *= self.switch_gain
        c = 1 + self.contrast * math.sin(2 * math.pi * t / self.period_s[1] + self.phase[1])
        return c * gain, 128 * (1 - c)


class WalkingScene:
    """A scripted video: every frame and its truth follow from the arguments of :func:`walking_scene`."""

    def __init__(self, seed: int, fps: float, n_frames: int, cam: _Camera, walkers: list[_Walker],
                 crops: list[np.ndarray], background: np.ndarray, light: _Light, noise: float, blur: float,
                 jpeg_quality: tuple[int, int]):
        self.seed, self.fps, self.cam = seed, float(fps), cam
        self.size = (cam.width, cam.height)
        self.walkers, self.crops, self.background = walkers, crops, background
        self.light, self.blur, self.jpeg_quality = light, blur, jpeg_quality
        noise_rng = np.random.default_rng([seed, 1])
        bank = [noise_rng.normal(0, noise, background.shape) for _ in range(7)]
        # Sensor noise as two saturating uint8 adds, so a frame costs two fast OpenCV calls.
        self._noise = [(np.clip(n, 0, 255).astype(np.uint8), np.clip(-n, 0, 255).astype(np.uint8)) for n in bank]
        self._faces: dict[tuple[int, int], np.ndarray] = {}
        self._alpha: dict[int, np.ndarray] = {}
        self._poses: list[list[_Pose]] = []
        self.truth: list[list[FaceTruth]] = []
        self.people: list[Person] = []
        self._script_truth(n_frames)

    def __len__(self) -> int:
        return len(self.truth)

    @property
    def duration_s(self) -> float:
        return len(self) / self.fps

    def _script_truth(self, n_frames: int) -> None:
        w, h = self.size
        owner = np.empty((h, w), np.int16)
        seen: dict[int, list[tuple[int, FaceTruth]]] = {wk.id: [] for wk in self.walkers}
        in_view: dict[int, list[int]] = {wk.id: [] for wk in self.walkers}
        for i in range(n_frames):
            t = i / self.fps
            poses = [p for wk in self.walkers if (p := _pose(wk, t, self.cam)) is not None and p.in_view(w, h)]
            poses.sort(key=lambda p: -p.depth)  # far first, so the nearer person paints over
            owner.fill(-1)
            for p in poses:
                p.paint(owner, p.walker.id)
            faces = []
            for p in poses:
                in_view[p.walker.id].append(i)
                x, y, side = p.face
                x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + side, w), min(y + side, h)
                if x1 <= x0 or y1 <= y0:
                    continue
                shown = int(np.count_nonzero(owner[y0:y1, x0:x1] == p.walker.id)) / (side * side)
                face = FaceTruth(p.walker.id, (x0, y0, x1 - x0, y1 - y0), p.walker.label, round(shown, 3))
                faces.append(face)
                seen[p.walker.id].append((i, face))
            self._poses.append(poses)
            self.truth.append(faces)
        for wk in self.walkers:
            if not in_view[wk.id]:
                continue
            frames = seen[wk.id]
            sides = [f.box[2] for _, f in frames if f.box[2] == f.box[3]] or [0]  # whole faces only
            span = wk.still_span()
            self.people.append(Person(
                id=wk.id, label=wk.label, enter_frame=in_view[wk.id][0], leave_frame=in_view[wk.id][-1],
                first_frame=frames[0][0] if frames else -1, last_frame=frames[-1][0] if frames else -1,
                frames_visible=sum(1 for _, f in frames if f.visible > 0), face_px=(min(sides), max(sides)),
                stood_still=span is not None,
                still_frames=(math.ceil(span[0] * self.fps), math.floor(span[1] * self.fps)) if span else None))

    def empty_frames(self) -> list[int]:
        """Frames with nobody in view (not even a shoulder)."""
        return [i for i, poses in enumerate(self._poses) if not poses]

    def _face(self, crop: int, side: int) -> tuple[np.ndarray, np.ndarray]:
        """The crop at ``side`` px and its alpha (opaque inside, feathered at the border), made once per size."""
        if (crop, side) not in self._faces:
            self._faces[crop, side] = cv2.resize(self.crops[crop], (side, side),
                                                 interpolation=cv2.INTER_AREA).astype(np.float32)
        if side not in self._alpha:
            edge = np.minimum(np.arange(side), np.arange(side)[::-1]) + 0.5
            ramp = np.clip(edge / max(1.0, side / 8), 0, 1)
            self._alpha[side] = np.minimum(ramp[:, None], ramp[None, :])[:, :, None].astype(np.float32)
        return self._faces[crop, side], self._alpha[side]

    def _draw(self, img: np.ndarray, pose: _Pose) -> None:
        for poly, colour in pose.parts:
            cv2.fillPoly(img, [poly], colour, cv2.LINE_AA)
        cv2.ellipse(img, pose.head[0], pose.head[1], 0, 0, 360, pose.walker.clothes[2], -1, cv2.LINE_AA)
        x, y, side = pose.face
        face, alpha = self._face(pose.walker.crop, side)
        h, w = img.shape[:2]
        x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + side, w), min(y + side, h)
        if x1 <= x0 or y1 <= y0:
            return
        f, a = face[y0 - y:y1 - y, x0 - x:x1 - x], alpha[y0 - y:y1 - y, x0 - x:x1 - x]
        region = img[y0:y1, x0:x1].astype(np.float32)
        img[y0:y1, x0:x1] = (f * a + region * (1 - a)).astype(np.uint8)

    def render(self, index: int, people: bool = True) -> np.ndarray:
        """Frame ``index`` (BGR uint8); ``people=False`` gives the same light, noise and JPEG with nobody in it."""
        if not 0 <= index < len(self):
            raise IndexError(f"frame {index} is outside the scene's {len(self)} frames")
        img = self.background.copy()
        if people:
            for pose in self._poses[index]:
                self._draw(img, pose)
        if self.blur > 0:
            img = cv2.GaussianBlur(img, (0, 0), self.blur)
        alpha, beta = self.light.at(index / self.fps)
        img = cv2.convertScaleAbs(img, alpha=alpha, beta=beta)
        up, down = self._noise[index % len(self._noise)]
        img = cv2.subtract(cv2.add(img, up), down)
        rng = np.random.default_rng([self.seed, 2, index])  # per frame, so any frame can be made alone
        quality = int(rng.integers(self.jpeg_quality[0], self.jpeg_quality[1] + 1))
        ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, quality])
        if not ok:
            raise RuntimeError(f"OpenCV could not JPEG-encode frame {index}")
        out = cv2.imdecode(buf, cv2.IMREAD_COLOR)
        if out is None:
            raise RuntimeError(f"OpenCV could not decode its own JPEG of frame {index}")
        return out

    def frames(self) -> Iterator[WalkFrame]:
        for i in range(len(self)):
            yield WalkFrame(i, round(i * 1000 / self.fps), self.render(i), self.truth[i])

    def truth_json(self) -> dict[str, Any]:
        """The whole truth as JSON-ready data: the scene, its people, and each frame's faces."""
        return {
            "seed": self.seed, "fps": self.fps, "size": list(self.size), "frames": len(self),
            "people": [asdict(p) for p in self.people],
            "truth": [[{"id": f.person_id, "box": list(f.box), "label": f.label, "visible": f.visible} for f in faces]
                      for faces in self.truth],
        }

    def write_video(self, path: Path | str) -> dict[str, Any]:
        """Encode every frame to ``path`` (``.avi``: MJPG, else mp4v) and the truth beside it as ``.json``."""
        path = Path(path)
        write_video(path, (f.image for f in self.frames()), fps=self.fps)
        truth = self.truth_json()
        path.with_suffix(".json").write_text(json.dumps(truth, separators=(",", ":")))
        return truth


def default_data() -> tuple[Path, ...]:
    """The folders faces come from by default: 12K's test split and chandrikadeb7 (never trained on)."""
    from bench.common import DATA  # here, not at the top: bench.common may itself build walking scenes

    return DATA / "facemask12k" / "test", DATA / "chandrikadeb7"


def face_pool(data: Sequence[Path] | None = None, per_class: int = 24, seed: int = 0,
              faces_only: bool = False) -> list[tuple[np.ndarray, str]]:
    """``per_class`` crops of each label from each folder of ``data`` (default :func:`default_data`).

    ``faces_only``: leave out images that are no face crop (YuNet's largest face under
    :data:`MIN_FACE_SHARE` of the width, :func:`~bench.scenes.compose.face_width_share`). Both sets hold
    some: chandrikadeb7 has photos of people from the waist up, 12K drawings. Pasted as a face, such an
    image makes a truth face box three times the face in it, which no detector can match: a masked
    "person" never found (bench.quality --walking's people figures, docs/quality.md).
    """
    folders = default_data() if data is None else tuple(Path(d) for d in data)
    rng = np.random.default_rng([seed, 3])
    pool: list[tuple[np.ndarray, str]] = []
    for folder in folders:
        if not folder.is_dir():
            raise FileNotFoundError(f"no face crops at {folder}: put MaskWatch's shared data beside the repository "
                                    "(or set MASKWATCH_SHARED), or pass the folders to use")
        pool.extend(load_face_pool(folder, per_class, rng))
    if faces_only:
        from bench.common import MODELS, need  # here, not at the top: bench.common may itself build walking scenes

        yunet = face_finder(need(MODELS / "face_detection_yunet_2023mar.onnx"))
        pool = [(img, label) for img, label in pool if face_width_share(img, yunet) >= MIN_FACE_SHARE]
    return pool


def walking_scene(seed: int = 0, duration_s: float = 60.0, fps: float = 5.0, size: tuple[int, int] = (640, 360),
                  people_per_min: float = 6.0, still_share: float = 0.1, still_s: tuple[float, float] = (20.0, 30.0),
                  standers: int = 0, face_px: tuple[int, int] = (16, 80), unmasked_share: float = 0.5,
                  lead_s: float = 3.0, light_drift: float = 0.12, light_switch_s: float | None = None,
                  switch_gain: float = 0.6, noise: float = 2.5, blur: float = 0.6,
                  jpeg_quality: tuple[int, int] = (60, 80), pool: FacePool | None = None,
                  data: Sequence[Path] | None = None) -> WalkingScene:
    """A scene of ``duration_s`` at ``fps``: nobody for ``lead_s``, then people arriving ``people_per_min``.

    Arrivals are spread around the mean interval; a share ``still_share`` of them stands still for
    ``still_s`` seconds on the way, and ``standers`` more (arriving first) always do. People who
    could not leave before the end are not scripted. ``face_px`` bounds face sides (far to near),
    ``unmasked_share`` is the share without a mask. The light drifts by ``light_drift`` (gain) and
    is multiplied by ``switch_gain`` from ``light_switch_s`` on; ``noise`` is the sensor noise's
    standard deviation and each frame is JPEG-compressed at a quality drawn from ``jpeg_quality``.
    Faces come from ``pool`` or, when it is None, from :func:`face_pool` of ``data``.
    """
    w, h = size
    if not 1 <= face_px[0] < face_px[1] <= 0.7 * h:
        raise ValueError(f"face_px must be two sizes, smaller first, the larger under 70% of the height {h}: "
                         f"got {face_px}")
    if fps <= 0 or duration_s <= 0:
        raise ValueError(f"fps and duration_s must be positive, got fps={fps} duration_s={duration_s}")
    crops_labels = list(pool) if pool is not None else face_pool(data, seed=seed)
    labels: dict[str, list[int]] = {"with_mask": [], "without_mask": []}
    for i, (_, label) in enumerate(crops_labels):
        labels.setdefault(label, []).append(i)
    missing = [label for label, idx in labels.items() if not idx]
    if missing:
        raise ValueError(f"the face pool has no {' or '.join(missing)} crops: give it both labels")
    cam = _Camera(w, h, face_px)
    rng = np.random.default_rng(seed)
    script = _Script(rng, cam, labels, unmasked_share)
    t = lead_s
    for _ in range(standers):
        script.add(script.person(t, float(rng.uniform(*still_s))), duration_s)
        t += float(rng.uniform(1.0, 3.0))
    if people_per_min > 0:
        gap = 60.0 / people_per_min
        t = lead_s + float(rng.uniform(0, gap))
        while t < duration_s:
            stands = rng.random() < still_share
            script.add(script.person(t, float(rng.uniform(*still_s)) if stands else 0.0), duration_s)
            t += gap * float(rng.uniform(0.3, 1.7))
    light = _Light(period_s=(float(rng.uniform(60, 180)), float(rng.uniform(40, 120))),
                   phase=(float(rng.uniform(0, 2 * math.pi)), float(rng.uniform(0, 2 * math.pi))),
                   drift=light_drift, contrast=light_drift * 0.6, switch_s=light_switch_s, switch_gain=switch_gain)
    return WalkingScene(seed, fps, int(round(duration_s * fps)), cam, script.walkers, [c for c, _ in crops_labels],
                        _background(rng, cam), light, noise, blur, jpeg_quality)


def preset_scene(name: str, seed: int = 0, **overrides: Any) -> WalkingScene:
    """A scene from :data:`PRESETS` (``quiet``, ``busy``, ``still_person``), any argument overridden."""
    if name not in PRESETS:
        raise ValueError(f"no walking preset {name!r}; choose one of {', '.join(PRESETS)}")
    return walking_scene(seed=seed, **{**PRESETS[name], **overrides})


def contact_sheet(scene: WalkingScene, tiles: int = 16, columns: int = 4, tile_width: int = 320) -> np.ndarray:
    """Frames spread over the scene with their truth drawn: green masked, red unmasked, grey mostly hidden."""
    w, h = scene.size
    tile_h = round(tile_width * h / w)
    rows = math.ceil(tiles / columns)
    sheet = np.zeros((rows * tile_h, columns * tile_width, 3), np.uint8)
    thick = max(2, round(2 * w / tile_width))  # lines stay visible after the tile is shrunk
    for k, i in enumerate(np.linspace(0, len(scene) - 1, tiles).round().astype(int)):
        img = scene.render(int(i))
        for f in scene.truth[i]:
            x, y, bw, bh = f.box
            colour = (160, 160, 160) if f.visible < 0.5 else (0, 200, 0) if f.label == "with_mask" else (0, 0, 230)
            cv2.rectangle(img, (x, y), (x + bw, y + bh), colour, thick)
            cv2.putText(img, str(f.person_id), (x, max(12, y - 4)), cv2.FONT_HERSHEY_SIMPLEX, thick / 4, colour, thick)
        tile = cv2.resize(img, (tile_width, tile_h), interpolation=cv2.INTER_AREA)
        cv2.putText(tile, f"#{i} {i / scene.fps:.1f}s faces {len(scene.truth[i])}", (4, 14),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1, cv2.LINE_AA)
        r, c = divmod(k, columns)
        sheet[r * tile_h:(r + 1) * tile_h, c * tile_width:(c + 1) * tile_width] = tile
    return sheet


def summary(scene: WalkingScene) -> dict[str, Any]:
    """What a person checks first: how many people, how long they take to cross, face sizes, crowding."""
    crossing = [(p.leave_frame - p.enter_frame + 1) / scene.fps for p in scene.people if not p.stood_still]
    seen = [p.face_px for p in scene.people if p.frames_visible]
    return {
        "frames": len(scene), "people": len(scene.people), "stood_still": sum(p.stood_still for p in scene.people),
        "unmasked": sum(p.label == "without_mask" for p in scene.people),
        "crossing_s": [round(min(crossing), 1), round(float(np.median(crossing)), 1), round(max(crossing), 1)]
        if crossing else None,
        "face_px": [min(a for a, _ in seen), max(b for _, b in seen)] if seen else None,
        "most_faces_in_a_frame": max(len(t) for t in scene.truth),
        "empty_share": round(len(scene.empty_frames()) / len(scene), 2),
    }


def main(argv: Sequence[str] | None = None) -> None:
    from bench.common import parse_pair  # here, not at the top: bench.common may itself build walking scenes

    p = argparse.ArgumentParser(prog="python -m bench.scenes.walking", description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", choices=sorted(PRESETS), default="busy")
    p.add_argument("--seconds", type=float, help="length (default: the preset's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--fps", type=float, default=5.0)
    p.add_argument("--size", type=parse_pair, default=(640, 360), help="WIDTHxHEIGHT (default 640x360)")
    p.add_argument("--out", type=Path, required=True, help="folder for the video, its truth JSON and a contact sheet")
    args = p.parse_args(argv)
    overrides: dict[str, Any] = {"fps": args.fps, "size": args.size}
    if args.seconds is not None:
        overrides["duration_s"] = args.seconds
    # bench.quality --walking's pool: with the same seed, length and size, this is the scene it scores
    scene = preset_scene(args.preset, seed=args.seed, pool=face_pool(faces_only=True), **overrides)
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / f"walking-{args.preset}-{args.seed}"
    scene.write_video(stem.with_suffix(".mp4"))
    cv2.imwrite(str(stem.with_name(stem.name + "-sheet.png")), contact_sheet(scene))
    print(json.dumps({"video": str(stem.with_suffix(".mp4")), **summary(scene)}))


if __name__ == "__main__":
    main()
