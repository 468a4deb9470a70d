"""The classifier's operating point: which P(without_mask) should count as unmasked, chosen on held-out faces.

A classifier trained on Face Mask 12K is sure of 12K (its validation split scores 0.997-1.000 at
any threshold, clean or degraded), so 12K cannot place the threshold. On faces from elsewhere it
leans towards ``with_mask``: at 0.5 it misses unmasked faces far more often than it calls masked
ones bare, and a compliance figure built on it reads too high. So the threshold is placed on an
independent labelled folder (chandrikadeb7 by default), split in two by a hash of each file's name:

- on the **calibration half**, every threshold of ``--thresholds`` is scored at every face width of
  ``--sizes`` (``0``: the image as it is; ``N``: degraded to N px wide and back, as
  ``maskwatch evaluate --degrade N``), and the threshold with the best balanced accuracy averaged
  over the widths is chosen;
- on the **check half**, never looked at while choosing, the chosen threshold is compared with 0.5.

Thresholds whose mean balanced accuracy lies within one standard error of the best are reported as
``near_best``: a half of chandrikadeb7 cannot tell them apart.

Two halves of one folder are one source: the check half tells whether the choice generalises
within that source, not to CCTV. What a threshold does to people (their vote over several looks) is
the walking-people bench's to show (``bench.quality --walking --variant t50:mask_threshold=0.5``);
docs/quality.md, "Operating point", has both and how the worker's default (0.35) was chosen.

    python -m bench.threshold                       # about 2 minutes on 2 cores
    python -m bench.threshold --model runs/x/model.mwm --sizes 0,24 --limit 200
"""

from __future__ import annotations

import argparse
import hashlib
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import DATA, emit, machine, model_path, need, show
from maskwatch.artifact import CLASSES, ModelArtifact
from maskwatch.runtimes import load_runtime
from maskwatch.settings import Settings
from trainer.datasets import Split, load_split
from trainer.evaluate import predict

DEFAULT_DATA = DATA / "chandrikadeb7"
UNMASKED = CLASSES.index("without_mask")
BASELINE = 0.5


def halves(split: Split) -> np.ndarray:
    """0 (calibration) or 1 (check) per image, by a hash of its file name: stable as files come and go.

    >>> s = Split("x", [Path("with_mask/0129.jpg"), Path("without_mask/0129.jpg"), Path("with_mask/0323.jpg")])
    >>> halves(s).tolist()
    [1, 1, 0]
    """
    return np.array([hashlib.sha256(p.name.encode()).digest()[0] % 2 for p in split.paths], np.int64)


def scores(p_without: np.ndarray, labels: np.ndarray, threshold: float) -> dict[str, float]:
    """Recall of each class and balanced accuracy when P(without_mask) > ``threshold`` means unmasked.

    >>> scores(np.array([0.9, 0.4, 0.1, 0.2]), np.array([UNMASKED, UNMASKED, 1 - UNMASKED, 1 - UNMASKED]), 0.3)
    {'without_mask_recall': 1.0, 'with_mask_recall': 1.0, 'balanced_accuracy': 1.0}
    """
    unmasked = p_without > threshold
    bare = labels == UNMASKED
    r_without = float(unmasked[bare].mean()) if bare.any() else float("nan")
    r_with = float((~unmasked[~bare]).mean()) if (~bare).any() else float("nan")
    return {"without_mask_recall": round(r_without, 4), "with_mask_recall": round(r_with, 4),
            "balanced_accuracy": round((r_without + r_with) / 2, 4)}


def mean_balanced(probs: dict[int, np.ndarray], labels: np.ndarray, t: float) -> tuple[float, float]:
    """Balanced accuracy at threshold ``t`` averaged over the widths, and its standard error (the widths'
    mean error: they share images, so their errors are not independent)."""
    accs, errors = [], []
    bare = labels == UNMASKED
    for p in probs.values():
        s = scores(p, labels, t)
        r1, r2 = s["without_mask_recall"], s["with_mask_recall"]
        accs.append(s["balanced_accuracy"])
        errors.append(0.5 * math.sqrt(r1 * (1 - r1) / max(1, bare.sum()) + r2 * (1 - r2) / max(1, (~bare).sum())))
    return float(np.mean(accs)), float(np.mean(errors))


def choose(probs: dict[int, np.ndarray], labels: np.ndarray, thresholds: Sequence[float]) -> tuple[float, list[float]]:
    """The threshold with the best balanced accuracy averaged over the widths (the lower of equals), and
    every threshold within one standard error of it."""
    means = {t: mean_balanced(probs, labels, t) for t in thresholds}
    best = max(thresholds, key=lambda t: (round(means[t][0], 6), -t))
    return best, [t for t in thresholds if means[t][0] >= means[best][0] - means[best][1]]


def _float_list(text: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give numbers separated by commas, e.g. 0.3,0.4,0.5") from None
    if not values or any(not 0 < v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"{text!r}: every threshold must lie strictly between 0 and 1")
    return values


def _size_list(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give face widths in px, comma-separated, e.g. 0,32,24") from None
    if not values or any(v != 0 and v < 4 for v in values):
        raise argparse.ArgumentTypeError(f"{text!r}: a width is 0 (the image as it is) or at least 4 px")
    return values


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.threshold", description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, default=DEFAULT_DATA,
                   help=f"folder with with_mask/ and without_mask/ crops, never trained on (default {DEFAULT_DATA})")
    p.add_argument("--model", type=Path, help="classifier artifact (default: MASKWATCH_MODEL or the shipped model)")
    p.add_argument("--sizes", type=_size_list, default=[0, 32, 24, 20],
                   help="face widths to score at, 0 = as they are (default 0,32,24,20)")
    p.add_argument("--thresholds", type=_float_list, default=[round(t, 2) for t in np.arange(0.15, 0.61, 0.05)],
                   help="thresholds to try (default 0.15,0.20,...,0.60)")
    p.add_argument("--limit", type=int, default=0, help="use only the first N images of each class (0: all)")
    args = p.parse_args(argv)
    if args.limit < 0:
        p.error(f"--limit must be 0 or more, got {args.limit}")
    if BASELINE not in args.thresholds:
        args.thresholds = sorted([*args.thresholds, BASELINE])
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    path = model_path(args.model)
    artifact = ModelArtifact.load(path)
    split = load_split(need(args.data), "data", strict=False)
    if args.limit:
        keep = np.concatenate([np.flatnonzero(split.labels == c)[:args.limit] for c in range(len(CLASSES))])
        split = split.subset(np.sort(keep), split.name)
    runtime = load_runtime(artifact, "onnx", "cpu")
    half = halves(split)
    probs = {px: predict(runtime, artifact, split, px or None, desc=f"classify at {px or 'full'} px")[:, UNMASKED]
             for px in args.sizes}
    calibration = {px: p[half == 0] for px, p in probs.items()}
    chosen, near_best = choose(calibration, split.labels[half == 0], args.thresholds)
    default = Settings().mask_threshold  # MASKWATCH_MASK_THRESHOLD, as the worker reads it
    compared = sorted({BASELINE, chosen, default})
    check: dict[str, Any] = {}
    rows = []
    for px, p in probs.items():
        width = f"{px} px" if px else "as is"
        at = {t: scores(p[half == 1], split.labels[half == 1], t) for t in compared}
        check[str(px)] = {str(t): s for t, s in at.items()}
        rows.append([width, *(f"{at[t]['balanced_accuracy']:.4f} ({at[t]['without_mask_recall']:.3f} / "
                              f"{at[t]['with_mask_recall']:.3f})" for t in compared)])
    sweep = [[f"{t:.2f}", *(f"{scores(p, split.labels[half == 0], t)['balanced_accuracy']:.4f}"
                            for p in calibration.values())] for t in args.thresholds]
    widths = [f"{px} px" if px else "as is" for px in args.sizes]
    show(f"calibration half ({int((half == 0).sum())} images): balanced accuracy per threshold",
         ["threshold", *widths], sweep)
    print(f"best on the calibration half: {chosen:.2f}; within one standard error of it: "
          f"{', '.join(f'{t:.2f}' for t in near_best)}\n", flush=True)
    show(f"check half ({int((half == 1).sum())} images): balanced accuracy (without_mask / with_mask recall)",
         ["width", *(f"{t:.2f}" + (" (chosen)" if t == chosen else "") + (" (default)" if t == default else "")
                     for t in compared)], rows)
    emit({"bench": "threshold", "machine": machine(), "model": path.name, "data": str(args.data),
          "images": len(split), "calibration_images": int((half == 0).sum()), "check_images": int((half == 1).sum()),
          "sizes": args.sizes, "chosen_threshold": chosen, "near_best": near_best, "baseline_threshold": BASELINE,
          "default_threshold": default, "check": check})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
