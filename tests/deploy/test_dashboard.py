"""The Grafana dashboard: well formed, every query valid PromQL (checked by promtool), filtered by the
dashboard's variables, and covering what an operator looks at first."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml
from deploy.tools import DASHBOARD, run, tool

GRID_WIDTH = 24


def dashboard() -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return parsed


def queries() -> list[tuple[str, str]]:
    """(panel title, PromQL) for every query, annotations included."""
    d = dashboard()
    found = [(p["title"], t["expr"]) for p in d["panels"] for t in p.get("targets", [])]
    return found + [(a["name"], a["expr"]) for a in d["annotations"]["list"]]


def as_promql(expr: str) -> str:
    """Grafana's variables replaced as Grafana would before sending the query."""
    return expr.replace("$__rate_interval", "1m").replace("$job", ".*").replace("$deployment", ".*")


def test_panels_are_well_formed() -> None:
    d = dashboard()
    assert d["uid"] == "llm-gateway" and d["schemaVersion"] >= 36
    ids = [p["id"] for p in d["panels"]]
    assert len(ids) == len(set(ids))
    cells: set[tuple[int, int]] = set()
    for panel in d["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= GRID_WIDTH, panel["title"]
        mine = {
            (x, y) for x in range(grid["x"], grid["x"] + grid["w"]) for y in range(grid["y"], grid["y"] + grid["h"])
        }
        assert not mine & cells, f"{panel['title']} overlaps another panel"
        cells |= mine
        if panel["type"] != "row":
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
            assert panel["targets"] and panel["description"], panel["title"]
    variables = {v["name"] for v in d["templating"]["list"]}
    assert variables == {"datasource", "job", "deployment"}


def test_every_query_is_valid_promql(tmp_path: Path) -> None:
    """promtool parses each query as a recording rule's expression."""
    rules = [{"record": f"dashboard:query_{i}", "expr": as_promql(expr)} for i, (_, expr) in enumerate(queries())]
    path = tmp_path / "dashboard_queries.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    assert f"SUCCESS: {len(rules)} rules found" in run(tool("promtool"), "check", "rules", str(path))


def test_every_query_is_filtered_by_job() -> None:
    for title, expr in queries():
        selectors = re.findall(r"\b(gateway_[a-z_]+)(\{[^}]*\})?", expr)
        assert selectors, title
        for name, matchers in selectors:
            assert 'job=~"$job"' in matchers, f"{title}: {name} is not filtered by $job"


def test_covers_what_an_operator_looks_at() -> None:
    titles = {p["title"] for p in dashboard()["panels"]}
    for wanted in [
        "Requests by status",
        "Error ratios",
        "Request latency",
        "Gateway overhead",
        "Time to first token by deployment",
        "Fallbacks",
        "429s",
        "Queue wait",
        "Bucket headroom by deployment",
        "Circuit state",
        "Cost per hour by deployment",
        "Limiter degraded",
    ]:
        assert wanted in titles
