"""How `maskwatch` ends on an error, as a user sees it: their mistake in one line, a bug with its traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT

# `maskwatch models info` with its command function replaced by one that raises what the test names.
RAISING = """
import importlib

cli = importlib.import_module("maskwatch.cli.main")  # the module: the package's `main` is the function

def run_models(args, settings):
    raise {exc}

cli._run_models = run_models
raise SystemExit(cli.main(["models", "info"]))
"""


def maskwatch(*args: str, code: str | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-c", code] if code else [sys.executable, "-m", "maskwatch", *args]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=60,
                          env={**os.environ, "MASKWATCH_LOG_LEVEL": "INFO", **env})


def test_a_user_error_is_one_line_with_status_2(tmp_path: Path) -> None:
    proc = maskwatch("models", "info", "--model", str(tmp_path / "none.mwm"))
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("maskwatch models: error: ") and "none.mwm does not exist" in proc.stderr
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr


def test_a_bad_setting_is_a_user_error() -> None:
    proc = maskwatch("models", "info", MASKWATCH_BATCH_SIZE="many")
    assert proc.returncode == 2, proc.stderr
    assert "MASKWATCH_BATCH_SIZE" in proc.stderr and "Traceback" not in proc.stderr


def test_a_bug_shows_its_traceback() -> None:
    proc = maskwatch(code=RAISING.format(exc='RuntimeError("a bug in the code")'))
    assert proc.returncode == 1
    assert "Traceback (most recent call last)" in proc.stderr and "RuntimeError: a bug in the code" in proc.stderr
    assert "error: a bug" not in proc.stderr


def test_a_value_error_is_a_bug_too() -> None:
    """Python's own exceptions are never taken for the user's mistake, whatever their type."""
    proc = maskwatch(code=RAISING.format(exc='ValueError("not the user\'s fault")'))
    assert proc.returncode == 1 and "Traceback" in proc.stderr and "ValueError: not the user's fault" in proc.stderr


def test_ctrl_c_ends_quietly_with_130() -> None:
    proc = maskwatch(code=RAISING.format(exc="KeyboardInterrupt"))
    assert proc.returncode == 130 and proc.stderr == ""
