"""Every metric and label the Grafana dashboard and the alerting rules use exists in the gateway's /metrics.

The names are the agreed ones (AGREED below, with their labels). The real gateway runs a small workload
(answers, a stream, fallbacks on a 5xx and a 429, a key over its quota, a policy reload) and is scraped: each
name a query uses must be declared there, and each label a query selects or groups by must be one of its
metric's (or one Prometheus adds when it scrapes).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml
from deploy.tools import DASHBOARD, RULES
from harness import ADMIN_KEY, TEST_KEY, GatewayProcess, free_port, start_gateway
from policy.support import account, config, key, write_policy
from prometheus_client.parser import text_string_to_metric_families

from gateway.fake.testing import FakeUpstream

# name -> labels, as agreed for the observability work (README, Observability, documents each).
AGREED: dict[str, frozenset[str]] = {
    name: frozenset(labels.split()) if labels else frozenset()
    for name, labels in {
        "gateway_requests_total": "endpoint model status",
        "gateway_request_duration_seconds": "endpoint",
        "gateway_time_to_first_token_seconds": "deployment",
        "gateway_upstream_attempts_total": "deployment outcome",
        "gateway_tokens_total": "deployment kind",
        "gateway_inflight_requests": "",
        "gateway_draining": "",
        "gateway_limiter_degraded": "",
        "gateway_throttled_total": "reason",
        "gateway_queue_wait_seconds": "",
        "gateway_policy_info": "version",
        "gateway_policy_reloads_total": "result",
        "gateway_routed_total": "route rule",
        "gateway_circuit_open": "deployment",
        "gateway_client_disconnects_total": "endpoint",
        "gateway_upstream_pool_wait_seconds": "account",
        "gateway_upstream_pool_timeouts_total": "account",
        "gateway_access_log_dropped_total": "",
        "gateway_client_connections_refused_total": "reason",
        "gateway_overhead_seconds": "endpoint",
        "gateway_fallbacks_total": "route from_deployment to_deployment reason",
        "gateway_upstream_latency_seconds": "deployment",
        "gateway_upstream_errors_total": "deployment class",
        "gateway_bucket_headroom_ratio": "deployment",
        "gateway_cost_usd_total": "deployment key tier route",
        "gateway_budget_used_ratio": "budget",
    }.items()
}
HISTOGRAM_SERIES = ("_bucket", "_sum", "_count")
SCRAPE_LABELS = frozenset({"job", "instance", "pod", "namespace", "le"})  # added by Prometheus, or histograms'
QUOTA_KEY = "metric-names-quota-key"
POLICY = """
routes:
  mn-route:
    - name: main
      candidates: [b/mn-flaky]
      fallback: [a/mn-main]
defaults:
  retry_on: [429, 5xx]
  retries: {same_deployment: 0}
"""


def expressions() -> list[tuple[str, str]]:
    """(where, PromQL) for every query of the dashboard (panels, variables, annotations) and every rule."""
    found = [(f"rule {r['alert']}", r["expr"]) for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]]
    board = json.loads(DASHBOARD.read_text())
    found += [(f"panel {p['title']}", t["expr"]) for p in board["panels"] for t in p.get("targets", [])]
    found += [(f"variable {v['name']}", v["definition"]) for v in board["templating"]["list"] if "definition" in v]
    found += [(f"annotation {a['name']}", a["expr"]) for a in board["annotations"]["list"]]
    return found


def base(series: str) -> str:
    """A series name -> its metric's name (a histogram's _bucket/_sum/_count -> the histogram)."""
    if series in AGREED:
        return series
    for suffix in HISTOGRAM_SERIES:
        if series.endswith(suffix) and series.removesuffix(suffix) in AGREED:
            return series.removesuffix(suffix)
    return series


def test_queries_use_only_agreed_names_and_labels() -> None:
    """Checked without a gateway: a misspelt name or label in a query is caught here first."""
    for where, expr in expressions():
        names = set(re.findall(r"\b(gateway_[a-z0-9_]+)", expr))
        assert names, where
        unknown = {n for n in names if base(n) not in AGREED}
        assert not unknown, f"{where} uses {sorted(unknown)}, not among the agreed metric names"
        for name, matchers in re.findall(r"\b(gateway_[a-z0-9_]+)\{([^}]*)\}", expr):
            for label in re.findall(r"([a-z_]+)\s*(?:=~|!~|!=|=)", matchers):
                assert label in AGREED[base(name)] | SCRAPE_LABELS, f"{where}: {name} has no label {label}"
        grouping = {
            label.strip() for group in re.findall(r"\b(?:by|without)\s*\(([^)]*)\)", expr) for label in group.split(",")
        }
        known = set().union(*(AGREED[base(n)] for n in names)) | SCRAPE_LABELS
        assert not grouping - known - {""}, (
            f"{where} groups by {sorted(grouping - known)}, which none of its metrics has"
        )


@pytest.fixture
def gateway(tmp_path: Path, fresh_fakes: tuple[FakeUpstream, FakeUpstream]) -> Iterator[GatewayProcess]:
    fake, fake2 = fresh_fakes
    write_policy(tmp_path / "policies", POLICY)
    providers = {
        "a": account(fake.url, {"mn-main": {"limits": {"rpm": 1000, "tpm": 1_000_000}}}),
        "b": account(fake2.url, {"mn-flaky": {}}),
    }
    keys = [key("tester", TEST_KEY, ["*"]), {**key("quota", QUOTA_KEY, ["*"]), "limits": {"rpm": 1}}]
    port = free_port()
    process = start_gateway(tmp_path / "gw", config(port, providers, tmp_path / "policies", keys=keys), port)
    yield process
    process.stop()


def workload(gateway: GatewayProcess, fake2: FakeUpstream) -> None:
    url = f"{gateway.base_url}/chat/completions"
    body = {"model": "mn-route", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 3}
    auth = {"authorization": f"Bearer {TEST_KEY}"}
    for kind in ("500", "429"):  # b fails, a answers: a fallback and a provider error of each class
        fake2.configure(model="mn-flaky", failure_kind=kind, failure_rate=1.0)
        r = httpx.post(url, json=body, headers=auth, timeout=15)
        assert r.status_code == 200 and r.headers["x-gateway-deployment"] == "a/mn-main", r.text
    fake2.configure(model="mn-flaky", failure_rate=0.0)
    with httpx.stream("POST", url, json={**body, "stream": True}, headers=auth, timeout=15) as stream:
        assert stream.status_code == 200 and "[DONE]" in stream.read().decode()
    quota = {"authorization": f"Bearer {QUOTA_KEY}"}
    statuses = [httpx.post(url, json=body, headers=quota, timeout=15).status_code for _ in range(2)]
    assert statuses == [200, 429]  # the key's own quota (1 a minute) throttles the second
    reload = httpx.post(f"{gateway.url}/admin/policies/reload", headers={"authorization": f"Bearer {ADMIN_KEY}"})
    assert reload.status_code == 200, reload.text


def test_every_metric_the_dashboard_and_rules_use_is_in_metrics(
    gateway: GatewayProcess, fresh_fakes: tuple[FakeUpstream, FakeUpstream]
) -> None:
    workload(gateway, fresh_fakes[1])
    exposition = httpx.get(f"{gateway.url}/metrics", timeout=5).text
    declared: dict[str, set[str]] = {}  # metric -> labels seen on its samples
    for family in text_string_to_metric_families(exposition):
        name = family.name + "_total" if family.type == "counter" else family.name
        declared[name] = {label for sample in family.samples for label in sample.labels} - {"le", "quantile"}
    used = {base(n) for _, expr in expressions() for n in re.findall(r"\b(gateway_[a-z0-9_]+)", expr)}
    missing = sorted(used - declared.keys())
    assert not missing, f"used by the dashboard or the alerting rules but not in /metrics: {', '.join(missing)}"
    for name in sorted(used):
        if declared[name]:  # labelled samples are there: they carry exactly the agreed labels
            assert declared[name] == AGREED[name], f"{name} has labels {sorted(declared[name])}"
    # The workload reached the metrics it was written for.
    for name in (
        "gateway_requests_total",
        "gateway_throttled_total",
        "gateway_routed_total",
        "gateway_policy_reloads_total",
    ):
        assert declared[name], f"{name} has no samples after the workload"
