"""Which motion detector gates the producer: walking people flagged, false motion, region recall, CPU.

Every method of maskwatch/vision/motion.py (and the default at a smaller width, and without the
brightness match) sees the same frames in lock-step, each with its own detector and gate:

- **quiet**, **busy**, **still**: walking-people scenes (bench/scenes/walking.py: people entering,
  crossing, passing, some standing still, empty stretches; sensor noise, JPEG, slow lighting
  drift); in ``still`` one person walks in, stands 25 s and leaves;
- **rough**: a quiet scene from a poor camera: strong noise, low JPEG quality, deep drift;
- **switch**: an empty scene whose light drops to half at once; **step**: the same with a 20% drop
  (an exposure step: too small to rebuild the background, too large to ignore); **uneven**: the
  same scene dimmed unevenly (50% of the light on the left, 80% on the right), which a global
  gain cannot undo;
- **clips**: the real entrance clips in shared/videos (a person moves in every frame; no boxes).

Columns: ``walker`` is the share of frames with a walking person's face in view (at least half of
it) that are flagged moving (people standing still are the keyframes' job); ``false`` the share of
empty frames flagged in quiet and busy, ``false_rough`` in rough; ``region_recall`` the share of
those walking people's faces that lie wholly inside one motion region of their frame (an
unflagged frame misses all its faces); ``area`` the mean share of a flagged frame of those scenes
that its regions cover (what the worker still scans); ``burst``, ``burst_step``, ``burst_uneven`` the frames flagged
after the change of light; ``sent_quiet``, ``sent_busy``, ``sent_still`` the share of frames the
gate sends (motion, or a keyframe every 2 s: what the worker still analyses); ``clips`` the share
of the real clips' frames flagged; ``cpu`` the time per frame as a ratio to the cheapest
candidate, measured in alternating rounds in this run on busy frames (``ms``: that time, for scale
only).

    python -m bench.motion              # about a minute on 2 cores
    python -m bench.motion --size 1280x720 --seed 1
    python -m bench.motion --seconds 6 --rounds 1  # a smoke run
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np

from bench.common import SHARED, emit, interleaved, machine, parse_pair, ratio, show
from bench.scenes.walking import WalkingScene, face_pool, preset_scene, visible_faces, walking_scene
from maskwatch.vision.motion import GateDecision, MotionDetector, MotionGate, Region

Box = tuple[int, int, int, int]
KEYFRAME_S = 2.0
SPEED_FRAMES = 100
CANDIDATES: dict[str, dict[str, object]] = {
    "mog2": {"method": "mog2"},
    "knn": {"method": "knn"},
    "average": {"method": "average"},
    "mog2 width 160": {"method": "mog2", "width": 160},
    "mog2 no gain": {"method": "mog2", "gain": False},
    "average no gain": {"method": "average", "gain": False},
}


@dataclass(frozen=True)
class Truth:
    """What one frame holds: a walking person's face in view, nobody at all, and the walking people's visible faces.

    A frame with only a sliver of someone (a shoulder entering) is neither walking nor empty.
    """

    walking: bool
    empty: bool
    faces: list[Box]


@dataclass
class Tally:
    """One candidate's counts over every scene."""

    flags: dict[str, list[bool]] = field(default_factory=dict)  # per kind of frame: flagged or not
    areas: list[float] = field(default_factory=list)

    def add(self, kind: str, flag: bool) -> None:
        self.flags.setdefault(kind, []).append(flag)

    def share(self, kind: str) -> float | None:
        seen = self.flags.get(kind, [])
        return round(sum(seen) / len(seen), 3) if seen else None


def truth(scene: WalkingScene) -> list[Truth]:
    empty = set(scene.empty_frames())
    out = []
    for i, faces in enumerate(scene.truth):
        walkers = {p.id for p in scene.people if p.enter_frame <= i <= p.leave_frame
                   and not (p.still_frames and p.still_frames[0] <= i <= p.still_frames[1])}
        seen = [f.box for f in visible_faces(faces) if f.person_id in walkers]
        out.append(Truth(bool(seen), i in empty, seen))
    return out


def dimmed(scene: WalkingScene, start: int) -> Iterator[np.ndarray]:
    """The scene's frames, from ``start`` on lit unevenly: 50% of the light on the left to 80% on the right."""
    w = scene.size[0]
    dim = np.linspace(0.5, 0.8, w, dtype=np.float32)[None, :, None]
    for i, _, image, _ in scene.frames():
        yield image if i < start else np.clip(image * dim, 0, 255).astype(np.uint8)


def clips(size: tuple[int, int]) -> list[np.ndarray]:
    """The real entrance clips' frames at ``size``, one clip after the other."""
    out = []
    for path in sorted((SHARED / "videos").glob("*.mp4")):
        cap = cv2.VideoCapture(str(path))
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            out.append(cv2.resize(frame, size, interpolation=cv2.INTER_AREA))
        cap.release()
    return out


def inside(face: Box, regions: Sequence[Region]) -> bool:
    x, y, w, h = face
    return any(rx <= x and ry <= y and x + w <= rx + rw and y + h <= ry + rh for rx, ry, rw, rh in regions)


def covered(regions: Sequence[Region], size: tuple[int, int]) -> float:
    """Share of the frame the (possibly overlapping) regions cover."""
    mask = np.zeros((size[1], size[0]), np.uint8)
    for x, y, w, h in regions:
        mask[y:y + h, x:x + w] = 1
    return float(mask.mean())


def play(name: str, frames: Iterator[np.ndarray], truths: Sequence[Truth] | None, fps: float,
         tallies: dict[str, Tally], switch_at: int | None = None) -> int:
    """Feed one scene to every candidate in lock-step and tally; returns the frames played."""
    detectors = {c: MotionDetector(**opts) for c, opts in CANDIDATES.items()}
    gates = {c: MotionGate(KEYFRAME_S) for c in CANDIDATES}
    n = 0
    for i, image in enumerate(frames):
        n += 1
        size = (image.shape[1], image.shape[0])
        for c, detector in detectors.items():
            motion, tally = detector.update(image), tallies[c]
            tally.add(f"sent_{name}", gates[c].decide(round(i * 1000 / fps), motion) is not GateDecision.IDLE)
            if i == 0:
                continue  # the first frame starts the background
            if switch_at is not None and i >= switch_at:
                tally.add(f"burst_{name}", motion.moving)
            if truths is None:
                tally.add(name, motion.moving)
                continue
            if motion.moving:
                tally.areas.append(covered(motion.regions, size))
            t = truths[i]
            if t.walking:
                tally.add("walker", motion.moving)
                for face in t.faces:
                    tally.add("region_recall", motion.moving and inside(face, motion.regions))
            if t.empty:
                tally.add("false_rough" if name == "rough" else "false", motion.moving)
    return n


def feeder(options: dict[str, object], scene: WalkingScene) -> tuple[Callable[[], object], int]:
    """A call that feeds a running detector the next frames of ``scene`` (a busy one), round and round; how many."""
    frames = [scene.render(i) for i in range(min(SPEED_FRAMES + 1, len(scene)))]
    detector = MotionDetector(**options)
    detector.update(frames[0])  # started outside the timing: the steady cost is what a camera pays
    return (lambda: [detector.update(f) for f in frames[1:]]), len(frames) - 1


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.motion", description=__doc__.split("\n\n")[0])
    p.add_argument("--size", type=parse_pair, default=(640, 360), help="camera frame size, WIDTHxHEIGHT")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--fps", type=float, default=5.0)
    p.add_argument("--seconds", type=float, default=120.0, help="cut every scene to at most this long (a smoke run)")
    p.add_argument("--rounds", type=int, default=5, help="alternating timing rounds; each method's median is kept")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    common = {"size": args.size, "fps": args.fps, "pool": face_pool(seed=args.seed)}

    def cut(seconds: float) -> float:
        return min(seconds, args.seconds)

    walks = {"quiet": preset_scene("quiet", seed=args.seed, duration_s=cut(120.0), **common),
             "busy": preset_scene("busy", seed=args.seed + 1, duration_s=cut(60.0), **common),
             "still": preset_scene("still_person", seed=args.seed + 2, duration_s=cut(45.0), **common),
             "rough": preset_scene("quiet", seed=args.seed + 3, duration_s=cut(60.0), noise=8.0,
                                   jpeg_quality=(35, 55), light_drift=0.3, **common)}
    switch_s = cut(30.0) / 3

    def empty(**light: float) -> WalkingScene:
        return walking_scene(seed=args.seed + 4, duration_s=cut(30.0), people_per_min=0.0, **light, **common)

    at = round(switch_s * args.fps)
    tallies = {c: Tally() for c in CANDIDATES}
    counts = {}
    for name, scene in walks.items():
        counts[name] = play(name, (f.image for f in scene.frames()), truth(scene), args.fps, tallies)
    for name, gain in (("switch", 0.5), ("step", 0.8)):
        scene = empty(light_switch_s=switch_s, switch_gain=gain)
        counts[name] = play(name, (f.image for f in scene.frames()), None, args.fps, tallies, switch_at=at)
    counts["uneven"] = play("uneven", dimmed(empty(), at), None, args.fps, tallies, switch_at=at)
    real = clips(args.size)
    counts["clips"] = play("clips", iter(real), None, args.fps, tallies)

    speed = interleaved({c: feeder(opts, walks["busy"]) for c, opts in CANDIDATES.items()},
                        rounds=args.rounds, min_s=0.5)
    cheapest = max(speed.values())
    figures: dict[str, dict[str, float | None]] = {}
    for c, tally in tallies.items():
        bursts = {k: sum(tally.flags[f"burst_{k}"]) for k in ("switch", "step", "uneven")}
        figures[c] = {"walker": tally.share("walker"), "false": tally.share("false"),
                      "false_rough": tally.share("false_rough"), "region_recall": tally.share("region_recall"),
                      "area": round(float(np.mean(tally.areas)), 3) if tally.areas else None,
                      "burst": bursts["switch"], "burst_step": bursts["step"], "burst_uneven": bursts["uneven"],
                      "sent_quiet": tally.share("sent_quiet"), "sent_busy": tally.share("sent_busy"),
                      "sent_still": tally.share("sent_still"),
                      "clips": tally.share("clips"), "cpu": ratio(cheapest, speed[c]),
                      "ms": round(1000 / speed[c], 2)}
    headers = ["method", *next(iter(figures.values()))]
    w, h = args.size
    show(f"motion detectors on {w}x{h} frames at {args.fps:g} fps (frames: {counts}; cpu as a ratio to the cheapest)",
         headers, [[c, *f.values()] for c, f in figures.items()])
    emit({"bench": "motion", "machine": machine(), "size": [w, h], "fps": args.fps, "frames": counts,
          "keyframe_s": KEYFRAME_S, "default": MotionDetector().method, "methods": figures})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
