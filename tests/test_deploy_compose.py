"""docker-compose.yml: valid under the Compose Specification, and wired the way MaskWatch runs.

No Docker engine runs here: the file is validated against the Compose Specification's JSON schema
(tests/data/compose-spec, vendored) after the `${VAR:-default}` interpolation Compose does, and
every MaskWatch command in it is parsed by the CLI's own parser.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from maskwatch.cli.camera import load_camera_file
from tests.support.deploy import COMPOSE_FILE, ROOT, load_compose, maskwatch_args, metrics_port, settings_fields

SCHEMA = json.loads((ROOT / "tests/data/compose-spec/compose-spec.json").read_text())
LONG_RUNNING = ("producer", "worker", "worker-gpu", "dashboard", "jobs", "analysis")  # with probes and /metrics


def interpolate(value: Any) -> Any:
    """Compose's variable substitution with every variable unset: `${VAR:-default}` gives default."""
    if isinstance(value, dict):
        return {k: interpolate(v) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v) for v in value]
    if isinstance(value, str):
        return re.sub(r"\$\{\w+(?::?-([^}]*))?\}", lambda m: m.group(1) or "", value).replace("$$", "$")
    return value


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return interpolate(load_compose())


def maskwatch_services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Services that run the MaskWatch images (built from deploy/docker)."""
    return {name: s for name, s in compose["services"].items()
            if "build" in s and s["build"]["dockerfile"].startswith("deploy/docker/")}


def test_compose_file_is_valid_under_the_compose_specification(compose: dict[str, Any]) -> None:
    errors = sorted(jsonschema.Draft7Validator(SCHEMA).iter_errors(compose), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{'.'.join(map(str, e.path))}: {e.message}" for e in errors)


def test_the_schema_check_catches_a_misspelt_key(compose: dict[str, Any]) -> None:
    broken = copy.deepcopy(compose)
    broken["services"]["worker"]["comand"] = broken["services"]["worker"].pop("command")
    assert not jsonschema.Draft7Validator(SCHEMA).is_valid(broken)


def test_compose_has_every_service_of_the_system(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) >= {"redis", "cameras", "producer", "worker", "worker-gpu", "dashboard", "jobs",
                                        "prometheus", "grafana"}


def test_redis_keeps_its_data_on_a_volume_and_reports_health(compose: dict[str, Any]) -> None:
    redis = compose["services"]["redis"]
    assert any(v.split(":")[0] in compose["volumes"] and v.split(":")[1] == "/data" for v in redis["volumes"])
    assert redis["healthcheck"]["test"][:2] == ["CMD", "redis-cli"]
    for name, service in maskwatch_services(compose).items():
        assert service["depends_on"]["redis"]["condition"] == "service_healthy", name
        assert service["environment"]["MASKWATCH_REDIS_URL"] == "redis://redis:6379/0", name


def test_every_maskwatch_command_parses(compose: dict[str, Any]) -> None:
    services = maskwatch_services(compose)
    assert set(services) >= {"cameras", *LONG_RUNNING}
    for service in services.values():
        maskwatch_args(service["command"])


def test_maskwatch_environment_names_real_settings(compose: dict[str, Any]) -> None:
    """A misspelt MASKWATCH_* variable would be ignored silently."""
    known = settings_fields()
    for name, service in maskwatch_services(compose).items():
        unknown = {k for k in service["environment"] if k.startswith("MASKWATCH_")} - known
        assert not unknown, f"service {name} sets {unknown}, which no setting reads"


def test_workers_scale_with_docker_compose_up_scale(compose: dict[str, Any]) -> None:
    """`--scale worker=N` needs no fixed container name and no host port, and one consumer group spreads the frames."""
    for name in ("worker", "worker-gpu"):
        service = compose["services"][name]
        assert "container_name" not in service and "ports" not in service, name
        assert maskwatch_args(service["command"]).command == "worker"


def test_gpu_worker_reserves_an_nvidia_gpu_and_runs_torch_on_cuda(compose: dict[str, Any]) -> None:
    gpu = compose["services"]["worker-gpu"]
    assert gpu["profiles"] == ["gpu"], "GPU workers start only with --profile gpu, so CPU-only hosts run as they are"
    assert gpu["build"]["dockerfile"] == "deploy/docker/Dockerfile.cuda"
    (device,) = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and "gpu" in device["capabilities"]
    args = maskwatch_args(gpu["command"])
    assert (args.device, args.runtime) == ("cuda", "torch")


def test_healthchecks_and_prometheus_use_each_process_metrics_port(compose: dict[str, Any]) -> None:
    """Every long-running process is health-checked and scraped on the port its command serves."""
    import yaml

    prometheus = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())
    scraped = {(name, sd["port"]) for job in prometheus["scrape_configs"] for sd in job.get("dns_sd_configs", [])
               for name in sd["names"]}
    for name in LONG_RUNNING:
        service = compose["services"][name]
        port = metrics_port(maskwatch_args(service["command"]))
        probe = " ".join(service["healthcheck"]["test"])
        assert re.search(rf"http://127\.0\.0\.1:{port}/(healthz|readyz)", probe), \
            f"{name}: healthcheck does not probe port {port}"
        assert (name, port) in scraped, f"Prometheus does not scrape service {name} on port {port}"


def test_cameras_come_from_a_secret_file_imported_before_the_producer_starts(compose: dict[str, Any]) -> None:
    cameras = compose["services"]["cameras"]
    (secret,) = cameras["secrets"]
    args = maskwatch_args(cameras["command"])
    assert (args.command, args.camera_cmd) == ("camera", "import")
    assert args.file == Path("/run/secrets") / secret["target"]
    source = ROOT / compose["secrets"][secret["source"]]["file"]
    assert load_camera_file(source), f"{source} holds no camera"
    assert compose["services"]["producer"]["depends_on"]["cameras"]["condition"] == "service_completed_successfully"


def test_bind_mounted_config_exists(compose: dict[str, Any]) -> None:
    """Prometheus' config and rules and Grafana's provisioning are mounted from the repository."""
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (COMPOSE_FILE.parent / source).exists(), f"service {name} mounts {source}, which does not exist"
    grafana_mounts = {v.split(":")[1]: v.split(":")[0] for v in compose["services"]["grafana"]["volumes"]}
    assert grafana_mounts["/etc/grafana/provisioning"] == "./deploy/grafana/provisioning"
