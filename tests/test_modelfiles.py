"""The YuNet download: real HTTP from a local server, checked against the published sha256."""

from __future__ import annotations

import functools
import hashlib
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from maskwatch.exceptions import ModelFileError
from maskwatch.modelfiles import YUNET, ModelFile, ensure, ensure_yunet, sha256_of


@pytest.fixture
def file_server(tmp_path: Path, yunet_dir: Path) -> Iterator[str]:
    """Serves a folder holding the real YuNet file and a tampered copy."""
    root = tmp_path / "www"
    root.mkdir()
    data = (yunet_dir / YUNET.name).read_bytes()
    (root / YUNET.name).write_bytes(data)
    (root / "tampered.onnx").write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a: None  # type: ignore[attr-defined]
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_missing_yunet_is_downloaded_and_checked(file_server: str, tmp_path: Path):
    target_dir = tmp_path / "models"
    path = ensure_yunet(target_dir, url=f"{file_server}/{YUNET.name}")
    assert path == target_dir / YUNET.name
    assert sha256_of(path) == YUNET.sha256 == "8f2383e4dd3cfbb4553ea8718107fc0423210dc964f9f4280604804ed2552fa4"
    assert list(target_dir.iterdir()) == [path], "no partial download left behind"


def test_a_present_file_is_not_downloaded_again(yunet_dir: Path):
    assert ensure_yunet(yunet_dir, url="http://127.0.0.1:9/never-asked") == yunet_dir / YUNET.name


def test_a_tampered_download_is_refused_and_not_kept(file_server: str, tmp_path: Path):
    with pytest.raises(ModelFileError, match="sha256"):
        ensure_yunet(tmp_path / "models", url=f"{file_server}/tampered.onnx")
    assert not any((tmp_path / "models").iterdir())


def test_an_unreachable_or_missing_url_says_how_to_fix_it(file_server: str, tmp_path: Path):
    model = ModelFile("x.onnx", "http://127.0.0.1:9/x.onnx", hashlib.sha256(b"").hexdigest())
    with pytest.raises(ModelFileError, match="MASKWATCH_MODEL_DIR"):
        ensure(model, tmp_path / "models", timeout=2)
    with pytest.raises(ModelFileError, match="404") as err:
        ensure(model, tmp_path / "models", url=f"{file_server}/x.onnx", timeout=2)
    assert f"{file_server}/x.onnx" in str(err.value)
