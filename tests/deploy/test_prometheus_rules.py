"""The alerting rules: valid for Prometheus (`promtool check rules`), and each alert fires on what it is for and
stays quiet on a near miss (`promtool test rules`, deploy/prometheus/rules_test.yaml)."""

from __future__ import annotations

from pathlib import Path

import yaml
from deploy.tools import CI_VALUES, RULES, RULES_TEST, one, render, run, tool

ALERTS = {
    "GatewayHighErrorRate",
    "GatewayUpstream429s",
    "GatewayHighFallbackRate",
    "GatewayCircuitOpen",
    "GatewayLimiterDegraded",
    "GatewayOverheadHigh",
    "GatewayCostBurnHigh",
    "GatewayBudgetNearlySpent",
    "GatewayThrottlingClients",
    "GatewayPolicyReloadRejected",
    "GatewayUpstreamPoolExhausted",
    "GatewayAccessLogDropping",
}


def test_promtool_checks_the_rules() -> None:
    out = run(tool("promtool"), "check", "rules", str(RULES))
    assert f"SUCCESS: {len(ALERTS)} rules found" in out


def test_promtool_unit_tests_pass_and_cover_every_alert() -> None:
    out = run(tool("promtool"), "test", "rules", RULES_TEST.name, cwd=RULES_TEST.parent)
    assert "SUCCESS" in out
    alerts = {rule["alert"] for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]}
    assert alerts == ALERTS
    tested = {
        case["alertname"]
        for test in yaml.safe_load(RULES_TEST.read_text())["tests"]
        for case in test["alert_rule_test"]
    }
    assert tested == ALERTS
    for group in yaml.safe_load(RULES.read_text())["groups"]:
        for rule in group["rules"]:
            assert rule["labels"]["severity"] in {"critical", "warning", "info"}
            assert rule["annotations"]["summary"] and rule["annotations"]["description"]


def test_the_charts_prometheus_rule_checks_too(tmp_path: Path) -> None:
    spec = one(render(CI_VALUES), "PrometheusRule")["spec"]
    rendered = tmp_path / "rules.yaml"
    rendered.write_text(yaml.safe_dump(spec))
    assert f"SUCCESS: {len(ALERTS)} rules found" in run(tool("promtool"), "check", "rules", str(rendered))
