"""The one-way imports of DESIGN.md, enforced: apps never import each other, the core no app, serving paths no torch."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from tests.conftest import ROOT


def test_import_contracts_hold():
    lint = shutil.which("lint-imports") or str(ROOT / ".venv" / "bin" / "lint-imports")
    if not shutil.which(lint):
        pytest.skip("import-linter is not installed (pip install -e '.[dev]')")
    proc = subprocess.run([lint, "--config", str(ROOT / "pyproject.toml")], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("command", [["--help"], ["producer", "--help"], ["dashboard", "--help"],
                                     ["camera", "list", "--help"]])
def test_cli_help_does_not_load_torch(command):
    code = (f"import sys\nfrom maskwatch.cli import main\ntry:\n    main({command!r})\nexcept SystemExit:\n    pass\n"
            "assert 'torch' not in sys.modules, 'torch was imported'\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_cpu_worker_and_dashboard_need_no_torch():
    """The CPU worker's and the dashboard's modules load with torch unavailable."""
    code = ("import sys\nsys.modules['torch'] = None\nsys.modules['torchvision'] = None\n"
            "import worker.service, producer.service, dashboard.app\n"
            "from maskwatch.artifact import ModelArtifact, default_model_path\n"
            "from maskwatch.runtimes import load_runtime\n"
            "load_runtime(ModelArtifact.load(default_model_path()), 'auto', 'auto')\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr


def test_core_contract_lists_every_core_module():
    """A new core module must join the contract that keeps the core free of apps and of the CLI."""
    import tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    contract = next(c for c in config["tool"]["importlinter"]["contracts"] if c["name"].startswith("The core never"))
    listed = set(contract["source_modules"])
    core = {f"maskwatch.{p.stem}" for p in (ROOT / "maskwatch").iterdir()
            if (p.suffix == ".py" and p.stem not in {"__init__", "__main__"}) or (p / "__init__.py").exists()}
    assert core - {"maskwatch.cli"} == listed


def test_jobs_enqueued_by_name_resolve_to_the_worker_functions():
    """RQ calls a job by its dotted name: the one arrow the import contracts cannot see."""
    import importlib

    from maskwatch import jobstore
    from worker.jobs.analysis import analyze_video

    module, _, name = jobstore.ANALYZE_FUNC.rpartition(".")
    assert getattr(importlib.import_module(module), name) is analyze_video
