"""Find the images of a dataset folder, in any of the layouts the trainer accepts.

Layouts:

- split folders ``train/ val/ test/`` (or Kaggle's ``Train/ Validation/ Test/``), each holding
  the two class folders;
- a plain folder with the two class folders only: the trainer makes a validation split from it.

Class folders are ``with_mask``/``without_mask`` or Kaggle's ``WithMask``/``WithoutMask``.
Images are read as bytes once (they are decoded again for every augmented view) and checked by
decoding; an unreadable file is skipped and counted, never a crash halfway through training.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from maskwatch.artifact import CLASSES
from maskwatch.exceptions import MaskWatchError
from maskwatch.vision.pipeline import IMAGE_SUFFIXES

log = logging.getLogger(__name__)

_SPLIT_NAMES = {"train": "train", "training": "train", "val": "val", "valid": "val", "validation": "val",
                "test": "test", "testing": "test"}


class DatasetError(MaskWatchError):
    """A data folder the trainer cannot use; the message names the folder and what is wrong."""


def _norm(name: str) -> str:
    return re.sub(r"[^a-z]", "", name.lower())


_CLASS_NAMES = {_norm(c): i for i, c in enumerate(CLASSES)}


@dataclass
class Split:
    """The images of one split: encoded bytes, labels (index into CLASSES) and their paths."""

    name: str
    paths: list[Path] = field(default_factory=list)
    labels: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    blobs: list[bytes] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.paths)

    def counts(self) -> dict[str, int]:
        return {c: int((self.labels == i).sum()) for i, c in enumerate(CLASSES)}

    def subset(self, idx: np.ndarray, name: str) -> Split:
        return Split(name, [self.paths[i] for i in idx], self.labels[idx], [self.blobs[i] for i in idx])


def try_decode(blob: bytes) -> np.ndarray | None:
    """BGR uint8 image from encoded bytes, or None when the bytes are not a readable image."""
    img = cv2.imdecode(np.frombuffer(blob, np.uint8), cv2.IMREAD_COLOR)
    return img if img is not None and img.size else None


def decode(blob: bytes) -> np.ndarray:
    """BGR uint8 image from the bytes of a :class:`Split`, which :func:`load_split` checked are readable."""
    img = try_decode(blob)
    if img is None:
        raise DatasetError("image bytes that do not decode as an image; build splits with load_split, "
                           "which skips unreadable files")
    return img


def class_folders(folder: Path, strict: bool) -> dict[int, Path]:
    """The class subfolders of ``folder`` by class index.

    ``strict`` (training) refuses other subfolders; evaluation ignores them. Both refuse a folder
    missing a class.
    """
    if not folder.is_dir():
        raise DatasetError(f"{folder} is not a folder")
    found: dict[int, Path] = {}
    for sub in sorted(p for p in folder.iterdir() if p.is_dir()):
        idx = _CLASS_NAMES.get(_norm(sub.name))
        if idx is None:
            if strict:
                raise DatasetError(
                    f"unknown folder {sub.name!r} in {folder}; expected class folders "
                    f"{' and '.join(CLASSES)} (or WithMask and WithoutMask)")
            continue
        if idx in found:
            raise DatasetError(f"{folder} has two folders for class {CLASSES[idx]}: {found[idx].name}, {sub.name}")
        found[idx] = sub
    missing = [CLASSES[i] for i in range(len(CLASSES)) if i not in found]
    if missing:
        have = sorted(p.name for p in folder.iterdir() if p.is_dir())
        raise DatasetError(f"{folder} has no {' or '.join(missing)} folder (its subfolders: {have or 'none'})")
    return found


def load_split(folder: Path, name: str, strict: bool = True, limit: int | None = None) -> Split:
    """Read every image under the class folders of ``folder`` (recursively, sorted by path)."""
    entries: list[tuple[Path, int]] = []
    for idx, sub in class_folders(folder, strict).items():
        files = sorted(p for p in sub.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise DatasetError(f"class folder {sub} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
        entries += [(p, idx) for p in files[:limit]]
    split = Split(name)
    labels = []
    for path, idx in tqdm(entries, desc=f"read {name}", unit="img", leave=False):
        blob = path.read_bytes()
        if try_decode(blob) is None:
            split.skipped.append(str(path))
            continue
        split.paths.append(path)
        split.blobs.append(blob)
        labels.append(idx)
    split.labels = np.asarray(labels, np.int64)
    if split.skipped:
        log.warning("%s: skipped %d unreadable image(s), e.g. %s", name, len(split.skipped), split.skipped[0])
    for i, c in enumerate(CLASSES):
        if not (split.labels == i).any():
            raise DatasetError(f"{folder}: no readable {c} image in split {name!r}")
    return split


def find_splits(root: Path) -> dict[str, Path]:
    """Map split name (train/val/test) to its folder, or {"all": root} for a plain class folder."""
    if not root.is_dir():
        raise DatasetError(f"data folder {root} does not exist")
    subs = [p for p in sorted(root.iterdir()) if p.is_dir()]
    if len(subs) == 1 and _norm(subs[0].name) not in _SPLIT_NAMES and _norm(subs[0].name) not in _CLASS_NAMES:
        return find_splits(subs[0])  # an archive's single top folder, e.g. Kaggle's "Face Mask Dataset/"
    names = {_norm(p.name) for p in subs}
    if names and names <= set(_CLASS_NAMES):
        class_folders(root, strict=True)
        return {"all": root}
    splits: dict[str, Path] = {}
    for sub in subs:
        split = _SPLIT_NAMES.get(_norm(sub.name))
        if split is None:
            raise DatasetError(
                f"unknown folder {sub.name!r} in {root}; expected split folders train/val/test "
                "(or Kaggle's Train/Validation/Test) or class folders with_mask/without_mask")
        if split in splits:
            raise DatasetError(f"{root} has two folders for split {split}: {splits[split].name}, {sub.name}")
        splits[split] = sub
    if "train" not in splits:
        raise DatasetError(f"{root} has no train split (its subfolders: {[p.name for p in subs] or 'none'})")
    return splits


def val_split_mask(paths: list[Path], fraction: float) -> np.ndarray:
    """Deterministic validation membership by a hash of each file name (stable as files are added)."""
    keys = [int.from_bytes(hashlib.sha256(p.name.encode()).digest()[:8], "big") / 2.0**64 for p in paths]
    return np.asarray(keys) < fraction


def load_dataset(root: Path, limit: int | None = None, val_fraction: float = 0.1) -> dict[str, Split]:
    """Train and val (and test, when present) splits of ``root``; a plain folder is split by hash."""
    folders = find_splits(root)
    if "all" in folders:
        every = load_split(folders["all"], "all", limit=limit)
        in_val = val_split_mask(every.paths, val_fraction)
        splits = {"train": every.subset(np.flatnonzero(~in_val), "train"),
                  "val": every.subset(np.flatnonzero(in_val), "val")}
        for s in splits.values():
            if len(set(s.labels.tolist())) < len(CLASSES):
                raise DatasetError(f"{root}: too few images to make a validation split holding both classes")
        splits["train"].skipped = every.skipped
        return splits
    if "val" not in folders:
        raise DatasetError(f"{root} has a train split but no val (Validation) split")
    return {name: load_split(path, name, limit=limit) for name, path in folders.items()}


def fingerprint(splits: dict[str, Split]) -> str:
    """sha256 over every split, label, file name and file content: names the exact training data."""
    h = hashlib.sha256()
    for name in sorted(splits):
        s = splits[name]
        for path, label, blob in zip(s.paths, s.labels.tolist(), s.blobs):
            h.update(f"{name}/{label}/{path.name}/".encode())
            h.update(hashlib.sha256(blob).digest())
    return h.hexdigest()
