"""Third-party model files (YuNet) in MASKWATCH_MODEL_DIR: found there, or downloaded once and checked.

A download goes to a temporary file, is checked against its sha256 and only then renamed into
place, so a broken or tampered download never becomes the model.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from maskwatch.exceptions import ModelFileError


@dataclass(frozen=True)
class ModelFile:
    name: str
    url: str
    sha256: str
    what: str = "the model file"  # for messages


YUNET = ModelFile(
    name="face_detection_yunet_2023mar.onnx",
    url="https://github.com/opencv/opencv_zoo/raw/main/models/face_detection_yunet/face_detection_yunet_2023mar.onnx",
    sha256="8f2383e4dd3cfbb4553ea8718107fc0423210dc964f9f4280604804ed2552fa4",
    what="the face detector's model",
)


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def yunet_path(model_dir: Path) -> Path:
    return Path(model_dir).expanduser() / YUNET.name


def ensure(model: ModelFile, model_dir: Path, url: str | None = None, timeout: float = 60.0) -> Path:
    """Return the path of ``model`` in ``model_dir``, downloading it from ``url`` when missing."""
    target = Path(model_dir).expanduser() / model.name
    if target.is_file():
        return target
    url = url or model.url
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=model.name, suffix=".part", dir=target.parent)
    except OSError as exc:
        raise ModelFileError(f"cannot write the model folder {target.parent} ({exc.strerror or exc}); "
                             "set MASKWATCH_MODEL_DIR to a writable folder") from exc
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as resp:
            total = int(resp.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=f"downloading {model.name}", disable=None) as bar:
                for chunk in iter(lambda: resp.read(1 << 16), b""):
                    out.write(chunk)
                    bar.update(len(chunk))
        got = sha256_of(tmp)
        if got != model.sha256:
            raise ModelFileError(f"{model.name} from {url} has sha256 {got}, expected {model.sha256}; "
                                 "the download is corrupt or not the published file")
        tmp.replace(target)
        return target
    except OSError as exc:
        raise ModelFileError(
            f"{model.what} {model.name} is not in {target.parent} and could not be downloaded from {url} "
            f"({_why(exc)}). When online, run `maskwatch models fetch`; offline, copy the file into {target.parent} "
            "or set MASKWATCH_MODEL_DIR to a folder that has it"
        ) from exc
    finally:
        tmp.unlink(missing_ok=True)


def _why(exc: OSError) -> str:
    """Why a download failed, in a few words: "[Errno 111] Connection refused", "HTTP Error 404: Not Found"."""
    if isinstance(exc, urllib.error.URLError) and not isinstance(exc, urllib.error.HTTPError):
        return str(exc.reason)
    return str(exc)


def ensure_yunet(model_dir: Path, url: str | None = None) -> Path:
    return ensure(YUNET, model_dir, url)
