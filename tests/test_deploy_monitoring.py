"""Prometheus and Grafana (deploy/prometheus, deploy/grafana).

`promtool` (Debian's prometheus package) checks the config and the rules and runs the rules' unit
tests; every PromQL query of the Grafana dashboard goes through promtool's parser too; and every
metric the rules and the dashboard use must be one that MaskWatch's code exports.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.deploy import DEPLOY, PROMETHEUS, PROMTOOL_INSTALL, ROOT, load_compose, need_tool, run_tool

GRAFANA = DEPLOY / "grafana"
DASHBOARD_JSON = GRAFANA / "dashboards" / "maskwatch.json"
# prometheus_client's metric classes, and the series names each exposes for a declared name.
_EXPOSED = {
    "Counter": ("_total",), "CounterMetricFamily": ("_total",),
    "Gauge": ("",), "GaugeMetricFamily": ("",),
    "Histogram": ("_bucket", "_sum", "_count"), "HistogramMetricFamily": ("_bucket", "_sum", "_count"),
    "Summary": ("_sum", "_count"), "SummaryMetricFamily": ("_sum", "_count"),
}
_DECLARED = re.compile(r"\b(" + "|".join(_EXPOSED) + r")\(\s*[\"'](maskwatch_\w+)[\"']")
_USED = re.compile(r"(?<![\w:])(maskwatch_\w+)")


def exported_series() -> set[str]:
    """Every series name the MaskWatch processes expose, read from their metric declarations."""
    names = set()
    for package in ("maskwatch", "producer", "worker", "dashboard"):
        for source in (ROOT / package).rglob("*.py"):
            for kind, name in _DECLARED.findall(source.read_text()):
                base = name.removesuffix("_total") if "Counter" in kind else name
                names |= {base + suffix for suffix in _EXPOSED[kind]}
    return names


def dashboard_queries() -> list[str]:
    dashboard = json.loads(DASHBOARD_JSON.read_text())
    return [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]


def rule_expressions() -> list[str]:
    rules = yaml.safe_load((PROMETHEUS / "rules" / "maskwatch.yml").read_text())
    return [r["expr"] for g in rules["groups"] for r in g["rules"]]


def test_prometheus_config_and_rules_pass_promtool() -> None:
    need_tool("promtool", PROMTOOL_INSTALL)
    out = run_tool("promtool", "check", "config", PROMETHEUS / "prometheus.yml")
    assert "rules found" in out, "the config loads no rule file"
    for rules in sorted((PROMETHEUS / "rules").glob("*.yml")):
        run_tool("promtool", "check", "rules", rules)


def test_alert_rules_fire_when_they_should() -> None:
    """promtool's unit tests: each alert fires on made-up series, once per camera, and stays quiet otherwise."""
    need_tool("promtool", PROMTOOL_INSTALL)
    run_tool("promtool", "test", "rules", *sorted((PROMETHEUS / "tests").glob("*.yml")))


def test_the_alerts_the_deployment_promises_exist() -> None:
    rules = yaml.safe_load((PROMETHEUS / "rules" / "maskwatch.yml").read_text())
    alerts = {r["alert"] for g in rules["groups"] for r in g["rules"] if "alert" in r}
    assert alerts >= {"MaskWatchCameraOffline", "MaskWatchComplianceLow", "MaskWatchQueueLagGrowing",
                      "MaskWatchNoLiveWorkers"}


def test_rules_and_dashboard_use_only_metrics_maskwatch_exports() -> None:
    exported = exported_series() | {"up"}
    used = {name for expr in rule_expressions() + dashboard_queries() for name in _USED.findall(expr)}
    missing = used - exported
    assert not missing, f"no MaskWatch process exports {sorted(missing)}; exported: {sorted(exported)}"


def test_every_dashboard_query_is_valid_promql(tmp_path: Path) -> None:
    """Grafana's variables replaced by sample values, each query must parse as PromQL."""
    need_tool("promtool", PROMTOOL_INSTALL)
    samples = {"$__rate_interval": "1m", "$window": "15m", "$camera": "lobby|door"}
    queries = dashboard_queries()
    rules = []
    for i, expr in enumerate(queries):
        for var, value in samples.items():
            expr = expr.replace(var, value)
        assert "$" not in expr, f"unknown Grafana variable in {expr}"
        rules.append({"record": f"grafana:query{i}", "expr": expr})
    check = tmp_path / "grafana-queries.yml"
    check.write_text(yaml.safe_dump({"groups": [{"name": "grafana", "rules": rules}]}))
    assert f"{len(queries)} rules found" in run_tool("promtool", "check", "rules", check)


def test_dashboard_shows_compliance_throughput_and_latency() -> None:
    dashboard = json.loads(DASHBOARD_JSON.read_text())
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    by_query = " ".join(t["expr"] for p in panels for t in p["targets"])
    assert 'label="with_mask"' in by_query and "by (camera)" in by_query  # compliance per camera
    assert "maskwatch_frames_total" in by_query and "maskwatch_worker_frames_total" in by_query  # throughput
    assert "maskwatch_worker_capture_to_result_seconds_bucket" in by_query  # latency
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    for panel in panels:
        assert panel["datasource"]["uid"] == "${datasource}", f"panel {panel['title']!r} is tied to one data source"
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids)), "panel ids repeat"


def test_grafana_provisioning_matches_the_compose_services() -> None:
    compose = load_compose()["services"]
    datasources = yaml.safe_load((GRAFANA / "provisioning/datasources/prometheus.yml").read_text())["datasources"]
    (prometheus,) = [d for d in datasources if d["type"] == "prometheus"]
    host, port = re.fullmatch(r"http://([\w-]+):(\d+)", prometheus["url"]).groups()  # type: ignore[union-attr]
    assert host in compose and any(p.endswith(f":{port}") for p in compose[host]["ports"])
    providers = yaml.safe_load((GRAFANA / "provisioning/dashboards/maskwatch.yml").read_text())["providers"]
    mounts: dict[str, Any] = {v.split(":")[1]: v.split(":")[0] for v in compose["grafana"]["volumes"]}
    for provider in providers:
        source = mounts[provider["options"]["path"]]
        assert (ROOT / source / DASHBOARD_JSON.name).exists()


@pytest.mark.parametrize("path", sorted(str(p.relative_to(ROOT)) for p in GRAFANA.rglob("*.json")))
def test_grafana_json_loads(path: str) -> None:
    assert json.loads((ROOT / path).read_text())["uid"]
