"""People as the product counts them, scored against the walking scenes' truth (``bench.quality --walking``).

A tracked path's people are its **person records**: one per ended track that was looked at, with
its voted label (what the worker writes to ``mw:{cam}:person:{n}``, what the dashboard counts and
what fires one violation per unmasked person); the tracks still alive when a scene ends are ended
then, as at the end of a recorded video. A record belongs to the truth person whose face its
track matched most often; a record that matched no truth face is a phantom.

Per camera (scene): people counted against truth (records split across one person and records
merging several are counted too), each truth person's label (their main record: the one covering
most of their matched frames; a person with no record is missed), and compliance by people
(masked records over all records) against the truth's, beside compliance by face-frames (faces
shown masked over faces shown, in the frames analysed) against the truth's visible face-frames.
Site figures sum the cameras; the compliance error of the site is the people-weighted mean of the
cameras' absolute errors, in percentage points.

>>> from bench.quality_walking import Sighting
>>> people = {1: ("without_mask", [Sighting(0, "c-1", "without_mask"), Sighting(1, "c-1", "without_mask")]),
...           2: ("with_mask", [Sighting(0, "c-2", "with_mask"), Sighting(3, "c-3", "with_mask")])}
>>> s = scene_people(people, [("c-1", "without_mask"), ("c-2", "with_mask"), ("c-3", "with_mask")], (1, 2), (3, 4))
>>> s.records, s.split, s.unmasked_right, s.masked_right
(3, 1, 1, 1)
>>> f = people_figures([s])
>>> f["people_count_error"], f["person_unmasked_recall"], f["people_compliance_error_pp"]
(0.5, 1.0, 16.67)
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bench.quality_walking import Sighting

UNMASKED = "without_mask"


@dataclass(frozen=True)
class ScenePeople:
    """One camera's people: truth against records, and both compliance figures' parts."""

    truth: int
    truth_masked: int
    records: int
    records_masked: int
    split: int  # truth people with two or more records
    merged: int  # records whose track matched two or more people
    phantoms: int  # records whose track matched nobody
    unmasked: int
    unmasked_right: int  # unmasked people whose main record says without_mask
    unmasked_alerted: int  # unmasked people with any record saying without_mask (an event fired for them)
    masked: int
    masked_right: int  # masked people whose main record says with_mask
    face_frames: tuple[int, int]  # truth: masked visible face-frames, visible face-frames (frames analysed)
    shown_faces: tuple[int, int]  # the path: faces shown masked, faces shown (frames analysed)

    @property
    def people_compliance_error(self) -> float | None:
        """|compliance by records - by truth people| in points; None for a camera nobody walked past."""
        if not self.truth:
            return None
        measured = self.records_masked / self.records if self.records else 0.0
        return abs(100 * (measured - self.truth_masked / self.truth))

    @property
    def face_compliance_error(self) -> float | None:
        """|compliance by faces shown - by truth face-frames| in points."""
        if not self.face_frames[1]:
            return None
        measured = self.shown_faces[0] / self.shown_faces[1] if self.shown_faces[1] else 0.0
        return abs(100 * (measured - self.face_frames[0] / self.face_frames[1]))


@dataclass(frozen=True)
class PersonOutcome:
    """What became of one truth person: their records and the label of the main one (``bench.quality --people-csv``)."""

    person_id: int
    truth: str
    sightings: int  # analysed frames in which a result face matched theirs
    records: tuple[str, ...]  # labels of the records whose track matched them most
    main_label: str | None  # the label of the record covering most of their matched frames; None: no record

    @property
    def right(self) -> bool:
        return self.main_label is not None and (self.main_label == UNMASKED) == (self.truth == UNMASKED)


def person_outcomes(people: dict[int, tuple[str, list[Sighting]]], records: Sequence[tuple[str, str]]
                    ) -> tuple[list[PersonOutcome], dict[str | None, Counter[int]]]:
    """Each truth person's records (a record belongs to the person its track matched most), and, per
    track, how often it matched each person."""
    owners: dict[str | None, Counter[int]] = defaultdict(Counter)
    for pid, (_, sightings) in people.items():
        for s in sightings:
            owners[s.track][pid] += 1
    owner = {track: c.most_common(1)[0][0] for track, c in owners.items() if track is not None}
    by_person: dict[int, list[tuple[str, str]]] = defaultdict(list)
    for track, label in records:
        if track in owner:
            by_person[owner[track]].append((track, label))
    outcomes = []
    for pid, (truth_label, sightings) in people.items():
        mine = by_person.get(pid, [])
        frames = Counter(s.track for s in sightings)
        main = max(mine, key=lambda rec: frames[rec[0]])[1] if mine else None
        outcomes.append(PersonOutcome(pid, truth_label, len(sightings), tuple(label for _, label in mine), main))
    return outcomes, owners


def scene_people(people: dict[int, tuple[str, list[Sighting]]], records: Sequence[tuple[str, str]],
                 face_frames: tuple[int, int], shown_faces: tuple[int, int]) -> ScenePeople:
    """Match one camera's records (track id, label) to its truth people through their sightings."""
    outcomes, owners = person_outcomes(people, records)
    unmasked = [o for o in outcomes if o.truth == UNMASKED]
    masked = [o for o in outcomes if o.truth != UNMASKED]
    return ScenePeople(
        truth=len(outcomes), truth_masked=len(masked),
        records=len(records), records_masked=sum(label != UNMASKED for _, label in records),
        split=sum(len(o.records) > 1 for o in outcomes),
        merged=sum(len(owners[track]) > 1 for track, _ in records if track in owners),
        phantoms=sum(track not in owners for track, _ in records),
        unmasked=len(unmasked), unmasked_right=sum(o.right for o in unmasked),
        unmasked_alerted=sum(UNMASKED in o.records for o in unmasked),
        masked=len(masked), masked_right=sum(o.right for o in masked),
        face_frames=face_frames, shown_faces=shown_faces)


def _share(hits: int, total: int) -> float | None:
    return round(hits / total, 4) if total else None


def _weighted_error(scenes: Sequence[ScenePeople], error: str) -> tuple[float | None, float | None]:
    """The people-weighted mean and the largest of the cameras' errors (``error``: a ScenePeople property)."""
    pairs = [(getattr(s, error), s.truth) for s in scenes if getattr(s, error) is not None and s.truth]
    if not pairs:
        return None, None
    mean = sum(e * w for e, w in pairs) / sum(w for _, w in pairs)
    return round(mean, 2), round(max(e for e, _ in pairs), 2)


def people_figures(scenes: Sequence[ScenePeople]) -> dict[str, Any]:
    """The site's figures over its cameras (the names ``bench.quality``'s last JSON line carries)."""
    truth, records = sum(s.truth for s in scenes), sum(s.records for s in scenes)
    people_error, people_worst = _weighted_error(scenes, "people_compliance_error")
    face_error, face_worst = _weighted_error(scenes, "face_compliance_error")
    return {
        "people_truth": truth, "people_counted": records,
        "people_count_error": round(abs(records - truth) / truth, 4) if truth else None,
        "split_people": sum(s.split for s in scenes), "merged_records": sum(s.merged for s in scenes),
        "phantom_records": sum(s.phantoms for s in scenes),
        "person_unmasked_recall": _share(sum(s.unmasked_right for s in scenes), sum(s.unmasked for s in scenes)),
        "person_unmasked_alerted": _share(sum(s.unmasked_alerted for s in scenes), sum(s.unmasked for s in scenes)),
        "person_masked_correct": _share(sum(s.masked_right for s in scenes), sum(s.masked for s in scenes)),
        "people_compliance_error_pp": people_error, "people_compliance_error_pp_worst_camera": people_worst,
        "face_frames_compliance_error_pp": face_error, "face_frames_compliance_error_pp_worst_camera": face_worst,
    }
