"""deploy/k8s: each overlay renders with `kubectl kustomize`, validates against the Kubernetes
schemas (kubernetes-validate, strict: unknown fields fail) and is wired the way MaskWatch runs:
commands that parse, probes on the ports the processes serve, resources, disruption budgets,
secrets kept in Secrets, and a KEDA ScaledObject on the cameras' lags summed (through Prometheus).
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from maskwatch.cli.camera import load_camera_file
from maskwatch.settings import Settings
from tests.support.deploy import (
    K8S,
    MASKWATCH_IMAGE_NAMES,
    OVERLAYS,
    PROMETHEUS,
    PROMTOOL_INSTALL,
    kustomize,
    maskwatch_args,
    metrics_port,
    need_tool,
    run_tool,
    settings_fields,
)

KUBERNETES_VERSIONS = ("1.29", "1.34")  # an older cluster still in support, and a recent one
# Fields of KEDA's ScaledObject (keda.sh/v1alpha1) and of its prometheus trigger: kubernetes-validate has no CRDs.
SCALEDOBJECT_SPEC = {"scaleTargetRef", "pollingInterval", "cooldownPeriod", "initialCooldownPeriod", "idleReplicaCount",
                     "minReplicaCount", "maxReplicaCount", "fallback", "advanced", "triggers"}
FALLBACK = {"failureThreshold", "replicas", "behavior"}
PROMETHEUS_METADATA = {"serverAddress", "query", "queryParameters", "threshold", "activationThreshold", "namespace",
                       "customHeaders", "ignoreNullValues", "unsafeSsl", "timeout"}


class Rendered:
    """The objects of one rendered overlay, with lookups by kind and name."""

    def __init__(self, objects: list[dict[str, Any]]) -> None:
        self.objects = objects

    def all(self, kind: str) -> list[dict[str, Any]]:
        return [o for o in self.objects if o["kind"] == kind]

    def get(self, kind: str, name: str) -> dict[str, Any]:
        found = [o for o in self.all(kind) if o["metadata"]["name"] == name]
        assert found, f"no {kind} named {name}"
        return found[0]

    def named(self, kind: str, prefix: str) -> dict[str, Any]:
        """A generated object (ConfigMap, Secret), whose name kustomize suffixes with a hash."""
        found = [o for o in self.all(kind) if o["metadata"]["name"].startswith(prefix + "-")]
        assert len(found) == 1, f"expected one {kind} {prefix}-<hash>"
        return found[0]

    def config(self) -> dict[str, str]:
        return self.named("ConfigMap", "maskwatch-config")["data"]

    def maskwatch_containers(self) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
        """(workload, container) for every container running a MaskWatch image."""
        for workload in self.all("Deployment") + self.all("StatefulSet"):
            spec = workload["spec"]["template"]["spec"]
            for container in spec.get("initContainers", []) + spec["containers"]:
                if container["image"].split(":")[0].split("/")[-1] in MASKWATCH_IMAGE_NAMES:
                    yield workload, container


@pytest.fixture(scope="module", params=OVERLAYS)
def overlay(request: pytest.FixtureRequest) -> tuple[str, Rendered]:
    return request.param, Rendered(kustomize(K8S / "overlays" / request.param))


def test_overlay_validates_against_the_kubernetes_schemas(overlay: tuple[str, Rendered]) -> None:
    import kubernetes_validate

    _, rendered = overlay
    kinds = {o["kind"] for o in rendered.objects}
    assert kinds >= {"Namespace", "ConfigMap", "Secret", "Deployment", "StatefulSet", "Service",
                     "PodDisruptionBudget", "ScaledObject"}
    for obj in rendered.objects:
        if obj["apiVersion"].startswith("keda.sh/"):
            continue  # a CRD: checked field by field below
        for version in KUBERNETES_VERSIONS:
            try:
                kubernetes_validate.validate(obj, version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                pytest.fail(f"{obj['kind']} {obj['metadata']['name']} is not valid for Kubernetes {version}: "
                            f"{exc.message}")


def test_deployments_cover_every_process(overlay: tuple[str, Rendered]) -> None:
    _, rendered = overlay
    commands = {maskwatch_args(c["args"]).command for w, c in rendered.maskwatch_containers()
                if w["kind"] == "Deployment"}
    assert commands >= {"producer", "worker", "dashboard", "jobs"}
    assert rendered.get("StatefulSet", "redis")["spec"]["volumeClaimTemplates"], "Redis keeps no data across restarts"


def test_every_maskwatch_container_runs_a_command_that_parses(overlay: tuple[str, Rendered]) -> None:
    _, rendered = overlay
    for _, container in rendered.maskwatch_containers():
        assert "command" not in container, "the image's entrypoint is `maskwatch`; give the subcommand in args"
        maskwatch_args(container["args"])


def test_probes_and_prometheus_annotations_use_the_port_each_process_serves(overlay: tuple[str, Rendered]) -> None:
    _, rendered = overlay
    for workload, container in rendered.maskwatch_containers():
        if container["name"] == "import-cameras":
            continue
        args = maskwatch_args(container["args"])
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        port = metrics_port(args)
        for probe in ("livenessProbe", "readinessProbe"):
            get = container[probe]["httpGet"]
            assert ports.get(get["port"], get["port"]) == port, \
                f"{workload['metadata']['name']}: {probe} on the wrong port"
            # Liveness must not read Redis: a Redis outage would restart every pod into a crash loop.
            assert get["path"] == {"livenessProbe": "/livez", "readinessProbe": "/readyz"}[probe], \
                f"{workload['metadata']['name']}: {probe} reads {get['path']}"
        annotations = workload["spec"]["template"]["metadata"]["annotations"]
        assert annotations["prometheus.io/scrape"] == "true"
        assert int(annotations["prometheus.io/port"]) == port
    dashboard = next(c for w, c in rendered.maskwatch_containers() if w["metadata"]["name"] == "dashboard")
    assert dashboard["readinessProbe"]["httpGet"]["path"] == "/readyz"


def test_every_container_has_requests_and_limits(overlay: tuple[str, Rendered]) -> None:
    name, rendered = overlay
    for workload in rendered.all("Deployment") + rendered.all("StatefulSet"):
        spec = workload["spec"]["template"]["spec"]
        for container in spec.get("initContainers", []) + spec["containers"]:
            for kind in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(container["resources"][kind]), \
                    f"{workload['metadata']['name']}/{container['name']}: no cpu and memory {kind}"
    worker = rendered.get("Deployment", "worker")["spec"]["template"]["spec"]["containers"][0]
    gpus = worker["resources"]["limits"].get("nvidia.com/gpu")
    args = maskwatch_args(worker["args"])
    if name == "gpu":
        assert gpus == 1 and (args.device, args.runtime) == ("cuda", "torch")
        assert worker["image"].endswith(":cuda")
    else:
        assert gpus is None and args.device == "cpu"
        assert worker["image"].endswith(":cpu")


def test_pods_run_as_non_root_without_privileges(overlay: tuple[str, Rendered]) -> None:
    _, rendered = overlay
    for workload in rendered.all("Deployment") + rendered.all("StatefulSet"):
        spec = workload["spec"]["template"]["spec"]
        assert spec["securityContext"]["runAsNonRoot"] is True, workload["metadata"]["name"]
        for container in spec.get("initContainers", []) + spec["containers"]:
            sc = container["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False and sc["capabilities"]["drop"] == ["ALL"], container["name"]


def test_disruption_budgets_select_the_processes_and_never_block_a_drain(overlay: tuple[str, Rendered]) -> None:
    _, rendered = overlay
    covered = set()
    for pdb in rendered.all("PodDisruptionBudget"):
        selector = pdb["spec"]["selector"]["matchLabels"]
        matches = [d for d in rendered.all("Deployment")
                   if selector.items() <= d["spec"]["template"]["metadata"]["labels"].items()]
        assert len(matches) == 1, f"PodDisruptionBudget {pdb['metadata']['name']} selects {len(matches)} Deployments"
        deployment = matches[0]
        covered.add(deployment["metadata"]["name"])
        if "minAvailable" in pdb["spec"]:
            assert pdb["spec"]["minAvailable"] < deployment["spec"]["replicas"], \
                "a node drain could never evict these pods"
    assert covered >= {"producer", "worker", "dashboard"}


def test_settings_come_from_the_configmap_and_are_valid(overlay: tuple[str, Rendered]) -> None:
    _, rendered = overlay
    config = rendered.config()
    unknown = set(config) - settings_fields()
    assert not unknown, f"the ConfigMap sets {unknown}, which no setting reads"
    settings = Settings.from_env(config)
    assert settings.redis_url == "redis://redis:6379/0"
    redis = rendered.get("Service", "redis")
    assert redis["spec"]["ports"][0]["port"] == 6379


def test_secrets_hold_camera_urls_and_tokens(overlay: tuple[str, Rendered], tmp_path: Path) -> None:
    _, rendered = overlay
    config = rendered.config()
    assert not {"MASKWATCH_API_TOKEN", "MASKWATCH_WEBHOOK_URL", "MASKWATCH_WEBHOOK_SECRET"} & set(config)
    tokens = rendered.named("Secret", "maskwatch-secrets")["data"]
    assert set(tokens) == {"MASKWATCH_API_TOKEN", "MASKWATCH_WEBHOOK_URL", "MASKWATCH_WEBHOOK_SECRET"}
    cameras_secret = rendered.named("Secret", "maskwatch-cameras")
    cameras_file = tmp_path / "cameras.yaml"
    cameras_file.write_bytes(base64.b64decode(cameras_secret["data"]["cameras.yaml"]))
    load_camera_file(cameras_file)  # the file the init container imports parses

    producer = rendered.get("Deployment", "producer")["spec"]["template"]["spec"]
    (init,) = producer["initContainers"]
    args = maskwatch_args(init["args"])
    assert (args.command, args.camera_cmd) == ("camera", "import")
    mount = next(m for m in init["volumeMounts"] if args.file.parent == Path(m["mountPath"]))
    volume = next(v for v in producer["volumes"] if v["name"] == mount["name"])
    assert volume["secret"]["secretName"] == cameras_secret["metadata"]["name"]
    tokens_secret = rendered.named("Secret", "maskwatch-secrets")["metadata"]["name"]
    for _, container in rendered.maskwatch_containers():
        for env in container.get("env", []):
            if env["name"] in tokens:
                assert env["valueFrom"]["secretKeyRef"]["name"] == tokens_secret


def _scaled_object(rendered: Rendered) -> dict[str, Any]:
    (scaled,) = rendered.all("ScaledObject")
    assert scaled["apiVersion"] == "keda.sh/v1alpha1"
    unknown = set(scaled["spec"]) - SCALEDOBJECT_SPEC
    assert not unknown, f"unknown ScaledObject fields {unknown}"
    return scaled


def test_keda_scales_the_workers_within_the_cameras_lag(overlay: tuple[str, Rendered]) -> None:
    _, rendered = overlay
    spec = _scaled_object(rendered)["spec"]
    target = spec["scaleTargetRef"]
    assert target.get("kind", "Deployment") == "Deployment"
    worker = rendered.get("Deployment", target["name"])
    assert maskwatch_args(worker["spec"]["template"]["spec"]["containers"][0]["args"]).command == "worker"
    assert "replicas" not in worker["spec"], \
        "KEDA owns the worker count; a replicas field would reset it on every apply"
    assert 1 <= spec["minReplicaCount"] < spec["maxReplicaCount"]
    assert set(spec["fallback"]) <= FALLBACK and spec["fallback"]["failureThreshold"] >= 1
    assert spec["minReplicaCount"] <= spec["fallback"]["replicas"] <= spec["maxReplicaCount"]

    (trigger,) = spec["triggers"]
    assert trigger["type"] == "prometheus"
    meta = trigger["metadata"]
    assert set(meta) <= PROMETHEUS_METADATA, f"unknown prometheus fields {set(meta) - PROMETHEUS_METADATA}"
    # a Prometheus that has lost the dashboard must be an error (then `fallback` holds), not a lag of 0
    assert meta["ignoreNullValues"] == "false"
    threshold = float(meta["threshold"])
    settings = Settings.from_env(rendered.config())
    assert 0 < threshold <= settings.lag_threshold, (
        "producers skip a camera's frames above MASKWATCH_LAG_THRESHOLD, so with as many workers as cameras "
        "the summed lag could never reach threshold x replicas and KEDA could not scale to its maximum")
    assert settings.frames_maxlen >= 4 * settings.lag_threshold
    # KEDA's operator runs in its own namespace: the address must name the Service's namespace.
    assert re.fullmatch(r"https?://[\w-]+\.[\w-]+\.svc(\.cluster\.local)?:\d+", meta["serverAddress"]), \
        meta["serverAddress"]


def test_keda_query_is_the_recorded_total_lag_and_valid_promql(overlay: tuple[str, Rendered], tmp_path: Path) -> None:
    """The query KEDA runs sums the same per-camera lag the alerts watch, and reads 0, not nothing, when idle."""
    need_tool("promtool", PROMTOOL_INSTALL)
    _, rendered = overlay
    query = _scaled_object(rendered)["spec"]["triggers"][0]["metadata"]["query"]
    rules = yaml.safe_load((PROMETHEUS / "rules" / "maskwatch.yml").read_text())
    (total,) = [r["expr"] for g in rules["groups"] for r in g["rules"] if r.get("record") == "maskwatch:frames_lag:sum"]
    assert query.startswith(total), "KEDA and the alerts must read the same total lag"
    dashboard = 'job="maskwatch-dashboard", instance="10.0.0.{}:8000"'
    tests = {"rule_files": [str(PROMETHEUS / "rules" / "maskwatch.yml")], "evaluation_interval": "1m", "tests": [
        {"name": "two cameras, two dashboard replicas: each camera's lag counted once", "interval": "1m",
         "input_series": [
             {"series": f'maskwatch_camera_lag_frames{{camera="lobby", {dashboard.format(2)}}}', "values": "30x5"},
             {"series": f'maskwatch_camera_lag_frames{{camera="lobby", {dashboard.format(3)}}}', "values": "30x5"},
             {"series": f'maskwatch_camera_lag_frames{{camera="gate", {dashboard.format(2)}}}', "values": "12x5"},
             {"series": f'maskwatch_redis_up{{{dashboard.format(2)}}}', "values": "1x5"}],
         "promql_expr_test": [{"expr": query, "eval_time": "2m", "exp_samples": [{"labels": "{}", "value": 42}]}]},
        {"name": "no camera reports a lag: 0, not an error", "interval": "1m",
         "input_series": [{"series": f'maskwatch_redis_up{{{dashboard.format(2)}}}', "values": "1x5"}],
         "promql_expr_test": [{"expr": query, "eval_time": "2m", "exp_samples": [{"labels": "{}", "value": 0}]}]},
        {"name": "the dashboard is not scraped: no value, so KEDA falls back", "interval": "1m",
         "input_series": [{"series": 'up{job="maskwatch-worker", instance="10.0.0.7:9102"}', "values": "1x5"}],
         "promql_expr_test": [{"expr": query, "eval_time": "2m", "exp_samples": []}]},
    ]}
    path = tmp_path / "keda-query.test.yml"
    path.write_text(yaml.safe_dump(tests))
    run_tool("promtool", "test", "rules", path)
