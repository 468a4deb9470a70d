"""End-to-end vision quality on small faces: does the real Pipeline find people without masks?

Two modes. ``--walking``: walking-people videos played as cameras through today's path (every
frame whole, every face classified) and through motion gating + tracking, side by side, per frame
and per person, with their CPU cost (:mod:`bench.quality_walking`). Without it, still composed
scenes through the Pipeline, as below.

    python -m bench.quality --walking --busy 4 --quiet 4 --still 2 --seconds 60
    python -m bench.quality --walking --variant up3:det_upscale=3 --variant flip:det_flip=true

Composes scenes with small faces of known label (:func:`bench.scenes.compose.compose_scene`) from each
crops folder, runs :class:`maskwatch.vision.pipeline.Pipeline` exactly as the worker builds it,
and scores what it found against what was pasted: recall of unmasked faces (found, and found *and*
flagged), the same for masked faces, found rate by face size, per-scene compliance error, false
positives and time per frame. A readable table goes first; the last line is one JSON object.

    python -m bench.quality --scenes 100
    python -m bench.quality --data ../shared/data/chandrikadeb7 --size 1280x720 --det-flip

Detection and classification run on one thread (``cv2.setNumThreads(1)``, ``threads=1``), as in
one detection thread of a worker, so ``ms_per_frame`` is the CPU time a frame costs one core
(CPU time, not wall time, so that other jobs on a shared machine sway it less).
See docs/quality.md for what these synthetic scenes do and do not show.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from tqdm import tqdm

from bench import quality_walking
from bench.common import use_shared_models
from bench.quality_walking import parse_variant
from bench.scenes.compose import PlacedFace, Scene, compose_scene, load_face_pool, match
from maskwatch.exceptions import MaskWatchError
from maskwatch.settings import Settings
from maskwatch.vision.pipeline import Pipeline

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = (ROOT.parent / "shared/data/chandrikadeb7", ROOT.parent / "shared/data/facemask12k/test")
BUCKETS = ((0, 24, "<24"), (24, 32, "24-32"), (32, 10_000, "32-40"))
VISION_FLAGS = ("det_score", "det_upscale", "det_max_side", "det_zoom_score", "det_zoom_px", "det_flip",
                  "min_face_px", "crop_margin", "mask_threshold")


@dataclass(frozen=True)
class Outcome:
    """One pasted face: its label and size, and the label the pipeline gave it (None: not found)."""

    label: str
    side: int
    found: str | None


@dataclass(frozen=True)
class SceneScore:
    outcomes: list[Outcome]
    false_positives: int
    truth_compliance: float | None
    found_compliance: float | None  # over every face the pipeline reported, false positives included

    @property
    def detector_compliance(self) -> float | None:
        """Compliance over the pasted faces found, had each got its true label: the detector's share of the error."""
        found = [o for o in self.outcomes if o.found is not None]
        return sum(o.label == "with_mask" for o in found) / len(found) if found else None


def score_scene(scene: Scene, faces: Sequence[tuple[tuple[int, int, int, int], str]]) -> SceneScore:
    """Compare what the pipeline reported for a scene (box, label) with what was pasted."""
    pairs: list[tuple[PlacedFace, str | None]] = match(scene.faces, faces)
    outcomes = [Outcome(t.label, t.box[2], found) for t, found in pairs]
    matched = sum(o.found is not None for o in outcomes)
    found_compliance = sum(label == "with_mask" for _, label in faces) / len(faces) if faces else None
    return SceneScore(outcomes, len(faces) - matched, scene.compliance, found_compliance)


def _errors(pairs: Sequence[tuple[float | None, float | None]]) -> np.ndarray:
    """Absolute compliance errors in points, over the scenes where both figures exist."""
    return np.array([abs(a - b) * 100 for a, b in pairs if a is not None and b is not None])


def _share(hits: int, total: int) -> float | None:
    return round(hits / total, 4) if total else None


def summarise(scores: Sequence[SceneScore], seconds: Sequence[float]) -> dict:
    """The figures of one pool, as they go into the JSON line."""
    outs = [o for s in scores for o in s.outcomes]
    unmasked = [o for o in outs if o.label == "without_mask"]
    masked = [o for o in outs if o.label == "with_mask"]
    errors = _errors([(s.found_compliance, s.truth_compliance) for s in scores])
    detector_errors = _errors([(s.detector_compliance, s.truth_compliance) for s in scores])
    by_size: dict[str, dict] = {}
    for lo, hi, name in BUCKETS:
        u = [o for o in unmasked if lo <= o.side < hi]
        m = [o for o in masked if lo <= o.side < hi]
        by_size[name] = {
            "unmasked_found": _share(sum(o.found is not None for o in u), len(u)),
            "unmasked_flagged": _share(sum(o.found == "without_mask" for o in u), len(u)),
            "masked_found": _share(sum(o.found is not None for o in m), len(m)),
            "faces": len(u) + len(m),
        }
    return {
        "scenes": len(scores),
        "unmasked_faces": len(unmasked),
        "masked_faces": len(masked),
        "unmasked_found": _share(sum(o.found is not None for o in unmasked), len(unmasked)),
        "unmasked_flagged": _share(sum(o.found == "without_mask" for o in unmasked), len(unmasked)),
        "masked_found": _share(sum(o.found is not None for o in masked), len(masked)),
        "masked_called_masked": _share(sum(o.found == "with_mask" for o in masked), len(masked)),
        "by_size": by_size,
        "compliance_error_mean": round(float(errors.mean()), 2) if errors.size else None,
        "compliance_error_p90": round(float(np.percentile(errors, 90)), 2) if errors.size else None,
        "compliance_error_mean_true_labels": round(float(detector_errors.mean()), 2) if detector_errors.size else None,
        "scenes_without_found_faces": len(scores) - int(errors.size),
        "false_positives_per_frame": round(sum(s.false_positives for s in scores) / max(1, len(scores)), 3),
        "ms_per_frame": round(1000 * float(np.mean(seconds)), 1) if seconds else None,  # CPU, one thread
    }


def compose_scenes(data: Path, n: int, seed: int, size: tuple[int, int], face_px: tuple[int, int],
                   faces: tuple[int, int], per_class: int) -> list[Scene]:
    """``n`` scenes from the crops in ``data``; the same arguments always give the same scenes."""
    rng = np.random.default_rng(seed)
    pool = load_face_pool(data, per_class, rng)
    return [compose_scene(pool, rng, size=size, faces=int(rng.integers(faces[0], faces[1] + 1)), face_px=face_px)
            for _ in range(n)]


def evaluate(pipe: Pipeline, scenes: Sequence[Scene], desc: str) -> dict:
    """Run the pipeline on each scene and score it; time is the CPU time of the call."""
    scores, seconds = [], []
    pipe.analyze([scenes[0].image])  # untimed: the first call builds the detector and warms the runtime up
    for scene in tqdm(scenes, desc=desc, unit="scene", leave=False):
        t0 = time.process_time()
        found = pipe.analyze([scene.image])[0]
        seconds.append(time.process_time() - t0)
        scores.append(score_scene(scene, [(f.box, f.label) for f in found]))
    return summarise(scores, seconds)


TABLE: list[tuple[str, tuple[str, ...], str]] = [  # title, where the figure sits in a pool's result, format
    ("unmasked faces", ("unmasked_faces",), "{:6d}"),
    ("  found", ("unmasked_found",), "pct"),
    ("  flagged (found+without_mask)", ("unmasked_flagged",), "pct"),
    ("masked faces", ("masked_faces",), "{:6d}"),
    ("  found", ("masked_found",), "pct"),
    ("  called masked", ("masked_called_masked",), "pct"),
    *[(f"found {b} px: {who}", ("by_size", b, f"{who}_found"), "pct")
      for _, _, b in BUCKETS for who in ("unmasked", "masked")],
    ("compliance error mean (pts)", ("compliance_error_mean",), "{:6.1f}"),
    ("compliance error p90 (pts)", ("compliance_error_p90",), "{:6.1f}"),
    ("  mean, had found faces true labels", ("compliance_error_mean_true_labels",), "{:6.1f}"),
    ("false positives / frame", ("false_positives_per_frame",), "{:6.2f}"),
    ("CPU ms / frame (1 thread)", ("ms_per_frame",), "{:6.1f}"),
]


def _cell(result: dict, path: tuple[str, ...], fmt: str) -> str:
    value: Any = result
    for key in path:
        value = value[key]
    if value is None:  # nothing to measure, e.g. no faces of that size
        return "-"
    return f"{100 * value:5.1f}%" if fmt == "pct" else fmt.format(value)


def format_table(results: dict[str, dict]) -> str:
    """A table a person reads: one column per pool."""
    width = max(len(n) for n in results) + 2
    lines = [" " * 36 + "".join(f"{n:>{width}}" for n in results)]
    for title, path, fmt in TABLE:
        lines.append(f"{title:36}" + "".join(f"{_cell(r, path, fmt):>{width}}" for r in results.values()))
    return "\n".join(lines)


def _pair(text: str, sep: str, what: str) -> tuple[int, int]:
    try:
        a, b = (int(v) for v in text.lower().split(sep))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{what} must look like 12{sep}34, got {text!r}") from None
    if a <= 0 or b <= 0 or (sep == "-" and a > b):
        order = " and ascending" if sep == "-" else ""
        raise argparse.ArgumentTypeError(f"{what} must be positive{order}, got {text!r}")
    return a, b


def pool_name(data: Path) -> str:
    """A short name for a crops folder: the part after ``data/`` when there is one."""
    parts = Path(data).resolve().parts
    return "/".join(parts[parts.index("data") + 1:]) if "data" in parts[:-1] else Path(data).name


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.quality", description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, action="append",
                   help="folder with with_mask/ and without_mask/ crops; repeat for several "
                        f"(default: {', '.join(str(d) for d in DEFAULT_DATA)})")
    p.add_argument("--scenes", type=int, default=60, help="scenes per folder (default 60)")
    p.add_argument("--size", type=lambda t: _pair(t, "x", "--size"), default=(640, 360),
                   help="frame WxH (default 640x360)")
    p.add_argument("--face-px", type=lambda t: _pair(t, "-", "--face-px"), default=(20, 40),
                   help="face sides in px (default 20-40)")
    p.add_argument("--faces", type=lambda t: _pair(t, "-", "--faces"), default=(4, 10),
                   help="faces per scene (default 4-10)")
    p.add_argument("--per-class", type=int, default=300, help="crops of each label drawn from a folder (default 300)")
    p.add_argument("--seed", type=int, default=1, help="scenes' seed (walking: scene k of a kind has seed+k)")
    p.add_argument("--model", type=Path, help="classifier artifact (default: MASKWATCH_MODEL or the shipped model)")
    walk = p.add_argument_group("walking-people scenes (--walking)")
    walk.add_argument("--walking", action="store_true",
                      help="today's path vs motion gating + tracking on walking-people scenes")
    for name, n in (("busy", 4), ("quiet", 4), ("still", 2)):
        walk.add_argument(f"--{name}", type=int, default=n, help=f"{name} scenes (default {n})")
    walk.add_argument("--seconds", type=float, default=60.0, help="length of each scene (default 60)")
    walk.add_argument("--keyframe-s", type=float, default=Settings().motion_keyframe_s,
                      help="the gate's keyframe period (default: MASKWATCH_MOTION_KEYFRAME_S's default)")
    walk.add_argument("--people-csv", type=Path, metavar="FILE",
                      help="also write one row per truth person and tracked path (found, records, label) to FILE")
    walk.add_argument("--variant", type=parse_variant, action="append", default=[],
                      help="also the gated path with settings overridden, NAME:FLAG=VALUE[,FLAG=VALUE] "
                           "(e.g. up3:det_upscale=3); repeat for several")
    for name in VISION_FLAGS:
        flag, help_ = "--" + name.replace("_", "-"), f"override MASKWATCH_{name.upper()}"
        if name == "det_flip":
            p.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=help_)
        else:
            whole = name in {"det_max_side", "det_zoom_px", "min_face_px"}
            p.add_argument(flag, type=int if whole else float, help=help_)
    args = p.parse_args(argv)
    if args.scenes < 1:
        p.error(f"--scenes must be at least 1, got {args.scenes}")
    if args.walking:
        if min(args.busy, args.quiet, args.still) < 0 or not args.busy + args.quiet + args.still:
            p.error("--busy, --quiet and --still must be at least 0, and one of them at least 1")
        if args.seconds <= 0 or args.keyframe_s <= 0:
            p.error("--seconds and --keyframe-s must be positive")
        return args
    for d in args.data or DEFAULT_DATA:
        if not d.is_dir():
            p.error(f"--data {d} is not a folder" if args.data else
                    f"the default crops folder {d} is absent: put the shared data beside the project or pass --data")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    use_shared_models()
    cv2.setNumThreads(1)
    try:
        settings = Settings.from_env().override(threads=1, device="cpu", **{k: getattr(args, k) for k in VISION_FLAGS})
        if args.walking:
            return quality_walking.main(args, settings)
        pipe = Pipeline.from_settings(settings, args.model)
    except MaskWatchError as exc:  # a bad setting, a missing or unreadable model
        print(f"bench.quality: {exc}", file=sys.stderr)
        return 2
    results: dict[str, dict] = {}
    for data in args.data or DEFAULT_DATA:
        scenes = compose_scenes(data, args.scenes, args.seed, args.size, args.face_px, args.faces, args.per_class)
        results[pool_name(data)] = evaluate(pipe, scenes, pool_name(data))
    used = {k: getattr(settings, k) for k in VISION_FLAGS}
    print(f"{args.scenes} scenes of {args.size[0]}x{args.size[1]}, faces {args.face_px[0]}-{args.face_px[1]} px, "
          f"seed {args.seed}; " + ", ".join(f"{k}={v}" for k, v in used.items()))
    print(format_table(results))
    print(json.dumps({"size": list(args.size), "seed": args.seed, "settings": used, "pools": results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
