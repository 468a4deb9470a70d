"""`maskwatch evaluate`: how well a classifier artifact does on a folder of labelled face crops.

Runs on ONNX Runtime by default (no torch needed), through the serving preprocessing
(:func:`maskwatch.vision.preprocess.to_batch`) and :func:`maskwatch.runtimes.load_runtime`, so
evaluation sees the pixels serving sees. ``--degrade PX`` first shrinks every image to PX wide
and scales it back, as a camera sees a face PX pixels wide.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
from pathlib import Path

import numpy as np
from tqdm import tqdm

from maskwatch.artifact import CLASSES, ModelArtifact, default_model_path
from maskwatch.exceptions import SettingsError
from maskwatch.runtimes import Runtime, load_runtime
from maskwatch.vision.preprocess import to_batch
from trainer.augment import degrade
from trainer.datasets import Split, decode, load_split
from trainer.metrics import summary

log = logging.getLogger(__name__)


def predict(runtime: Runtime, artifact: ModelArtifact, split: Split, degrade_px: int | None = None,
            batch_size: int = 64, desc: str = "classify") -> np.ndarray:
    """Probabilities (N, len(CLASSES)) in CLASSES order for every image of ``split``."""
    meta = artifact.meta
    columns = [meta.index(c) for c in CLASSES]
    out = np.zeros((len(split), len(CLASSES)), np.float32)
    for start in tqdm(range(0, len(split), batch_size), desc=desc, unit="batch", leave=False):
        crops = []
        for blob in split.blobs[start:start + batch_size]:
            img = decode(blob)
            crops.append(degrade(img, degrade_px) if degrade_px else img)
        probs = runtime.predict_proba(to_batch(crops, meta.input_size, meta.mean, meta.std))
        out[start:start + len(crops)] = probs[:, columns]
    return out


def evaluate(runtime: Runtime, artifact: ModelArtifact, split: Split, degrade_px: int | None = None) -> dict:
    """The ``--json`` summary of ``runtime`` on ``split``."""
    probs = predict(runtime, artifact, split, degrade_px)
    return summary(split.labels, probs[:, CLASSES.index("without_mask")])


def _json_safe(obj: object) -> object:
    if isinstance(obj, float) and math.isnan(obj):
        return None
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_json_safe(v) for v in obj]
    return obj


def format_report(result: dict, title: str) -> str:
    """A human-readable table of a summary."""
    lines = [title, (f"  images {result['n']}   accuracy {result['accuracy']:.4f}   "
                     f"balanced accuracy {result['balanced_accuracy']:.4f}   ROC-AUC {result['roc_auc']:.4f}"),
             f"  {'class':<14}{'precision':>10}{'recall':>10}{'f1':>10}{'n':>8}"]
    for name, c in result["per_class"].items():
        lines.append(f"  {name:<14}{c['precision']:>10.4f}{c['recall']:>10.4f}{c['f1']:>10.4f}{c['n']:>8}")
    lines.append(f"  confusion (rows true, columns predicted {', '.join(CLASSES)}): {result['confusion']}")
    return "\n".join(lines)


def main(args: argparse.Namespace) -> int:
    model_path = Path(args.model) if args.model else default_model_path()
    degrade_px = args.degrade
    if degrade_px is not None and degrade_px < 4:
        raise SettingsError(f"--degrade {degrade_px}: give a face width of at least 4 px")
    artifact = ModelArtifact.load(model_path)
    split = load_split(Path(args.data), "data", strict=False)
    runtime = load_runtime(artifact, args.runtime, "cpu" if args.runtime == "onnx" else "auto")
    result = evaluate(runtime, artifact, split, degrade_px)
    if args.json:
        print(json.dumps(_json_safe(result)))
    else:
        what = f"{args.data}" + (f" degraded to {degrade_px} px" if degrade_px else "")
        print(format_report(result, f"{model_path.name} on {what} ({runtime.name} runtime)"))
        print(f"  without_mask recall: {result['per_class']['without_mask']['recall']:.4f}")
        if split.skipped:
            print(f"  skipped {len(split.skipped)} unreadable image(s)")
    return 0
