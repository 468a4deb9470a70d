"""The deploy instructions, followed as literally as this machine allows.

Every shell command in the README's Deploy section and
docs/deploy.md is checked: `maskwatch ...` (also inside `docker compose exec|run`) parses with
the CLI; `docker build` names a Dockerfile that exists; `docker compose` names services and
profiles the compose file has; `kubectl` names kustomizations, namespaces, Services and objects
that the overlays render; `promtool` and `kubectl kustomize` run for real. A command this test
does not know fails it, so a new instruction gets a check.
"""

from __future__ import annotations

import base64
import functools
import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.deploy import (
    COMPOSE_FILE,
    K8S,
    PROMTOOL_INSTALL,
    ROOT,
    kustomize,
    load_compose,
    maskwatch_args,
    need_tool,
    run_tool,
    settings_fields,
)

DOCS = ("README.md", "docs/deploy.md")
SHELL_FENCES = {"sh", "bash", "shell", "console"}
# Options of docker compose and kubectl that take a value, so the value is not read as a name.
COMPOSE_VALUE_OPTIONS = {"-f", "--file", "-p", "--project-name", "--env-file", "--profile", "--scale", "-u", "--user",
                         "-e", "--env", "-w", "--workdir", "--index", "--timeout", "-t"}


def deploy_text(doc: str) -> str:
    text = (ROOT / doc).read_text() if (ROOT / doc).exists() else ""
    if doc != "README.md":
        return text
    section = re.search(r"^## Deploy\b.*?(?=^## |\Z)", text, flags=re.M | re.S)
    assert section, "README.md has no '## Deploy' section"
    return section.group(0)


def fenced_blocks(text: str, fences: set[str]) -> list[str]:
    blocks = re.finditer(r"^\s*```(\w+)\n(.*?)^\s*```", text, flags=re.M | re.S)
    return [m.group(2) for m in blocks if m.group(1) in fences]


def shell_commands(text: str) -> list[list[str]]:
    commands = []
    for block in fenced_blocks(text, SHELL_FENCES):
        for line in block.replace("\\\n", " ").splitlines():
            words = shlex.split(line.strip().removeprefix("$ "), comments=True)
            if words:
                commands.append(words)
    return commands


def created_overlays(text: str) -> dict[str, str]:
    """Kustomizations the document tells the reader to write: a YAML block opening with `# DIR/kustomization.yaml`."""
    found = {}
    for block in fenced_blocks(text, {"yaml"}):
        first = block.lstrip().splitlines()[0]
        m = re.fullmatch(r"#\s*([\w.-]+)/kustomization\.yaml", first.strip())
        if m:
            found[m.group(1)] = block
    return found


@functools.cache
def rendered_base() -> list[dict[str, Any]]:
    return kustomize(K8S / "base")


class Follower:
    """Checks one document's commands against the repository."""

    def __init__(self, text: str) -> None:
        self.compose = load_compose()
        self.base = rendered_base()
        self.overlays = created_overlays(text)

    def check(self, words: list[str]) -> None:
        program = words[0]
        if program == "maskwatch":
            maskwatch_args(words[1:])
        elif words[:2] == ["docker", "build"]:
            self.docker_build(words[2:])
        elif words[:2] == ["docker", "compose"]:
            self.docker_compose(words[2:])
        elif program == "kubectl":
            self.kubectl(words[1:])
        elif program == "promtool":
            need_tool("promtool", PROMTOOL_INSTALL)
            run_tool(*words)
        elif program == "cp":
            assert (ROOT / words[1]).exists(), f"`{shlex.join(words)}`: {words[1]} does not exist"
        elif program == "export":
            for assignment in words[1:]:
                name = assignment.split("=", 1)[0]
                assert "${" + name in COMPOSE_FILE.read_text() or name in settings_fields(), \
                    f"`export {name}`: neither docker-compose.yml nor the settings read {name}"
        else:
            pytest.fail(f"`{shlex.join(words)}`: no check for {program!r} commands; add one to {__name__}")

    def docker_build(self, args: list[str]) -> None:
        dockerfile = args[args.index("-f") + 1]
        assert (ROOT / dockerfile).is_file(), f"docker build -f {dockerfile}: no such Dockerfile"
        assert args[-1] == ".", "the build context is the repository's root"

    def docker_compose(self, args: list[str]) -> None:
        services = self.compose["services"]
        profiles, names, scaled, rest = set(), [], [], list(args)
        while rest and rest[0].startswith("-"):  # options before the subcommand
            option = rest.pop(0)
            value = rest.pop(0) if option in COMPOSE_VALUE_OPTIONS else None
            if option == "--profile":
                profiles.add(value)
        subcommand, rest = rest[0], rest[1:]
        while rest:
            word = rest.pop(0)
            if word == "--scale":
                scaled.append(rest.pop(0).split("=")[0])
            elif word in COMPOSE_VALUE_OPTIONS:
                rest.pop(0)
            elif not word.startswith("-"):
                names.append(word)
                if subcommand in {"exec", "run"}:
                    break  # the rest is the command run in the container
        for name in names + scaled:
            assert name in services, f"docker compose {subcommand}: no service {name!r}"
        for name in scaled:  # a service named outright enables its profile; --scale does not
            missing = set(services[name].get("profiles", [])) - profiles
            assert not missing, f"--scale {name}=N without --profile {sorted(missing)[0]}: the service would not start"
        if subcommand == "exec":
            assert rest[0] == "maskwatch", f"docker compose exec {names[0]} {rest[0]}: expected a maskwatch command"
            maskwatch_args(rest[1:])
        elif subcommand == "run":
            maskwatch_args(rest)  # the image's entrypoint is maskwatch

    def kubectl(self, args: list[str]) -> None:
        namespaces = {o["metadata"]["name"] for o in self.base if o["kind"] == "Namespace"}
        rest = list(args)
        if rest[0] in {"-n", "--namespace"}:
            assert rest[1] in namespaces, f"kubectl -n {rest[1]}: the manifests deploy into {namespaces}"
            rest = rest[2:]
        verb = rest[0]
        if verb == "kustomize":
            run_tool("kubectl", *rest)
        elif "-k" in rest:
            path = rest[rest.index("-k") + 1]
            assert path in self.overlays or (ROOT / path / "kustomization.yaml").is_file(), \
                f"kubectl {verb} -k {path}: no kustomization there"
        elif verb == "port-forward":
            kind, name = rest[1].split("/")
            service = self.find(kind, name)
            port = int(rest[2].split(":")[-1])
            assert port in {p["port"] for p in service["spec"]["ports"]}, f"Service {name} has no port {port}"
        elif verb == "get":
            self.find(rest[1], rest[2])
        else:
            pytest.fail(f"`kubectl {shlex.join(args)}`: no check for kubectl {verb}; add one to {__name__}")

    def find(self, kind: str, name: str) -> dict[str, Any]:
        kind = {"svc": "service", "deploy": "deployment"}.get(kind.lower(), kind.lower())
        found = [o for o in self.base if o["kind"].lower() == kind and o["metadata"]["name"] == name]
        assert found, f"the manifests have no {kind} {name}"
        return found[0]


@pytest.mark.parametrize("doc", DOCS)
def test_every_deploy_command_in_the_docs_works(doc: str) -> None:
    text = deploy_text(doc)
    assert text, f"{doc} is missing"
    commands = shell_commands(text)
    assert commands, f"{doc} shows no deploy command"
    follower = Follower(text)
    for words in commands:
        follower.check(words)


def test_the_overlay_of_your_own_in_docs_deploy_renders_with_your_cameras_and_tokens(tmp_path: Path) -> None:
    """docs/deploy.md's `my-site` overlay, written out as it stands, beside a checkout of deploy/."""
    (name, block), = created_overlays(deploy_text("docs/deploy.md")).items()
    site = tmp_path / name
    site.mkdir()
    (tmp_path / "deploy").symlink_to(ROOT / "deploy")
    (site / "kustomization.yaml").write_text(block)
    (site / "cameras.yaml").write_text((ROOT / "deploy/cameras.example.yaml").read_text())
    (site / "secrets.env").write_text("MASKWATCH_API_TOKEN=t0ken\nMASKWATCH_WEBHOOK_URL=\nMASKWATCH_WEBHOOK_SECRET=\n")
    objects = kustomize(site)
    wanted = yaml.safe_load(block)["images"][0]
    images = {c["image"] for o in objects if o["kind"] == "Deployment"
              for c in o["spec"]["template"]["spec"]["containers"]}
    assert images == {f"{wanted['newName']}:{wanted['newTag']}"}
    secrets = {o["metadata"]["name"].rsplit("-", 1)[0]: o for o in objects if o["kind"] == "Secret"}
    assert base64.b64decode(secrets["maskwatch-secrets"]["data"]["MASKWATCH_API_TOKEN"]) == b"t0ken"
    cameras = base64.b64decode(secrets["maskwatch-cameras"]["data"]["cameras.yaml"]).decode()
    assert "CHANGE-ME@192.0.2.10" in cameras
    producer = next(o for o in objects if o["kind"] == "Deployment" and o["metadata"]["name"] == "producer")
    volumes = {v["secret"]["secretName"] for v in producer["spec"]["template"]["spec"]["volumes"] if "secret" in v}
    assert secrets["maskwatch-cameras"]["metadata"]["name"] in volumes
