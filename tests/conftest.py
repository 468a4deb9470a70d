"""Shared fixtures: a real redis-server per test session, the shared data and models, test videos.

Data and models come from ../shared (MASKWATCH_SHARED overrides) when it is there, as on CI and
the developers' machines. On a checkout without it, a stand-in made from what the repository
carries takes its place (tests/support/standin.py), so the same tests run, on made data. Nothing is
skipped for want of data; under CI=true nothing is skipped at all but what needs a CUDA GPU.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from maskwatch.cli.embedded_redis import EmbeddedRedis
from maskwatch.keys import Keys
from maskwatch.settings import Settings
from tests.support import standin

ROOT = Path(__file__).resolve().parent.parent
GIVEN = Path(os.environ.get("MASKWATCH_SHARED", ROOT.parent / "shared"))
STANDIN = not GIVEN.is_dir()
SHARED = standin.start(Path(tempfile.mkdtemp(prefix="maskwatch-shared-"))) if STANDIN else GIVEN
MODELS = SHARED / "models"
DATA = SHARED / "data"

if STANDIN:  # the benchmarks the tests run, and the processes they start, read the same stand-in
    os.environ["MASKWATCH_SHARED"] = str(SHARED)
# Tests never download: the model folder is the shared one (CI sets the same).
os.environ.setdefault("MASKWATCH_MODEL_DIR", str(MODELS))


def need_shared(path: Path) -> Path:
    """``path`` in the shared folder (made first when it is the stand-in); a test fails, never skips, without it."""
    if STANDIN:
        standin.make(SHARED, path)
    if not path.exists():
        pytest.fail(f"{path} is absent from {GIVEN}: make it a whole copy of MaskWatch's shared data and models, "
                    "or point MASKWATCH_SHARED at a path that does not exist to run on data the tests make")
    return path


def pytest_unconfigure(config: pytest.Config) -> None:
    if STANDIN:
        shutil.rmtree(SHARED, ignore_errors=True)


def forbidden_skip(report: pytest.TestReport | pytest.CollectReport, item: pytest.Item | None = None) -> str | None:
    """Why ``report``'s skip must fail instead: under CI=true only what needs a CUDA GPU (CI has none) may skip."""
    if not report.skipped or hasattr(report, "wasxfail") or os.environ.get("CI", "").lower() not in ("true", "1"):
        return None
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    if "CUDA" in reason or (item is not None and item.get_closest_marker("cuda") is not None):
        return None
    return f"CI=true allows no skip but for want of a CUDA GPU, and {report.nodeid} skipped: {reason}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if why := forbidden_skip(report, item):
        report.outcome, report.longrepr = "failed", why


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if why := forbidden_skip(report):
        report.outcome, report.longrepr = "failed", why


@pytest.fixture(scope="session", autouse=True)
def media_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """File cameras read only from the media folder: the tests' videos are all under pytest's temporary root.

    Set in the environment, so the settings of every test and of the processes they start take it.
    """
    root = tmp_path_factory.getbasetemp()
    before = os.environ.get("MASKWATCH_MEDIA_DIR")
    os.environ["MASKWATCH_MEDIA_DIR"] = str(root)
    yield root
    if before is None:
        os.environ.pop("MASKWATCH_MEDIA_DIR", None)
    else:
        os.environ["MASKWATCH_MEDIA_DIR"] = before


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
    need_shared(MODELS / standin.YUNET)
    return MODELS


@pytest.fixture(scope="session")
def artifacts_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where screenshots a person may want to look at go: a temporary folder, never the checkout."""
    return tmp_path_factory.mktemp("screenshots")
