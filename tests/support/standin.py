"""A stand-in for ../shared, made from what the repository carries, for a checkout without it.

It has ../shared's layout, so the tests, the benchmarks they run and the processes they start read
it as they read ../shared (tests/conftest.py points MASKWATCH_SHARED at it):

- ``models/face_detection_yunet_2023mar.onnx``: the copy in tests/fixtures/models (MIT).
- ``models/mobilenet_v2_imagenet.pth``: MobileNetV2 feature layers under torchvision's key names, as
  ../shared's file, but the shipped classifier's (trained on faces), not ImageNet's: pretrained
  features for ``--init-weights PATH``, which is what the trainer's tests need of them.
- ``data/facemask12k/{train,val,test}`` and ``data/chandrikadeb7``, each with ``with_mask/`` and
  ``without_mask/``: crops of the public-domain portrait (tests/support/faces.py), other seeds per folder.
- ``videos/walking.mp4``: a walking-people clip (bench/scenes/walking.py) in place of the entrance clips.

The models folder is made at once (a copy); data, videos and the initial weights on first use,
each in a scratch folder renamed into place when whole.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

from tests.support.faces import write_crops

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
YUNET = "face_detection_yunet_2023mar.onnx"
INIT_WEIGHTS = "mobilenet_v2_imagenet.pth"
# folder under data/ -> (crops per class, seed); sized for the tests and benchmarks that read them
CROPS = {"facemask12k/train": (24, 1), "facemask12k/val": (8, 2), "facemask12k/test": (64, 3),
         "chandrikadeb7": (64, 4)}


def start(root: Path) -> Path:
    """Lay out the stand-in in the empty folder ``root``: the models folder now, the rest on first use."""
    (root / "models").mkdir(parents=True)
    shutil.copy(FIXTURES / "models" / YUNET, root / "models" / YUNET)
    return root


def make(root: Path, path: Path) -> None:
    """Make the part of the stand-in at ``root`` that ``path`` lies in, unless it is there already."""
    try:
        rel = path.relative_to(root)
    except ValueError:
        return
    parts: dict[Path, Callable[[Path], None]] = {Path("data"): make_data, Path("videos"): make_videos,
                                                 Path("models") / INIT_WEIGHTS: make_init_weights}
    for part, maker in parts.items():
        if (rel == part or part in rel.parents) and not (root / part).exists():
            scratch = root / f"{part}.part"
            maker(scratch)
            scratch.rename(root / part)


def make_data(folder: Path) -> None:
    for name, (per_class, seed) in CROPS.items():
        write_crops(folder / name, per_class, seed)


def make_videos(folder: Path) -> None:
    """One 8 s clip, 640x360 at 10 fps, of six people crossing a lobby (someone in 73 of its 80 frames)."""
    from bench.scenes.walking import face_pool, walking_scene

    root = folder.parent
    make(root, root / "data")
    folder.mkdir()
    pool = face_pool([root / "data" / "facemask12k" / "test"], per_class=8)
    walking_scene(seed=3, duration_s=8, fps=10, lead_s=0.0, people_per_min=120, pool=pool).write_video(
        folder / "walking.mp4")


def make_init_weights(path: Path) -> None:
    """MobileNetV2's feature layers under torchvision's key names, taken from the shipped classifier.

    Its ONNX graph holds them with each batch norm folded into the convolution before it; written
    back as that convolution and a batch norm that adds the folded bias (scale 1, mean 0, variance
    1 - eps), they compute the same features.
    """
    import itertools

    import torch
    from torch import nn

    from maskwatch.artifact import ModelArtifact, default_model_path
    from maskwatch.runtimes.torch import MaskNet, build_folded, state_from_onnx

    artifact = ModelArtifact.load(default_model_path())
    folded = build_folded(artifact.meta)
    fused = state_from_onnx(artifact, folded)
    plain = MaskNet(len(artifact.meta.classes), artifact.meta.head)
    state = {k: v for k, v in plain.state_dict().items() if k.startswith("features.")}
    for name, seq in plain.features.named_modules(prefix="features"):
        if not isinstance(seq, nn.Sequential):
            continue
        for a, b in itertools.pairwise(seq._modules):
            bn = seq._modules[b]
            if isinstance(seq._modules[a], nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
                conv, norm = f"{name}.{a}", f"{name}.{b}"
                state[f"{conv}.weight"] = fused[f"{conv}.weight"]
                state[f"{norm}.bias"] = fused[f"{conv}.bias"]
                state[f"{norm}.weight"] = torch.ones_like(state[f"{norm}.weight"])
                state[f"{norm}.running_mean"] = torch.zeros_like(state[f"{norm}.running_mean"])
                state[f"{norm}.running_var"] = torch.full_like(state[f"{norm}.running_var"], 1 - bn.eps)
    torch.save(state, path)
