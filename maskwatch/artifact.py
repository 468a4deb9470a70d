"""The classifier's model artifact: one `.mwm` file that every runtime loads.

An artifact is a zip archive holding

- ``meta.json``: class names (index order of the model's output), input size, normalisation
  (mean, std of RGB in 0..1), metrics measured at training time, a fingerprint of the training
  data, the versions that produced it, and the recipe (training arguments);
- ``model.onnx``: the network, taking ``input`` (N, 3, S, S) float32 normalised RGB and giving
  ``logits`` (N, len(classes)). Exported with its parameters kept under their PyTorch names,
  so the torch runtime can rebuild the module from the same file: there is one set of weights.

Loading needs neither torch nor onnx; only the runtimes do.

>>> meta = ModelMeta(classes=["with_mask", "without_mask"], input_size=128)
>>> meta.index("without_mask")
1
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from maskwatch.exceptions import ArtifactError

FORMAT = "maskwatch-model"
FORMAT_VERSION = 1
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CLASSES = ("with_mask", "without_mask")


@dataclass
class ModelMeta:
    """What a runtime and a reader need to know about a classifier besides its weights."""

    classes: list[str] = field(default_factory=lambda: list(CLASSES))
    input_size: int = 224
    mean: list[float] = field(default_factory=lambda: list(IMAGENET_MEAN))
    std: list[float] = field(default_factory=lambda: list(IMAGENET_STD))
    architecture: str = "mobilenet_v2"
    head: list[int] = field(default_factory=lambda: [128])
    metrics: dict[str, Any] = field(default_factory=dict)
    data_fingerprint: str = ""
    versions: dict[str, str] = field(default_factory=dict)
    recipe: dict[str, Any] = field(default_factory=dict)
    created: str = ""

    def index(self, label: str) -> int:
        """Output column of ``label``; raises ArtifactError naming the classes it has."""
        try:
            return self.classes.index(label)
        except ValueError:
            raise ArtifactError(f"model has no class {label!r}; it has {self.classes}") from None


@dataclass
class ModelArtifact:
    """A classifier: its metadata and its ONNX bytes."""

    meta: ModelMeta
    onnx: bytes

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.onnx).hexdigest()

    def save(self, path: str | Path) -> Path:
        """Write the artifact to ``path`` (conventionally ``*.mwm``) and return the path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        doc = {"format": FORMAT, "format_version": FORMAT_VERSION, **asdict(self.meta)}
        tmp = path.with_name(path.name + ".tmp")
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            zf.writestr("meta.json", json.dumps(doc, indent=2, sort_keys=True))
            zf.writestr("model.onnx", self.onnx)
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> ModelArtifact:
        """Read an artifact; every failure is an ArtifactError that names the file and the fix."""
        path = Path(path)
        if not path.is_file():
            raise ArtifactError(
                f"model file {path} does not exist; set MASKWATCH_MODEL or --model to a .mwm file "
                "made by `maskwatch train`, or unset it to use the shipped default"
            )
        try:
            with zipfile.ZipFile(path) as zf:
                doc = json.loads(zf.read("meta.json"))
                onnx = zf.read("model.onnx")
        except (zipfile.BadZipFile, KeyError, json.JSONDecodeError) as exc:
            raise ArtifactError(f"{path} is not a MaskWatch model artifact ({exc})") from exc
        if doc.pop("format", None) != FORMAT:
            raise ArtifactError(f"{path}: meta.json does not declare format {FORMAT!r}")
        version = doc.pop("format_version", None)
        if version != FORMAT_VERSION:
            raise ArtifactError(
                f"{path}: artifact format_version {version!r}, this MaskWatch reads {FORMAT_VERSION}; "
                "upgrade MaskWatch or re-export the model"
            )
        known = set(ModelMeta.__dataclass_fields__)
        meta = ModelMeta(**{k: v for k, v in doc.items() if k in known})
        if len(meta.classes) < 2:
            raise ArtifactError(f"{path}: meta.json lists {meta.classes}, a classifier needs two classes")
        return cls(meta=meta, onnx=onnx)


def default_model_path() -> Path:
    """The classifier shipped inside the package."""
    return Path(__file__).resolve().parent / "models" / "default.mwm"
