"""Shared fixtures: a real redis-server per test session, the shared data and models, test videos."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from maskwatch.cli.embedded_redis import EmbeddedRedis
from maskwatch.keys import Keys
from maskwatch.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("MASKWATCH_SHARED", ROOT.parent / "shared"))
MODELS = SHARED / "models"
DATA = SHARED / "data"

# Tests never download: the model folder is the shared one (CI sets the same).
os.environ.setdefault("MASKWATCH_MODEL_DIR", str(MODELS))


def need_shared(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"{path} is absent: put MaskWatch's shared data and models at {SHARED} (or set MASKWATCH_SHARED)")
    return path


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRedis]:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed (apt-get install redis-server)")
    server = EmbeddedRedis(tmp_path_factory.mktemp("redis"), persist=False).start()
    yield server
    server.stop()


@pytest.fixture
def prefix(request: pytest.FixtureRequest) -> str:
    """A key prefix of the test's own, so tests sharing one server never see each other's keys."""
    return "t" + str(abs(hash(request.node.nodeid)) % 10**10)


@pytest.fixture
def settings(redis_server: EmbeddedRedis, prefix: str, tmp_path: Path) -> Settings:
    return Settings.from_env().override(redis_url=redis_server.url, prefix=prefix, state_dir=tmp_path / "state",
                                        model_dir=MODELS, producer_metrics_port=0, worker_metrics_port=0,
                                        jobs_metrics_port=0)


@pytest.fixture
def r(redis_server: EmbeddedRedis) -> redis.Redis:
    return redis.Redis.from_url(redis_server.url)


@pytest.fixture
def keys(prefix: str) -> Keys:
    return Keys(prefix)


@pytest.fixture(scope="session")
def yunet_dir() -> Path:
    need_shared(MODELS / "face_detection_yunet_2023mar.onnx")
    return MODELS


@pytest.fixture(scope="session")
def artifacts_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where screenshots a person may want to look at go: a temporary folder, never the checkout."""
    return tmp_path_factory.mktemp("screenshots")
