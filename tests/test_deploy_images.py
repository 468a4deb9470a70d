"""The container images (deploy/docker) and their build context (.dockerignore).

No Docker engine runs here, so the Dockerfiles are read as Docker reads them and checked for
what a build and a deployment rely on: the base images, a non-root user, the packages and
files `pip install .` needs, and YuNet baked where MASKWATCH_MODEL_DIR points.
"""

from __future__ import annotations

import json
import re
import shlex
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.deploy import ROOT, dockerignore_rules, in_build_context

DOCKERFILES = {"cpu": ROOT / "deploy/docker/Dockerfile.cpu", "cuda": ROOT / "deploy/docker/Dockerfile.cuda"}
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str


@dataclass(frozen=True)
class Stage:
    image: str  # the FROM image, build arguments substituted
    name: str | None
    body: list[Instruction]

    def all(self, keyword: str) -> list[str]:
        return [i.args for i in self.body if i.keyword == keyword]


def parse_dockerfile(path: Path) -> list[Stage]:
    """Stages of a Dockerfile: continuation lines joined, comments dropped, FROM's ARGs substituted."""
    lines: list[str] = []
    pending = ""
    for raw in path.read_text().splitlines():
        if raw.lstrip().startswith("#") or not raw.strip():
            continue
        pending += raw.rstrip()
        if pending.endswith("\\"):
            pending = pending[:-1] + " "
            continue
        lines.append(pending.strip())
        pending = ""
    args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in lines:
        keyword, _, rest = line.partition(" ")
        keyword, rest = keyword.upper(), rest.strip()
        if keyword == "ARG" and not stages:
            name, _, default = rest.partition("=")
            args[name] = default
        elif keyword == "FROM":
            words = rest.split()
            image = re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: args[m.group(1) or m.group(2)], words[0])
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            stages.append(Stage(image=image, name=name, body=[]))
        else:
            stages[-1].body.append(Instruction(keyword, rest))
    return stages


def copy_sources(stage: Stage) -> list[str]:
    """Sources of the COPY instructions that read the build context (not another stage)."""
    sources = []
    for args in stage.all("COPY"):
        words = shlex.split(args)
        if any(w.startswith("--from") for w in words):
            continue
        sources += [w for w in words if not w.startswith("--")][:-1]
    return sources


def env_of(stage: Stage) -> dict[str, str]:
    env: dict[str, str] = {}
    for args in stage.all("ENV"):
        for word in shlex.split(args):
            key, _, value = word.partition("=")
            env[key] = value
    return env


@pytest.fixture(params=sorted(DOCKERFILES))
def image(request: pytest.FixtureRequest) -> list[Stage]:
    return parse_dockerfile(DOCKERFILES[request.param])


def test_cpu_image_is_python_slim_and_installs_no_torch() -> None:
    stages = parse_dockerfile(DOCKERFILES["cpu"])
    assert {s.image for s in stages} == {"python:3.11-slim"}
    runs = " ".join(a for s in stages for a in s.all("RUN"))
    assert "pip install ." in runs
    assert "torch" not in runs, "the CPU image must stay small: ONNX Runtime, no torch"


def test_cuda_image_is_an_nvidia_cuda_runtime_with_the_torch_extra() -> None:
    stages = parse_dockerfile(DOCKERFILES["cuda"])
    for stage in stages:
        assert re.fullmatch(r"nvidia/cuda:[\d.]+-(cudnn-)?runtime-ubuntu[\d.]+", stage.image), stage.image
    runs = " ".join(a for s in stages for a in s.all("RUN"))
    assert 'pip install ".[torch]"' in runs


def test_image_runs_maskwatch_as_a_non_root_user(image: list[Stage]) -> None:
    final = image[-1]
    users = final.all("USER")
    assert users, "the final stage sets no USER: the container would run as root"
    assert users[-1] not in {"0", "root"} and not users[-1].startswith("0:")
    assert json.loads(final.all("ENTRYPOINT")[-1]) == ["maskwatch"]


def test_image_bakes_yunet_where_the_settings_look(image: list[Stage]) -> None:
    """`maskwatch models fetch` writes YuNet at build time into the folder MASKWATCH_MODEL_DIR names at run time."""
    build, final = image[0], image[-1]
    fetch = next((r for r in build.all("RUN") if "maskwatch models fetch" in r), None)
    assert fetch is not None, "no `maskwatch models fetch` at build time: YuNet would be downloaded by every container"
    fetched_into = re.search(r"MASKWATCH_MODEL_DIR=(\S+)", fetch)
    assert fetched_into, fetch
    model_dir = env_of(final)["MASKWATCH_MODEL_DIR"]
    assert model_dir == fetched_into.group(1)
    copied = [shlex.split(a) for a in final.all("COPY") if a.startswith(f"--from={build.name}")]
    assert any(model_dir.startswith(words[-1]) for words in copied), \
        f"the final stage does not copy {model_dir} from the build stage"


def test_image_copies_everything_pip_install_needs(image: list[Stage]) -> None:
    sources = copy_sources(image[0])
    packages = [p.rstrip("*") for p in PYPROJECT["tool"]["setuptools"]["packages"]["find"]["include"]]
    wanted = ["pyproject.toml", PYPROJECT["project"]["readme"], *packages]
    missing = [w for w in wanted if w not in sources]
    assert not missing, f"the build stage does not COPY {missing}, which `pip install .` needs"


def test_every_copied_path_exists_and_is_in_the_build_context(image: list[Stage]) -> None:
    rules = dockerignore_rules(ROOT / ".dockerignore")
    for source in copy_sources(image[0]):
        path = ROOT / source
        assert path.exists(), f"COPY {source}: no such file or folder in the repository"
        files = [p for p in path.rglob("*.py") if "__pycache__" not in p.parts] if path.is_dir() else [path]
        assert files, f"COPY {source}: no files to copy"
        left_out = [str(f.relative_to(ROOT)) for f in files if not in_build_context(str(f.relative_to(ROOT)), rules)]
        assert not left_out, f".dockerignore keeps {left_out[:5]} out of the build context, but the image copies them"


def test_dockerignore_keeps_tests_data_and_history_out() -> None:
    rules = dockerignore_rules(ROOT / ".dockerignore")
    for path in (".git/config", "tests/conftest.py", "bench/README.md", "runs/train/best.mwm",
                 "test-artifacts/shot.png", "maskwatch/__pycache__/cli.cpython-311.pyc", "docker-compose.yml"):
        assert not in_build_context(path, rules), f"{path} would be sent to the Docker daemon"
    for path in ("pyproject.toml", "maskwatch/cli/main.py", "maskwatch/models/default.mwm", "dashboard/static/app.js"):
        assert in_build_context(path, rules), f"{path} would be missing from the build context"


def test_the_cpu_install_reads_yaml_camera_files() -> None:
    """The deployments import cameras from a YAML file, so PyYAML must be a base dependency, not a dev one."""
    base = [re.split(r"[<>=!~ \[;]", d)[0].lower() for d in PYPROJECT["project"]["dependencies"]]
    assert "pyyaml" in base, \
        "add pyyaml to [project] dependencies: `maskwatch camera import cameras.yaml` needs it in the images"
