"""Face trackers side by side on walking-people scenes: identity switches, fragmentation, CPU, JSON checkpoints.

    python -m bench.tracking [--busy 8] [--seed 0] [--rounds 3]

Scenes: ``busy`` walking-people scenes of 60 s, two of one person standing 25 s, and a quiet one
(bench/scenes/walking.py). Their per-frame truth goes through a simulated detector, the same
detections for every tracker: boxes jitter by 5 % of the face, a face in full view is missed 30 %
of the time at 16 px down to 5 % from 64 px (more when partly hidden; under half seen, always),
and now and then a false face appears. Motion gating sends a frame only when a face moved, came or
went, and a keyframe every 2 s, as the producer does. So the figures measure association alone.

Candidates: MaskWatch's own tracker (``maskwatch/vision/tracking.py``), also written to JSON and
restored before every frame; norfair with IoU and with centre distance in face sizes; supervision's
ByteTrack; motpy; each library with the loosest matching that helped it here. The libraries count
time in frames, so the frames gating withheld are fed to them as empty ones (the worker knows the
capture times, so it could do the same), and all keep a lost face as long as ours. A library that
is not installed is reported as such (``pip install norfair 'supervision<0.31' motpy``:
supervision deprecated ByteTrack in 0.28 and dropped it in 0.31; norfair pins numpy<2, so install
it with ``--no-deps`` beside filterpy, scipy and rich).

Figures per tracker: ``people_with_id`` (people detected at least once who got an id),
``id_switches`` (a person's detection given another id than that person's previous one),
``fragmented`` (people seen under more than one id), ``tracks_per_person``, ``merged`` (ids given to
more than one person), MOTA-like counts over the faces in the frames sent (``fn``: faces without
an id, missed by the detector or held back by the tracker; ``fp``: ids on false detections), CPU
per frame and its ratio to ours, and whether the state can be written to Redis as JSON
(``json_state``; the libraries keep it in objects only pickle restores, and Redis content is never
unpickled). The JSON line also carries ``checkpoint_same_ids`` (restoring from JSON before every
frame changed no id) and the size of our state per camera.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import time
import warnings
from collections import defaultdict
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from bench.common import emit, machine, percentiles, ratio, show
from bench.scenes.walking import FaceTruth, WalkingScene, face_pool, preset_scene, visible_faces
from maskwatch.vision.detect import Detection
from maskwatch.vision.tracking import FaceTracker

KEYFRAME_MS = 2000  # motion gating's keyframe period (the producer's default)
MAX_AGE_MS = FaceTracker().max_age_ms  # every tracker keeps a lost face as long as ours
JITTER = 0.05  # detector box noise, share of the face size
MISS_SMALL, MISS_LARGE = 0.30, 0.05  # detector miss rate at 16 px and from 64 px up, for a face in full view
FALSE_PER_FRAME = 0.03

Ids = list[Hashable | None]  # one per detection of a frame: its track (None: held back)


@dataclass(frozen=True)
class Observed:
    """A simulated detection and the person it really is (None: a false face)."""

    det: Detection
    person: int | None


@dataclass(frozen=True)
class SentFrame:
    ts: int
    size: tuple[int, int]
    faces: int  # faces a detector could find (at least half seen)
    observed: list[Observed]


Scene = list[SentFrame]


def detect(truth: Sequence[FaceTruth], rng: np.random.Generator, size: tuple[int, int]) -> list[Observed]:
    """What a detector would return for these faces: jittered, some missed, maybe a false one."""
    out = []
    for face in visible_faces(truth):
        x, y, w, h = face.box
        if rng.random() < np.interp(max(w, h), [16, 64], [MISS_SMALL, MISS_LARGE]) + (1 - face.visible):
            continue
        s = rng.normal(1.0, JITTER)
        cx, cy = x + w / 2 + rng.normal(0, JITTER * w), y + h / 2 + rng.normal(0, JITTER * h)
        nw, nh = max(4, round(w * s)), max(4, round(h * s))
        box = (round(cx - nw / 2), round(cy - nh / 2), nw, nh)
        out.append(Observed(Detection(box, float(rng.uniform(0.6, 0.95))), face.person_id))
    if rng.random() < FALSE_PER_FRAME:
        side = int(rng.integers(16, 40))
        box = (int(rng.integers(0, size[0] - side)), int(rng.integers(0, size[1] - side)), side, side)
        out.append(Observed(Detection(box, float(rng.uniform(0.5, 0.7))), None))
    return out


def gated(scene: WalkingScene) -> list[int]:
    """The frames motion gating sends: those where a face moved, came or went, and a keyframe every 2 s."""
    sent: list[int] = []
    previous: dict[int, tuple[int, int, int, int]] = {}
    last_ts = None
    for i, faces in enumerate(scene.truth):
        ts = round(i * 1000 / scene.fps)
        now = {f.person_id: f.box for f in faces}
        if now != previous or last_ts is None or ts - last_ts >= KEYFRAME_MS:
            sent.append(i)
            last_ts = ts
        previous = now
    return sent


def simulate(scene: WalkingScene, rng: np.random.Generator) -> Scene:
    """A scene as a tracker gets it: the frames gating sends, with what the detector found in each."""
    return [SentFrame(round(i * 1000 / scene.fps), scene.size, len(visible_faces(scene.truth[i])),
                      detect(scene.truth[i], rng, scene.size)) for i in gated(scene)]


# --- the candidates: update(ts_ms, detections, frame size) -> Ids; state() -> JSON text or TypeError ---

class Ours:
    def __init__(self) -> None:
        self.tracker = FaceTracker()

    def update(self, ts: int, dets: list[Detection], size: tuple[int, int]) -> Ids:
        return [f.track_id for f in self.tracker.update(ts, dets, size).faces]

    def state(self) -> str:
        return json.dumps(self.tracker.to_state(), allow_nan=False)


class OursCheckpointed(Ours):
    """Ours, written to JSON and restored before every frame, as if the camera moved to another worker each time."""

    def update(self, ts: int, dets: list[Detection], size: tuple[int, int]) -> Ids:
        self.tracker = FaceTracker.from_state(json.loads(self.state()))
        return super().update(ts, dets, size)


class FrameClocked:
    """A library that counts frames: the frames gating withheld are fed to it as empty ones."""

    fps = 5.0
    max_age_frames = round(MAX_AGE_MS / 1000 * fps)

    def __init__(self, tracker: Any) -> None:
        self.tracker = tracker
        self.ts: int | None = None

    def update(self, ts: int, dets: list[Detection], size: tuple[int, int]) -> Ids:
        if self.ts is not None:
            for _ in range(round((ts - self.ts) / 1000 * self.fps) - 1):
                self.step([])
        self.ts = ts
        return self.step(dets)

    def step(self, dets: list[Detection]) -> Ids:
        raise NotImplementedError

    def state(self) -> str:
        return json.dumps(vars(self.tracker))  # none offers a state export: this is as far as JSON gets


def xyxy(det: Detection) -> np.ndarray:
    x, y, w, h = det.box
    return np.array([x, y, x + w, y + h], float)


class Norfair(FrameClocked):
    def __init__(self, distance: str) -> None:
        from norfair import Tracker

        logging.disable(logging.WARNING)  # norfair warns on the root logger that a Python distance is slow
        try:
            super().__init__(Tracker(distance_function="iou" if distance == "iou" else self.face_sizes,
                                     distance_threshold=0.95 if distance == "iou" else 3.0,
                                     hit_counter_max=self.max_age_frames, initialization_delay=0))
        finally:
            logging.disable(logging.NOTSET)

    @staticmethod
    def face_sizes(det: Any, obj: Any) -> float:
        """Centre distance in face sizes: what small, fast faces need."""
        (x1, y1), (x2, y2) = det.points
        (ex1, ey1), (ex2, ey2) = obj.estimate
        return float(np.hypot((x1 + x2 - ex1 - ex2) / 2, (y1 + y2 - ey1 - ey2) / 2) / max(x2 - x1, y2 - y1, 1.0))

    def step(self, dets: list[Detection]) -> Ids:
        from norfair import Detection as NorfairDetection

        given = [NorfairDetection(xyxy(d).reshape(2, 2)) for d in dets]
        ids = {id(o.last_detection): o.id for o in self.tracker.update(given)}
        return [ids.get(id(n)) for n in given]


class ByteTrack(FrameClocked):
    def __init__(self) -> None:
        import supervision as sv

        self.sv = sv
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # deprecated since 0.28 for the `trackers` package
            # lost_track_buffer counts frames at 30 fps (it is scaled by frame_rate / 30); 0.99 accepts any overlap.
            super().__init__(sv.ByteTrack(lost_track_buffer=round(self.max_age_frames * 30 / self.fps),
                                          frame_rate=self.fps, minimum_matching_threshold=0.99))

    def step(self, dets: list[Detection]) -> Ids:
        found = self.tracker.update_with_detections(self.sv.Detections(
            xyxy=np.array([xyxy(d) for d in dets]).reshape(-1, 4), confidence=np.array([d.confidence for d in dets]),
            class_id=np.zeros(len(dets), int), data={"i": np.arange(len(dets))}))
        ids: Ids = [None] * len(dets)
        for i, tid in zip(found.data.get("i", ()), found.tracker_id if len(found) else ()):
            ids[int(i)] = int(tid)
        return ids


class Motpy(FrameClocked):
    def __init__(self) -> None:
        from motpy import MultiObjectTracker

        super().__init__(MultiObjectTracker(dt=1 / self.fps, tracker_kwargs={"max_staleness": self.max_age_frames},
                                            matching_fn_kwargs={"min_iou": 0.01}))

    def step(self, dets: list[Detection]) -> Ids:
        from motpy import Detection as MotpyDetection

        boxes = [xyxy(d) for d in dets]
        self.tracker.step([MotpyDetection(box=b, score=d.confidence) for b, d in zip(boxes, dets)])
        # motpy returns filtered boxes, not detections: each fresh track names the detection it overlaps most.
        ids: Ids = [None] * len(dets)
        for track in self.tracker.active_tracks(max_staleness=0.5):
            overlaps = [iou(b, track.box) for b in boxes]
            best = int(np.argmax(overlaps)) if overlaps else -1
            if best >= 0 and overlaps[best] > 0.3 and ids[best] is None:
                ids[best] = track.id
        return ids


def iou(a: np.ndarray, b: np.ndarray) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    return float(inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter))


# name -> (module that must be installed, factory)
CANDIDATES: dict[str, tuple[str | None, Callable[[], Any]]] = {
    "maskwatch": (None, Ours),
    "maskwatch+ckpt": (None, OursCheckpointed),
    "norfair-iou": ("norfair", lambda: Norfair("iou")),
    "norfair-facesizes": ("norfair", lambda: Norfair("facesizes")),
    "bytetrack": ("supervision", ByteTrack),
    "motpy": ("motpy", Motpy),
}


# --- measuring ----------------------------------------------------------------------------------------

def run(make: Callable[[], Any], scenes: Sequence[Scene]) -> tuple[list[list[Ids]], float, bool]:
    """Each scene through a fresh tracker: ids per frame, CPU seconds, and whether its state wrote as JSON."""
    ids: list[list[Ids]] = []
    cpu, json_ok = 0.0, True
    for scene in scenes:
        tracker = make()
        start = time.process_time()
        ids.append([tracker.update(f.ts, [o.det for o in f.observed], f.size) for f in scene])
        cpu += time.process_time() - start
        try:
            tracker.state()
        except TypeError:
            json_ok = False
    return ids, cpu, json_ok


def score(scenes: Sequence[Scene], ids: Sequence[Sequence[Ids]]) -> dict[str, Any]:
    """Identity and MOTA-like figures of one tracker's ids against the truth."""
    switches = fp = found = 0
    detected: set[tuple[int, int]] = set()
    people: dict[tuple[int, int], set[Hashable]] = defaultdict(set)
    owners: dict[tuple[int, Hashable], set[int]] = defaultdict(set)
    for si, (scene, scene_ids) in enumerate(zip(scenes, ids)):
        last: dict[int, Hashable] = {}
        for frame, frame_ids in zip(scene, scene_ids):
            for o, tid in zip(frame.observed, frame_ids):
                if o.person is not None:
                    detected.add((si, o.person))
                if tid is None:
                    continue
                if o.person is None:
                    fp += 1
                    continue
                found += 1
                switches += o.person in last and last[o.person] != tid
                last[o.person] = tid
                people[si, o.person].add(tid)
                owners[si, tid].add(o.person)
    gt = sum(f.faces for scene in scenes for f in scene)
    fn = gt - found
    return {"people_detected": len(detected), "people_with_id": len(people), "id_switches": switches,
            "fragmented": sum(len(v) > 1 for v in people.values()),
            "tracks_per_person": round(sum(map(len, people.values())) / max(len(people), 1), 3),
            "merged": sum(len(v) > 1 for v in owners.values()), "gt": gt, "fn": fn, "fp": fp,
            "mota": round(1 - (fn + fp + switches) / max(gt, 1), 4)}


def state_bytes(scenes: Sequence[Scene]) -> dict[str, float | None]:
    """Size of our JSON state per camera after each frame: what the commit writes to Redis."""
    sizes = []
    for scene in scenes:
        tracker = FaceTracker()
        for f in scene:
            for face in tracker.update(f.ts, [o.det for o in f.observed], f.size).faces:
                if face.track.needs_look(face.box[2], 500.0, f.ts):  # as the worker will: classify when it pays
                    face.track.add_look(0.5, face.box[2], 500.0, f.ts)
            sizes.append(len(json.dumps(tracker.to_state(), separators=(",", ":"))))
    return {**percentiles(sizes, (50, 99)), "max": float(max(sizes))}


def walking_scenes(busy: int, seed: int) -> list[WalkingScene]:
    """``busy`` busy scenes, two of a person standing 25 s, and a quiet one."""
    pool = face_pool(seed=seed)
    return ([preset_scene("busy", seed=seed + i, pool=pool) for i in range(busy)]
            + [preset_scene("still_person", seed=seed + i, pool=pool) for i in range(2)]
            + [preset_scene("quiet", seed=seed, pool=pool)])


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m bench.tracking", description=__doc__.split("\n\n")[0])
    ap.add_argument("--busy", type=int, default=8, help="busy walking-people scenes of 60 s (default 8)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--rounds", type=int, default=3, help="timed passes per tracker, in alternating order (default 3)")
    args = ap.parse_args(argv)

    rng = np.random.default_rng(args.seed)
    scenes = [simulate(scene, rng) for scene in walking_scenes(args.busy, args.seed)]
    frames = sum(len(s) for s in scenes)
    available = {name: make for name, (module, make) in CANDIDATES.items()
                 if module is None or importlib.util.find_spec(module) is not None}
    missing = sorted(set(CANDIDATES) - set(available))
    cpu: dict[str, list[float]] = defaultdict(list)
    ids: dict[str, list[list[Ids]]] = {}
    json_ok: dict[str, bool] = {}
    for r in range(args.rounds):
        for name in list(available) if r % 2 == 0 else reversed(list(available)):
            ids[name], seconds, json_ok[name] = run(available[name], scenes)
            cpu[name].append(seconds)
    base = float(np.median(cpu["maskwatch"]))
    results = {name: {**score(scenes, ids[name]), "us_per_frame": round(float(np.median(cpu[name])) / frames * 1e6, 1),
                      "cpu_ratio": ratio(float(np.median(cpu[name])), base), "json_state": json_ok[name]}
               for name in available}
    same = ids["maskwatch"] == ids["maskwatch+ckpt"]

    headers = ["tracker", "people with id", "id switches", "fragmented", "tracks/person", "merged", "fn", "fp",
               "MOTA", "us/frame", "CPU x ours", "JSON state"]
    rows = [[name, f"{r['people_with_id']}/{r['people_detected']}", r["id_switches"],
             r["fragmented"], r["tracks_per_person"], r["merged"], r["fn"], r["fp"], r["mota"], r["us_per_frame"],
             r["cpu_ratio"], "yes" if r["json_state"] else "no (pickle only)"] for name, r in results.items()]
    gt = results["maskwatch"]["gt"]
    show(f"Trackers on {len(scenes)} walking-people scenes, {frames} frames sent by motion gating with {gt} faces "
         f"(simulated detector); restored from JSON before every frame, ours gave the same ids: {same}",
         headers, rows)
    if missing:
        print(f"not installed, not measured: {', '.join(missing)}\n")
    sizes = state_bytes(scenes)
    print(f"our state per camera, JSON bytes: median {sizes['p50']}, p99 {sizes['p99']}, max {sizes['max']}\n")
    emit({"bench": "tracking", "scenes": len(scenes), "frames": frames, "faces": gt, "checkpoint_same_ids": same,
          "state_bytes": sizes, "not_installed": missing, "trackers": results, "machine": machine()})


if __name__ == "__main__":
    main()
