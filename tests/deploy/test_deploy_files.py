"""The deploy files users copy: checked by the tools that will read them."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from monitor.model import Status
from monitor.rules.distributed import LEAN
from monitor.settings import load
from tests.conftest import REPO
from tests.http.conftest import need_binary

DEPLOY = REPO / "deploy"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "kpi-monitor.json"
RULES = DEPLOY / "prometheus" / "rules" / "kpi-monitor.rules.yml"
RULE_TESTS = DEPLOY / "prometheus" / "tests" / "kpi-monitor.test.yml"
METRICS_DOC = REPO / "docs" / "metrics.md"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, timeout=60, check=False)


@pytest.mark.parametrize("config", [
    pytest.param("prometheus.yml", id="host"),
    pytest.param("prometheus.compose.yml", id="compose"),
])
def test_prometheus_configs_pass_promtool_check_config(config: str) -> None:
    result = run(need_binary("promtool"), "check", "config", str(DEPLOY / "prometheus" / config))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 1 rule files found" in result.stdout


def test_self_alerts_pass_promtool_check_rules() -> None:
    result = run(need_binary("promtool"), "check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr


def test_self_alerts_pass_their_promtool_unit_tests() -> None:
    result = run(need_binary("promtool"), "test", "rules", str(RULE_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_self_alert_is_unit_tested_firing() -> None:
    rules = yaml.safe_load(RULES.read_text())
    names = {r["alert"] for g in rules["groups"] for r in g["rules"]}
    tests = yaml.safe_load(RULE_TESTS.read_text())
    fired = {case["alertname"] for t in tests["tests"] for case in t["alert_rule_test"]
             if case["exp_alerts"]}
    assert names == fired
    assert {"KpiMonitorDown", "KpiMonitorSourceFailing", "KpiMonitorSourceStale",
            "KpiMonitorRuleReloadFailed", "KpiMonitorConfigReloadFailed",
            "KpiMonitorNotificationsFailing"} <= names


def test_alertmanager_config_passes_amtool() -> None:
    amtool = need_binary("amtool")
    result = run(amtool, "check-config", str(DEPLOY / "alertmanager" / "alertmanager.yml"))
    assert result.returncode == 0, result.stdout + result.stderr


# --- Grafana ---------------------------------------------------------------------------


def dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return data


def exprs(board: dict[str, Any]) -> list[str]:
    return [t["expr"] for p in board["panels"] for t in p.get("targets", [])]


def test_the_dashboard_is_well_formed() -> None:
    board = dashboard()
    assert board["uid"] == "kpi-monitor"
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))
    for panel in board["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["w"] > 0 and grid["x"] + grid["w"] <= 24, panel["title"]
        if panel["type"] != "row":
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
            assert panel["targets"], panel["title"]
            refs = [t["refId"] for t in panel["targets"]]
            assert len(refs) == len(set(refs)), panel["title"]
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["query"] == "prometheus"
    assert "monitor_indicator_status" in variables["indicator"]["definition"]


def test_the_dashboard_has_the_four_views_the_issue_asks_for() -> None:
    panels = {p["title"]: p for p in dashboard()["panels"]}
    scorecard = panels["Scorecard: latest value, target and RAG status"]
    assert scorecard["type"] == "table"
    assert [t["expr"].split("{")[0] for t in scorecard["targets"]] == [
        "monitor_indicator_status", "monitor_indicator_value", "monitor_indicator_target"]
    trends = panels["Values and targets"]
    assert trends["type"] == "timeseries"
    assert "monitor_indicator_target" in trends["targets"][1]["expr"]
    assert trends["fieldConfig"]["overrides"][0]["properties"][0]["value"]["fill"] == "dash"
    assert panels["Active alerts by rule"]["targets"][0]["expr"] == "monitor_alerts > 0"
    health = {p["title"] for p in dashboard()["panels"]}
    assert {"Up and ready", "Source polls by outcome", "Notifications by outcome"} <= health


def test_the_rag_colours_map_every_status_code() -> None:
    panels = {p["title"]: p for p in dashboard()["panels"]}
    override = panels["Scorecard: latest value, target and RAG status"]["fieldConfig"][
        "overrides"][0]
    assert override["matcher"] == {"id": "byName", "options": "Status"}
    mapping = override["properties"][0]["value"][0]["options"]
    expected = {str(Status.RED.code): ("Red", "red"), str(Status.AMBER.code): ("Amber", "orange"),
                str(Status.GREEN.code): ("Green", "green"),
                str(Status.BASELINE.code): ("Baseline", "#5f6b75"),
                str(Status.NOT_RATED.code): ("Not rated", "#8e8e8e"),
                str(Status.NO_DATA.code): ("No data", "#b1b4b6")}
    assert {k: (v["text"], v["color"]) for k, v in mapping.items()} == expected
    timeline = panels["RAG status history"]["fieldConfig"]["defaults"]["mappings"]
    assert timeline == override["properties"][0]["value"]


def test_every_dashboard_query_is_valid_promql(tmp_path: Path) -> None:
    promtool = need_binary("promtool")
    rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:query_{i}",
         "expr": e.replace("$indicator", ".*").replace("$__rate_interval", "5m")}
        for i, e in enumerate(exprs(dashboard()))]}]}
    path = tmp_path / "dashboard.rules.yml"
    path.write_text(yaml.safe_dump(rules))
    result = run(promtool, "check", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_metric_the_deploy_files_use_is_documented() -> None:
    documented = set(re.findall(r"`(monitor_[a-z_]+)", METRICS_DOC.read_text()))
    used = set(re.findall(r"\bmonitor_[a-z_]+", " ".join(exprs(dashboard()))))
    used |= set(re.findall(r"\bmonitor_[a-z_]+\b(?=[{ )\[]|$)", RULES.read_text()))
    assert used - documented == set()


def test_grafana_provisioning_matches_the_dashboard_and_compose() -> None:
    sources = yaml.safe_load((DEPLOY / "grafana/provisioning/datasources/prometheus.yaml")
                             .read_text())["datasources"]
    assert [(s["type"], s["uid"]) for s in sources] == [("prometheus", "prometheus")]
    providers = yaml.safe_load((DEPLOY / "grafana/provisioning/dashboards/kpi-monitor.yaml")
                               .read_text())["providers"]
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    mounts = compose["services"]["grafana"]["volumes"]
    assert f"./grafana/dashboards:{providers[0]['options']['path']}:ro" in mounts


# --- compose, Docker, systemd ----------------------------------------------------------


def test_compose_runs_the_daemon_with_prometheus_alertmanager_and_grafana() -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services = compose["services"]
    assert set(services) == {"kpi-monitor", "prometheus", "alertmanager", "grafana"}
    build = services["kpi-monitor"]["build"]
    assert (DEPLOY / build["context"] / build["dockerfile"]).is_file()
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (DEPLOY / source).exists(), f"{name}: {source} is missing"
        for port in service.get("ports", []):
            assert port.startswith("127.0.0.1:"), f"{name} publishes {port} beyond loopback"
    prometheus = yaml.safe_load((DEPLOY / "prometheus/prometheus.compose.yml").read_text())
    job = next(j for j in prometheus["scrape_configs"] if j["job_name"] == "kpi-monitor")
    assert job["static_configs"][0]["targets"] == ["kpi-monitor:9108"]


def test_the_image_runs_unprivileged_with_a_health_check() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    user = re.findall(r"^USER (\S+)", text, re.MULTILINE)
    assert user and not user[-1].startswith(("root", "0"))
    assert re.search(r"^HEALTHCHECK .*\n?.*/-/healthy", text, re.MULTILINE)
    assert "MONITOR_SERVER__LISTEN=0.0.0.0:9108" in text
    assert "EXPOSE 9108" in text


def unit_options(text: str) -> dict[str, list[str]]:
    options: dict[str, list[str]] = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith(("#", "[")) and "=" in line:
            key, _, value = line.partition("=")
            options.setdefault(key, []).append(value)
    return options


UNIT = DEPLOY / "systemd" / "kpi-monitor.service"


@pytest.mark.parametrize(("key", "value"), [
    pytest.param("User", "kpi-monitor", id="dedicated-user"),
    pytest.param("NoNewPrivileges", "yes", id="no-new-privileges"),
    pytest.param("ProtectSystem", "strict", id="read-only-system"),
    pytest.param("ProtectHome", "yes", id="no-home"),
    pytest.param("PrivateTmp", "yes", id="private-tmp"),
    pytest.param("ReadWritePaths", "/var/lib/kpi-monitor", id="state-writable"),
    pytest.param("CapabilityBoundingSet", "", id="no-capabilities"),
    pytest.param("ExecReload", "/bin/kill -HUP $MAINPID", id="reload-on-sighup"),
    pytest.param("Restart", "on-failure", id="restart"),
])
def test_the_systemd_unit_is_hardened(key: str, value: str) -> None:
    assert value in unit_options(UNIT.read_text())[key]


def test_systemd_accepts_the_unit(tmp_path: Path) -> None:
    analyze = need_binary("systemd-analyze")
    copy = tmp_path / "kpi-monitor.service"
    copy.write_text(UNIT.read_text().replace("/opt/kpi-monitor/venv/bin/monitor", "/bin/true"))
    result = run(analyze, "verify", str(copy))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stderr.strip() == ""


def test_the_status_tiles_count_what_the_scorecard_shows() -> None:
    panels = {p["title"]: p for p in dashboard()["panels"]}
    for code, word in ((3, "Red"), (2, "Amber"), (1, "Green")):
        expr = panels[f"{word} on the scorecard"]["targets"][0]["expr"]
        assert expr == (f'count(monitor_scorecard_status{{indicator=~"$indicator"}} == {code})'
                        " or vector(0)")
    assert not any("monitor_indicator_status" in e and "count(" in e
                   for e in exprs(dashboard()))


def test_the_link_to_the_daemon_comes_from_server_external_url() -> None:
    board = dashboard()
    variables = {v["name"]: v for v in board["templating"]["list"]}
    daemon = variables["daemon_url"]
    assert daemon["query"]["query"] == "label_values(monitor_server_info, external_url)"
    assert [link["url"] for link in board["links"]] == ["${daemon_url}/scorecard"]
    assert "127.0.0.1:9108" not in DASHBOARD.read_text(encoding="utf-8")


def test_the_dashboard_variable_queries_are_valid_promql(tmp_path: Path) -> None:
    promtool = need_binary("promtool")
    queries = [v["query"]["query"] for v in dashboard()["templating"]["list"]
               if isinstance(v.get("query"), dict)]
    metrics = [re.fullmatch(r"label_values\((\w+), \w+\)", q) for q in queries]
    assert all(metrics), queries
    rules = {"groups": [{"name": "variables", "rules": [
        {"record": f"dashboard:variable_{i}", "expr": m.group(1)}
        for i, m in enumerate(metrics) if m]}]}
    path = tmp_path / "variables.rules.yml"
    path.write_text(yaml.safe_dump(rules))
    result = run(promtool, "check", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_dask_compose_runs_a_scheduler_and_two_workers_beside_the_daemon() -> None:
    compose = yaml.safe_load((DEPLOY / "compose-dask.yaml").read_text())
    services = compose["services"]
    assert set(services) == {"postgres", "dask-scheduler", "dask-worker", "kpi-monitor"}
    assert services["dask-worker"]["deploy"]["replicas"] == 2
    build = services["kpi-monitor"]["build"]
    assert (DEPLOY / build["context"] / build["dockerfile"]).is_file()
    scheduler = services["dask-scheduler"]["entrypoint"]
    port = scheduler[scheduler.index("--port") + 1]
    worker = services["dask-worker"]["entrypoint"]
    assert f"tcp://dask-scheduler:{port}" in worker
    env = services["kpi-monitor"]["environment"]
    # The daemon's own settings accept what compose gives it.
    settings = load(None, environ={
        "MONITOR_STORE__URL": env["MONITOR_STORE__URL"].replace("${POSTGRES_PASSWORD:-monitor}",
                                                                "pw"),
        "MONITOR_ENGINE__SCHEDULER": env["MONITOR_ENGINE__SCHEDULER"],
        "MONITOR_ENGINE__PARTITIONS": env["MONITOR_ENGINE__PARTITIONS"]})
    assert settings.engine.scheduler == f"tcp://dask-scheduler:{port}"
    assert settings.engine.partitions == 2 and settings.engine.partitioned
    assert settings.store.url.get_secret_value().startswith("postgresql://")
    for name, service in services.items():
        for published in service.get("ports", []):
            assert published.startswith("127.0.0.1:"), f"{name} publishes {published}"
    # The workers' environment, read as Dask reads it: its own, less the trim threshold
    # (the local cluster's LEAN settings), so glibc reuses the memory a cycle freed.
    import dask

    worker_env = services["dask-worker"]["environment"]
    config = dask.config.collect_env({k: str(v) for k, v in worker_env.items()})
    spawn = dask.config.get("distributed.nanny.pre-spawn-environ", config=config)
    assert spawn == LEAN["distributed.nanny.pre-spawn-environ"]
    assert "MALLOC_TRIM_THRESHOLD_" not in spawn and spawn["OMP_NUM_THREADS"] == 1
    # The image the workers run has Dask's command (distributed is a dependency).
    assert "dask" in (DEPLOY.parent / "pyproject.toml").read_text()
