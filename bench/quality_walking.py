"""Today's path against motion gating + tracking, end to end on walking-people scenes (``bench.quality --walking``).

Each group of scenes (``busy``, ``quiet``, ``still_person``: bench/scenes/walking.py) is played as
that many cameras at the scenes' fps, one batch per frame time over the group's cameras (what a
worker holding those cameras reads), through:

- ``today``: every frame sent whole (a keyframe), YuNet on the whole frame, every face classified
  (the worker's :class:`~worker.processing.Processor` without tracks; ``MASKWATCH_MOTION=false
  MASKWATCH_TRACKING=false``);
- ``gated``: the producer's motion gating (:class:`producer.gating.CameraGating`: idle frames not
  sent, motion frames with their regions, a keyframe every ``keyframe_s``), then the same
  Processor with :class:`~worker.tracks.CameraTracks` (real trackers, a face classified when its
  track asks, labelled with its track's vote); the defaults of ``maskwatch up``;
- ``gated+NAME``: the gated path with other vision settings (``--variant``), for the frontier of
  CPU against unmasked faces flagged;
- ``today@gated_frames``: not a run, today's results scored on the frames the gate sent only, so
  that it and ``gated`` count the very same faces.

Every path is the real code on the same JPEG frames (encoded once at the producer's quality), in
one process and one thread (``cv2.setNumThreads(1)``, ``threads=1``), the paths interleaved frame
by frame so that the load of a shared machine falls on all alike.

Scoring. A result face matches a truth face of its frame when their boxes overlap with IoU >= 0.3
(greedy, best overlap first, one to one). A truth face counts when at least half of it is seen
(:func:`~bench.scenes.walking.visible_faces`); a result face matching a hidden one is no false
positive. Per frame, over the frames a path analysed (``per_frame``), and over all frames due
(``per_frame_due``: a face in a frame the gate left idle counts as missed): unmasked faces found and
flagged (found *and* labelled ``without_mask``), masked faces found and called masked, false
positives per analysed frame. Per person (a person counts when their face is at least half seen
in some frame): found (matched in any analysed frame); their label is, for a tracked path, the
vote (the label shown) of the track covering most of their matched frames (of equals, the first
seen), at its last match; for ``today``, the majority of their per-frame labels (a tie counts as
unmasked). ``flagged_any``: a
person shown ``without_mask`` at least once (what an alert would catch). Tracks: tracks per
person found, ID switches (a person's consecutive matches under different tracks), and tracks
matched to more than one person.

CPU per camera-second (process time, one thread): ``worker`` is the Processor (JPEG decode,
detection, tracking, classification, violation snapshots; Redis commit not included); ``producer``
is the JPEG encoding of the frames sent plus, gated, the motion detection of every frame due
(capture and decoding of the video, the same for both, not included).
"""

from __future__ import annotations

import argparse
import csv
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import cv2
import redis
from tqdm import tqdm

from bench.common import emit, machine, private_redis, show
from bench.people_score import ScenePeople, people_figures, person_outcomes, scene_people
from bench.scenes.walking import FaceTruth, WalkingScene, face_pool, preset_scene
from maskwatch.codec import Face, Frame, encode_frame
from maskwatch.keys import Keys
from maskwatch.settings import Settings
from maskwatch.utils import now_ms
from maskwatch.vision.jpeg import encode_jpeg
from maskwatch.vision.motion import GateDecision
from maskwatch.vision.pipeline import Pipeline
from producer.gating import CameraGating
from worker.consumer import Entry
from worker.processing import Processor
from worker.tracks import CameraTracks

# What the people issue asks of the gated path (the product's defaults), over all scenes: the count
# error as a share of truth, recall and correctness as shares, compliance error in points.
PEOPLE_BARS = {"people_count_error": ("<=", 0.05), "person_unmasked_recall": (">=", 0.95),
               "person_masked_correct": (">=", 0.95), "people_compliance_error_pp": ("<=", 3.0)}
MIN_IOU = 0.3
MIN_VISIBLE = 0.5
TODAY, GATED = "today", "gated"
PAIRED = "today@gated_frames"  # today's results on the frames the gate sent, scored as a path of its own
WITHIN_PTS = 1.0  # the gated path's per-frame unmasked-flagged share may trail today's by at most this
# Capture times: the scenes' own, from yesterday's midnight (UTC): a reader refuses frames stamped
# far from its clock, and a whole day keeps every run of a day on the same minute buckets.
EPOCH_MS = (now_ms() // 86_400_000 - 1) * 86_400_000


@dataclass(frozen=True)
class PathSpec:
    """One way through the system: gated (motion gating + tracking) or today's, with vision settings overridden."""

    name: str
    gated: bool
    overrides: tuple[tuple[str, str], ...] = ()


def parse_variant(text: str) -> PathSpec:
    """``NAME:FLAG=VALUE[,FLAG=VALUE]`` (an argparse type): the gated path with settings overridden.

    >>> parse_variant("up3:det_upscale=3,det_flip=true")
    PathSpec(name='gated+up3', gated=True, overrides=(('det_upscale', '3'), ('det_flip', 'true')))
    """
    name, sep, rest = text.partition(":")
    pairs = [p.split("=", 1) for p in rest.split(",") if p.strip()]
    if not sep or not name.strip() or not pairs or any(len(p) != 2 or not p[0].strip() for p in pairs):
        raise argparse.ArgumentTypeError(f"--variant {text!r}: write NAME:FLAG=VALUE[,FLAG=VALUE], "
                                         "e.g. up3:det_upscale=3")
    flags = {k.strip(): v.strip() for k, v in pairs}
    unknown = [k for k in flags if k not in Settings.model_fields]
    if unknown:
        raise argparse.ArgumentTypeError(f"--variant {text!r}: {', '.join(unknown)} is not a setting")
    return PathSpec(f"{GATED}+{name.strip()}", True, tuple(flags.items()))


# --- scoring ---------------------------------------------------------------------------------------------


def iou(a: Sequence[int], b: Sequence[int]) -> float:
    """Intersection over union of two (x, y, w, h) boxes.

    >>> iou((0, 0, 10, 10), (5, 0, 10, 10))
    0.3333333333333333
    """
    ix = max(0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


def match_faces(truth: Sequence[FaceTruth], faces: Sequence[Face], min_iou: float = MIN_IOU) -> dict[int, int]:
    """Truth face index -> result face index, best overlaps first, one to one, IoU >= ``min_iou``."""
    pairs = sorted(((iou(t.box, f.box), i, j) for i, t in enumerate(truth) for j, f in enumerate(faces)), reverse=True)
    out: dict[int, int] = {}
    used: set[int] = set()
    for overlap, i, j in pairs:
        if overlap < min_iou:
            break
        if i not in out and j not in used:
            out[i] = j
            used.add(j)
    return out


@dataclass
class FaceTally:
    """Truth faces of one kind and what became of them."""

    faces: int = 0
    found: int = 0
    right: int = 0  # found and given their true label

    def add(self, other: FaceTally) -> None:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))


@dataclass
class Sighting:
    """A person's face matched in one analysed frame: which frame, the result's track and label."""

    seq: int
    track: str | None
    label: str


@dataclass
class Score:
    """A path's tallies over some scenes; :meth:`figures` turns them into the reported shares."""

    frames_due: int = 0
    frames_analysed: int = 0
    false_positives: int = 0
    frame: dict[str, FaceTally] = field(default_factory=lambda: {k: FaceTally() for k in ("unmasked", "masked")})
    due: dict[str, FaceTally] = field(default_factory=lambda: {k: FaceTally() for k in ("unmasked", "masked")})
    # per scene, per person: label and sightings
    people: list[dict[int, tuple[str, list[Sighting]]]] = field(default_factory=list)
    records: list[ScenePeople] = field(default_factory=list)  # per scene: the person records against truth
    person_rows: list[dict[str, Any]] = field(default_factory=list)  # tracked: one row per truth person

    def add_scene(self, truth: Sequence[Sequence[FaceTruth]], analysed: dict[int, list[Face]],
                  records: Sequence[tuple[str, str]] | None = None, cam: str = "") -> None:
        """Score one scene (camera ``cam``): its truth per frame, the faces a path gave for each frame it
        analysed and, for a tracked path, its person records (track id, label)."""
        people: dict[int, tuple[str, list[Sighting]]] = {}
        face_px: dict[int, list[int]] = defaultdict(list)  # per person, the face's width in each visible frame
        face_frames, shown = Counter[str](), Counter[str]()
        for seq, faces_true in enumerate(truth):
            self.frames_due += 1
            for t in faces_true:
                if t.visible >= MIN_VISIBLE:
                    people.setdefault(t.person_id, (t.label, []))
                    face_px[t.person_id].append(t.box[2])
            seen = seq in analysed
            result = analysed.get(seq, [])
            matched = match_faces(faces_true, result)
            self.frames_analysed += seen
            self.false_positives += len(result) - len(matched)
            shown.update(f.label for f in result)
            for i, t in enumerate(faces_true):
                if t.visible < MIN_VISIBLE:
                    continue
                kind = "unmasked" if t.label == "without_mask" else "masked"
                got = result[matched[i]] if i in matched else None
                one = FaceTally(1, got is not None, got is not None and got.label == t.label)
                self.due[kind].add(one)
                if seen:
                    self.frame[kind].add(one)
                    face_frames[t.label] += 1
            for i, j in matched.items():
                t = faces_true[i]
                if t.person_id in people:
                    people[t.person_id][1].append(Sighting(seq, result[j].track, result[j].label))
        self.people.append(people)
        if records is not None:
            self.records.append(scene_people(
                people, records, (face_frames["with_mask"], face_frames.total()),
                (shown["with_mask"], shown.total())))
            for o in person_outcomes(people, records)[0]:
                px = sorted(face_px[o.person_id])
                self.person_rows.append({
                    "camera": cam, "person": o.person_id, "truth": o.truth, "visible_frames": len(px),
                    "face_px_min": px[0], "face_px_median": px[len(px) // 2], "face_px_max": px[-1],
                    "matched_frames": o.sightings, "records": "|".join(o.records),
                    "main_label": o.main_label or "", "right": o.right})

    def add(self, other: Score) -> None:
        self.frames_due += other.frames_due
        self.frames_analysed += other.frames_analysed
        self.false_positives += other.false_positives
        for mine, theirs in ((self.frame, other.frame), (self.due, other.due)):
            for kind in mine:
                mine[kind].add(theirs[kind])
        self.people += other.people
        self.records += other.records
        self.person_rows += other.person_rows

    def figures(self, tracked: bool) -> dict[str, Any]:
        per_person = person_figures(self.people, tracked)
        return {
            "frames_due": self.frames_due, "frames_analysed": self.frames_analysed,
            "analysed_share": share(self.frames_analysed, self.frames_due),
            "per_frame": {**tally_figures(self.frame),
                          "false_positives_per_frame": round(self.false_positives / max(1, self.frames_analysed), 3)},
            "per_frame_due": tally_figures(self.due),
            "per_person": per_person,
            "tracks": track_figures(self.people) if tracked else None,
            "people": people_figures(self.records) if self.records else None,
        }


def share(hits: int, total: int) -> float | None:
    return round(hits / total, 4) if total else None


def tally_figures(t: dict[str, FaceTally]) -> dict[str, Any]:
    u, m = t["unmasked"], t["masked"]
    return {"unmasked_faces": u.faces, "unmasked_found": share(u.found, u.faces),
            "unmasked_flagged": share(u.right, u.faces), "masked_faces": m.faces,
            "masked_found": share(m.found, m.faces), "masked_called_masked": share(m.right, m.faces)}


def person_label(sightings: Sequence[Sighting], tracked: bool) -> str | None:
    """The label a person was given: the main track's last vote (tracked), else the per-frame majority; None: not found.

    >>> s = [Sighting(1, "c-1", "with_mask"), Sighting(2, "c-2", "without_mask"), Sighting(3, "c-2", "with_mask")]
    >>> person_label(s, tracked=True), person_label(s, tracked=False)
    ('with_mask', 'with_mask')
    """
    if not sightings:
        return None
    if tracked:
        main = Counter(s.track for s in sightings).most_common(1)[0][0]
        return [s for s in sightings if s.track == main][-1].label
    unmasked = sum(s.label == "without_mask" for s in sightings)
    return "without_mask" if 2 * unmasked >= len(sightings) else "with_mask"


def person_figures(scenes: Sequence[dict[int, tuple[str, list[Sighting]]]], tracked: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kind, label in (("unmasked", "without_mask"), ("masked", "with_mask")):
        people = [s for scene in scenes for lab, s in scene.values() if lab == label]
        labels = [person_label(s, tracked) for s in people]
        flagged_any = [any(x.label == "without_mask" for x in s) for s in people]
        out[f"{kind}_people"] = len(people)
        out[f"{kind}_found"] = share(sum(bool(s) for s in people), len(people))
        if kind == "unmasked":
            out["unmasked_flagged"] = share(sum(lab == "without_mask" for lab in labels), len(people))
            out["unmasked_flagged_any"] = share(sum(flagged_any), len(people))
        else:
            out["masked_called_masked"] = share(sum(lab == "with_mask" for lab in labels), len(people))
            out["masked_flagged_any"] = share(sum(flagged_any), len(people))
    return out


def track_figures(scenes: Sequence[dict[int, tuple[str, list[Sighting]]]]) -> dict[str, Any]:
    """Tracks per person found, ID switches, and tracks that matched more than one person."""
    per_person, switches, owners = [], 0, defaultdict(set)
    for k, scene in enumerate(scenes):
        for pid, (_, sightings) in scene.items():
            if not sightings:
                continue
            tracks = [s.track for s in sightings]
            per_person.append(len(set(tracks)))
            switches += sum(a != b for a, b in zip(tracks, tracks[1:]))
            for t in tracks:
                owners[(k, t)].add(pid)
    return {"people_found": len(per_person),
            "tracks_per_person": round(sum(per_person) / len(per_person), 3) if per_person else None,
            "id_switches": switches, "merged_tracks": sum(len(p) > 1 for p in owners.values())}


# --- running ---------------------------------------------------------------------------------------------


@dataclass
class Run:
    """One path over one group of scenes: the faces per frame analysed, the CPU it took, the crops classified."""

    spec: PathSpec
    processor: Processor
    analysed: list[dict[int, list[Face]]]
    records: list[list[tuple[str, str]]]  # per scene: the person records written (track id, label)
    worker_s: float = 0.0
    producer_s: float = 0.0
    crops: int = 0


def _entry(frame: Frame) -> Entry:
    """The frame as a worker reads it from Redis: bytes for keys and values."""
    raw = {k.encode(): v if isinstance(v, bytes) else str(v).encode() for k, v in encode_frame(frame).items()}
    return Entry(frame.cam, f"{frame.ts}-0", raw)


def play(group: str, scenes: Sequence[WalkingScene], runs: list[Run], keyframe_s: float,
         jpeg_quality: int) -> dict[str, float]:
    """Play the scenes as cameras, frame time by frame time, through every path; returns the gate's tallies."""
    cams = [f"{group}{k}" for k in range(len(scenes))]
    gates = [CameraGating(scenes[0].fps, keyframe_s) for _ in scenes]
    gate_s, counts = 0.0, Counter[str]()
    for step in tqdm(range(frames_of(scenes)), desc=group, unit="frame", leave=False):
        today: list[Entry] = []
        gated: list[Frame] = []
        encode_s = {TODAY: 0.0, GATED: 0.0}  # JPEG encoding of the frames each kind of path is sent
        for cam, scene, gating in zip(cams, scenes, gates):
            image = scene.render(step)
            ts = EPOCH_MS + round(step * 1000 / scene.fps)
            c0 = time.process_time()
            decided = gating.decide(ts, image)
            c1 = time.process_time()
            jpg = encode_jpeg(image, jpeg_quality)
            c2 = time.process_time()
            gate_s += c1 - c0
            encode_s[TODAY] += c2 - c1
            counts[decided.decision.value] += 1
            h, w = image.shape[:2]
            frame = Frame(cam=cam, seq=step, ts=ts, w=w, h=h, jpg=jpg)
            today.append(_entry(frame))
            if decided.decision is not GateDecision.IDLE:
                encode_s[GATED] += c2 - c1
                key = decided.decision is GateDecision.KEYFRAME
                gated.append(Frame(cam=cam, seq=step, ts=ts, w=w, h=h, jpg=jpg, key=key,
                                   regions=() if key else decided.regions))
        order = runs if step % 2 == 0 else runs[::-1]  # alternate, so no path always runs on a warm cache
        for run in order:
            entries = [_entry(f) for f in gated] if run.spec.gated else today
            run.producer_s += encode_s[GATED if run.spec.gated else TODAY]
            if not entries:
                continue
            c0 = time.process_time()
            out = run.processor.process(entries, {})
            run.worker_s += time.process_time() - c0
            run.crops += out.crops
            for o in out.outcomes:
                run.analysed[cams.index(o.result.cam)][o.result.seq] = list(o.result.faces)
                run.records[cams.index(o.result.cam)] += [(p.id, p.label) for p in o.people if not p.update]
    for run in runs:
        if run.spec.gated:
            run.producer_s += gate_s
            end_people(run, cams)
    return {"frames": frames_of(scenes) * len(scenes), **counts, "gate_cpu_s": gate_s}


def end_people(run: Run, cams: Sequence[str]) -> None:
    """The scenes are over: every live track that was looked at becomes a person, as when a video ends
    (one counted while in view is one already)."""
    tracks = run.processor.tracks
    assert tracks is not None  # a gated run tracks
    for k, cam in enumerate(cams):
        if cam in tracks.trackers:
            run.records[k] += [(f"{cam}-{e.track_id}", e.label) for e in tracks.trackers[cam].end_all()
                               if e.label and not e.counted and tracks.is_person(e.looks, e.frames)]


def frames_of(scenes: Sequence[WalkingScene]) -> int:
    """Frames played per camera of a group: as many as its shortest scene has."""
    return min(len(s) for s in scenes)


def build_runs(specs: Sequence[PathSpec], base: Settings, pipelines: dict[tuple, Pipeline], r: redis.Redis,
               group: str, n_scenes: int) -> list[Run]:
    """A fresh Processor per path (fresh trackers and throttles) for one group of scenes."""
    runs = []
    for spec in specs:
        s = base.override(**dict(spec.overrides))
        pipeline = pipelines[spec.overrides]
        tracks = CameraTracks(r, Keys(f"bench-{group}-{spec.name}"), pipeline, s) if spec.gated else None
        processor = Processor(pipeline, f"bench-{spec.name}", s, None, tracks)
        runs.append(Run(spec, processor, [{} for _ in range(n_scenes)], [[] for _ in range(n_scenes)]))
    return runs


def make_scenes(args: argparse.Namespace) -> dict[str, list[WalkingScene]]:
    pool = face_pool(faces_only=True)
    counts = {"busy": args.busy, "quiet": args.quiet, "still_person": args.still}
    return {group: [preset_scene(group, seed=args.seed + k, pool=pool, duration_s=args.seconds, size=args.size)
                    for k in range(n)] for group, n in counts.items() if n}


def evaluate(args: argparse.Namespace, base: Settings) -> dict[str, Any]:
    """Every path over every group; the figures per path, per group and over all groups."""
    specs = [PathSpec(TODAY, False), PathSpec(GATED, True), *args.variant]
    pipelines: dict[tuple, Pipeline] = {}
    for spec in specs:
        if spec.overrides not in pipelines:
            pipelines[spec.overrides] = Pipeline.from_settings(base.override(**dict(spec.overrides)), args.model)
    groups = make_scenes(args)
    first = next(iter(groups.values()))[0].render(0)
    for pipeline in pipelines.values():  # untimed: the first call builds the detector's nets and warms the runtime
        pipeline.p_without([pipeline.crop(first, (0, 0, 32, 32))])
        pipeline.detect(first)
    scores = {spec.name: Score() for spec in [*specs, PathSpec(PAIRED, False)]}
    out: dict[str, Any] = {"paths": {name: {} for name in scores}, "groups": {}}
    with private_redis() as server:
        r = redis.Redis.from_url(server.url)
        for group, scenes in groups.items():
            runs = build_runs(specs, base, pipelines, r, group, len(scenes))
            played = play(group, scenes, runs, args.keyframe_s, base.jpeg_quality)
            seconds = len(scenes) * frames_of(scenes) / scenes[0].fps
            out["groups"][group] = {"scenes": len(scenes), "camera_seconds": seconds,
                                    "people": sum(len(s.people) for s in scenes),
                                    "unmasked_people": sum(p.label == "without_mask" for s in scenes for p in s.people),
                                    "gate": {k: (round(v, 3) if isinstance(v, float) else v)
                                             for k, v in played.items()}}
            for run in runs:
                score = Score()
                for k, (scene, analysed, records) in enumerate(zip(scenes, run.analysed, run.records)):
                    score.add_scene(scene.truth[:frames_of(scenes)], analysed, records if run.spec.gated else None,
                                    cam=f"{group}{k}")
                scores[run.spec.name].add(score)
                figs = score.figures(run.spec.gated)
                figs["cpu"] = {"worker_ms_per_camera_s": round(1000 * run.worker_s / seconds, 1),
                               "producer_ms_per_camera_s": round(1000 * run.producer_s / seconds, 1),
                               "total_ms_per_camera_s": round(1000 * (run.worker_s + run.producer_s) / seconds, 1),
                               "classified_per_camera_s": round(run.crops / seconds, 2)}
                out["paths"][run.spec.name][group] = figs
            # Today's path judged on the frames the gate sent only: the same frames, so the same faces, as gated.
            paired = Score()
            for scene, today, gated in zip(scenes, runs[0].analysed, runs[1].analysed):
                paired.add_scene(scene.truth[:frames_of(scenes)], {k: v for k, v in today.items() if k in gated})
            scores[PAIRED].add(paired)
            out["paths"][PAIRED][group] = paired.figures(tracked=False)
    for name, score in scores.items():
        out["paths"][name]["all"] = score.figures(tracked=name.startswith(GATED))
    if args.people_csv:
        write_people(args.people_csv, {name: score.person_rows for name, score in scores.items()})
    return out


def write_people(path: Path, rows: dict[str, list[dict[str, Any]]]) -> None:
    """One CSV row per truth person and tracked path: what became of them, to read failures person by person."""
    flat = [{"path": name, **row} for name, path_rows in rows.items() for row in path_rows]
    if not flat:
        return
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(flat[0]))
        writer.writeheader()
        writer.writerows(flat)
    print(f"people, one row per truth person and tracked path: {path}", flush=True)


# --- report ----------------------------------------------------------------------------------------------


def _get(figures: dict[str, Any] | None, path: str) -> Any:
    """The figure at a dotted ``path`` ("per_frame.unmasked_flagged"); None where any part is missing."""
    value: Any = figures
    for key in path.split("."):
        if value is None:
            return None
        value = value.get(key)
    return value


ROWS: list[tuple[str, str, str]] = [  # title, where in a path's group figures, format
    ("frames analysed / due", "analysed_share", "pct"),
    ("per frame (frames analysed): unmasked faces", "per_frame.unmasked_faces", "int"),
    ("  found", "per_frame.unmasked_found", "pct"),
    ("  flagged (found+without_mask)", "per_frame.unmasked_flagged", "pct"),
    ("  masked faces found", "per_frame.masked_found", "pct"),
    ("  masked faces called masked", "per_frame.masked_called_masked", "pct"),
    ("  false positives / frame", "per_frame.false_positives_per_frame", "num"),
    ("per frame (all due; idle = missed): unmasked", "per_frame_due.unmasked_faces", "int"),
    ("  flagged", "per_frame_due.unmasked_flagged", "pct"),
    ("  masked called masked", "per_frame_due.masked_called_masked", "pct"),
    ("per person: unmasked people", "per_person.unmasked_people", "int"),
    ("  found", "per_person.unmasked_found", "pct"),
    ("  flagged (main track / majority)", "per_person.unmasked_flagged", "pct"),
    ("  flagged at least once", "per_person.unmasked_flagged_any", "pct"),
    ("  masked people called masked", "per_person.masked_called_masked", "pct"),
    ("  masked people flagged at least once", "per_person.masked_flagged_any", "pct"),
    ("person records (tracked): people in truth", "people.people_truth", "int"),
    ("  people counted", "people.people_counted", "int"),
    ("  count error", "people.people_count_error", "pct"),
    ("  split people", "people.split_people", "int"),
    ("  merged records", "people.merged_records", "int"),
    ("  phantom records", "people.phantom_records", "int"),
    ("  unmasked people recalled (main record)", "people.person_unmasked_recall", "pct"),
    ("  unmasked people with an event", "people.person_unmasked_alerted", "pct"),
    ("  masked people labelled masked", "people.person_masked_correct", "pct"),
    ("  compliance error by people, pts", "people.people_compliance_error_pp", "num"),
    ("  compliance error by face-frames, pts", "people.face_frames_compliance_error_pp", "num"),
    ("tracks per person found", "tracks.tracks_per_person", "num"),
    ("ID switches", "tracks.id_switches", "int"),
    ("tracks matched to 2+ people", "tracks.merged_tracks", "int"),
    ("CPU ms / camera-s: worker", "cpu.worker_ms_per_camera_s", "num"),
    ("CPU ms / camera-s: producer side", "cpu.producer_ms_per_camera_s", "num"),
    ("CPU ms / camera-s: total", "cpu.total_ms_per_camera_s", "num"),
    ("faces classified / camera-s", "cpu.classified_per_camera_s", "num"),
]


def _cell(value: Any, kind: str) -> str:
    if value is None:
        return "-"
    if kind == "pct":
        return f"{100 * value:.1f}%"
    return f"{value:.2f}" if kind == "num" and isinstance(value, float) and value < 10 else (
        f"{value:.1f}" if isinstance(value, float) else str(value))


def report(result: dict[str, Any]) -> None:
    paths = result["paths"]
    for group in [*result["groups"], "all"]:
        rows = [[title, *(_cell(_get(paths[p][group], where), kind) for p in paths)] for title, where, kind in ROWS
                if any(_get(paths[p][group], where) is not None for p in paths)]
        g = result["groups"].get(group)
        title = (f"{group}: {g['scenes']} scene(s), {g['camera_seconds']:g} camera-s, {g['people']} people "
                 f"({g['unmasked_people']} unmasked); gate: {g['gate'].get('keyframe', 0)} keyframes, "
                 f"{g['gate'].get('send', 0)} motion, {g['gate'].get('idle', 0)} idle of {g['gate']['frames']}"
                 if g else "all groups (CPU is per group only)")
        show(title, ["figure", *paths], rows)


def headline(result: dict[str, Any]) -> dict[str, Any]:
    """The figures the issue asks for, side by side, and whether the gated path keeps per-frame recall."""
    paths = result["paths"]

    def each(where: str, group: str = "all") -> dict[str, Any]:
        return {p: _get(paths[p].get(group), where) for p in paths}

    flagged, flagged_due = each("per_frame.unmasked_flagged"), each("per_frame_due.unmasked_flagged")
    out: dict[str, Any] = {
        "per_frame_unmasked_flagged": flagged, "per_frame_unmasked_flagged_all_due": flagged_due,
        "per_frame_masked_called_masked": each("per_frame.masked_called_masked"),
        "per_person_unmasked_flagged": each("per_person.unmasked_flagged"),
        "per_person_unmasked_flagged_any": each("per_person.unmasked_flagged_any"),
        "per_person_masked_called_masked": each("per_person.masked_called_masked"),
        "tracks_per_person": each("tracks.tracks_per_person"), "id_switches": each("tracks.id_switches"),
    }
    people = _get(paths[GATED].get("all"), "people") or {}
    for name in PEOPLE_BARS:
        out[name] = people.get(name)
    out["face_frames_compliance_error_pp"] = people.get("face_frames_compliance_error_pp")
    out["people_bars"] = {name: f"{op} {bar:g}" for name, (op, bar) in PEOPLE_BARS.items()}
    out["people_bars_met"] = all(
        out[name] is not None and (out[name] <= bar if op == "<=" else out[name] >= bar)
        for name, (op, bar) in PEOPLE_BARS.items())
    for group in ("quiet", "busy"):
        if group in result["groups"]:
            out[f"cpu_ms_per_camera_s_{group}"] = each("cpu.total_ms_per_camera_s", group)
    if flagged.get(TODAY) is not None and flagged.get(GATED) is not None:
        delta = round(100 * (flagged[GATED] - flagged[TODAY]), 2)
        delta_due = round(100 * (flagged_due[GATED] - flagged_due[TODAY]), 2)
        paired = round(100 * (flagged[GATED] - flagged[PAIRED]), 2) if flagged.get(PAIRED) is not None else None
        out["gated_vs_today_pts"] = {"per_frame_analysed": delta, "per_frame_all_due": delta_due,
                                     "per_frame_same_frames": paired}
        out[f"gated_within_{WITHIN_PTS:g}pt_of_today"] = delta >= -WITHIN_PTS
    return out


def frontier(result: dict[str, Any]) -> list[list[Any]]:
    """Per path: CPU per camera-second (quiet, busy) against unmasked faces flagged per frame."""
    rows = []
    for p, figs in result["paths"].items():
        rows.append([p, _get(figs.get("quiet"), "cpu.total_ms_per_camera_s"),
                     _get(figs.get("busy"), "cpu.total_ms_per_camera_s"),
                     _cell(_get(figs["all"], "per_frame.unmasked_flagged"), "pct"),
                     _cell(_get(figs["all"], "per_frame_due.unmasked_flagged"), "pct"),
                     _cell(_get(figs["all"], "per_person.unmasked_flagged"), "pct")])
    return rows


def main(args: argparse.Namespace, base: Settings) -> int:
    t0 = time.perf_counter()
    cv2.setNumThreads(1)
    result = evaluate(args, base)
    report(result)
    show("frontier: CPU ms per camera-second (total, one thread) against unmasked faces flagged",
         ["path", "quiet", "busy", "per frame (analysed)", "per frame (all due)", "per person"], frontier(result))
    head = headline(result)
    if "gated_vs_today_pts" in head:
        d = head["gated_vs_today_pts"]
        print(f"gated vs today, per-frame unmasked flagged: {d['per_frame_analysed']:+.2f} pts over the frames "
              f"analysed, {d['per_frame_all_due']:+.2f} pts over all frames due, {d['per_frame_same_frames']:+.2f} "
              f"pts against today on the frames the gate sent; within {WITHIN_PTS:g} pt: "
              f"{head[f'gated_within_{WITHIN_PTS:g}pt_of_today']}\n", flush=True)
    if head["people_count_error"] is not None:
        print("people (gated, person records): count error {people_count_error:.1%}, unmasked recalled "
              "{person_unmasked_recall:.1%}, masked labelled masked {person_masked_correct:.1%}, compliance error "
              "{people_compliance_error_pp:.2f} pts by people against {face_frames_compliance_error_pp:.2f} by "
              "face-frames; bars ({bars}) met: {people_bars_met}\n".format(
                  **head, bars=", ".join(f"{k} {v}" for k, v in head["people_bars"].items())), flush=True)
    vision = ("det_score", "det_upscale", "det_max_side", "det_zoom_score", "det_zoom_px", "det_flip",
              "min_face_px", "crop_margin", "mask_threshold", "track_max_age_ms", "track_relook_ms")
    emit({"bench": "quality", "mode": "walking", "machine": machine(), "seed": args.seed, "seconds": args.seconds,
          "size": list(args.size), "keyframe_s": args.keyframe_s, "settings": {k: getattr(base, k) for k in vision},
          "variants": {s.name: dict(s.overrides) for s in args.variant}, **head, "groups": result["groups"],
          "paths": result["paths"], "run_seconds": round(time.perf_counter() - t0, 1)})
    return 0
