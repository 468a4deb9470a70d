"""The one-way imports of DESIGN.md, enforced: apps never import each other, the core no app, serving paths no torch."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from tests.conftest import ROOT


def test_import_contracts_hold():
    lint = shutil.which("lint-imports") or str((ROOT / ".venv" / "bin" / "lint-imports"))
    if not shutil.which(lint):
        pytest.skip("import-linter is not installed (pip install -e '.[dev]')")
    proc = subprocess.run([lint, "--config", str(ROOT / "pyproject.toml")], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("command", [["--help"], ["producer", "--help"], ["dashboard", "--help"], ["camera", "list", "--help"]])
def test_cli_help_does_not_load_torch(command):
    code = ("import sys\nfrom maskwatch.cli import main\ntry:\n    main(%r)\nexcept SystemExit:\n    pass\n"
            "assert 'torch' not in sys.modules, 'torch was imported'\n" % command)
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
