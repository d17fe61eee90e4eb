"""A policy that sends requests to a cheaper model as a budget fills: ``budget_used: {gte: 0.8}``.

The gateway keeps its state in process here (no Redis): the in-process limiter holds the budgets, and
the feature comes from what each admission reports, with no round trip of its own.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from harness import ADMIN_KEY, UPSTREAM_KEY, GatewayProcess, free_port, start_gateway
from spend import support

from gateway.fake.testing import FakeUpstream

CAP = 0.05
POLICY = """
routes:
  agent:
    - name: saving
      match: {budget_used: {gte: 0.8}}
      candidates: [acct/cheap]
    - name: normal
      candidates: [acct/premium]
"""


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[GatewayProcess]:
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "agent.yaml").write_text(POLICY)
    keys = [support.key("spender", "spender-secret", budget={"daily_usd": CAP})]
    with FakeUpstream(api_key=UPSTREAM_KEY) as fake:
        port = free_port()
        process = start_gateway(
            tmp_path / "gw", support.config(port, fake.url, keys=keys, policy_dir=str(policies)), port
        )
        yield process
        process.stop()


def explain(gateway: GatewayProcess, **extra: object) -> dict[str, object]:
    body = {"request": {"model": "agent", "messages": [{"role": "user", "content": "Hi"}]}, "key": "spender", **extra}
    answer = httpx.post(f"{gateway.url}/admin/explain", json=body, headers={"authorization": f"Bearer {ADMIN_KEY}"})
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def test_requests_move_to_the_cheaper_rule_once_80_percent_of_the_budget_is_spent(gateway: GatewayProcess) -> None:
    assert explain(gateway)["rule"] == "agent/normal"
    client = gateway.client("spender-secret")
    rules: list[str] = []
    costs: list[float] = []
    while len(rules) < 30 and "agent/saving" not in rules[-3:]:
        raw = client.chat.completions.with_raw_response.create(
            model="agent", messages=[{"role": "user", "content": "Hi"}], max_tokens=10
        )
        rules.append(raw.headers["x-gateway-rule"])
        costs.append(float(raw.headers["x-gateway-cost-usd"]))
    switch = rules.index("agent/saving")
    assert rules[:switch] == ["agent/normal"] * switch and set(rules[switch:]) == {"agent/saving"}
    # The rule changed at the first request that found 80 % spent (each request's cost is what it reserved:
    # max_tokens, which the fake always reaches, at the premium output price).
    assert sum(costs[:switch]) >= 0.8 * CAP - 1e-4 > sum(costs[: switch - 1])
    assert max(costs[switch:]) < min(costs[:switch]) / 50  # cheaper indeed

    shown = explain(gateway)
    features = shown["features"]
    assert isinstance(features, dict) and features["budget_used"] >= 0.8
    assert shown["rule"] == "agent/saving"
    assert explain(gateway, budget_used=0.1)["rule"] == "agent/normal"  # what the rule does before the budget fills
