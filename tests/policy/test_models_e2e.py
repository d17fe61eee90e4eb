"""``/v1/models`` lists the policy's routes and aliases a key may use; aliases are served by their route."""

from __future__ import annotations

from pathlib import Path

import httpx
from harness import LIMITED_KEY, TEST_KEY, GatewayProcess
from policy.support import Launch, account, chat, config, key, write_policy

from gateway.fake.testing import FakeUpstream

POLICY = """
routes:
  smart:
    - name: main
      candidates: [a/md-x]
      fallback: [b/md-y]
  secret:
    - name: only
      candidates: [a/md-z]
  picky:
    - name: vip
      match: {tier: premium}
      candidates: [a/md-x]
aliases:
  clever: smart
"""


def listed(gateway: GatewayProcess, secret: str) -> list[str]:
    response = httpx.get(f"{gateway.base_url}/models", headers={"authorization": f"Bearer {secret}"}, timeout=10)
    assert response.status_code == 200
    assert response.json()["object"] == "list"
    return [m["id"] for m in response.json()["data"]]


def test_models_lists_routes_and_aliases_and_an_alias_is_served_by_its_route(
    launch: Launch, policy_dir: Path, fake: FakeUpstream, fake2: FakeUpstream
) -> None:
    providers = {"a": account(fake.url, {"md-x": {}, "md-z": {}}), "b": account(fake2.url, {"md-y": {}})}
    keys = [key("tester", TEST_KEY, ["*"]), key("limited", LIMITED_KEY, ["md-y"])]
    write_policy(policy_dir, POLICY)
    gateway = launch(lambda port: config(port, providers, policy_dir, keys=keys))

    everything = listed(gateway, TEST_KEY)
    assert len(everything) == len(set(everything))
    assert set(everything) == {"smart", "secret", "picky", "clever", "md-x", "md-z", "md-y"}
    # The limited key may use md-y, so the route that can serve it with md-y, and its alias, but not "secret".
    assert sorted(listed(gateway, LIMITED_KEY)) == ["clever", "md-y", "smart"]

    alias = chat(gateway, "clever", max_tokens=3)
    assert alias.status_code == 200, alias.text
    assert (alias.headers["x-gateway-rule"], alias.headers["x-gateway-deployment"]) == ("smart/main", "a/md-x")
    narrowed = chat(gateway, "smart", key_=LIMITED_KEY, max_tokens=3)
    assert narrowed.status_code == 200, narrowed.text
    assert (narrowed.headers["x-gateway-rule"], narrowed.headers["x-gateway-deployment"]) == ("smart/main", "b/md-y")
    assert chat(gateway, "secret", key_=LIMITED_KEY, max_tokens=3).status_code == 403

    # A route none of whose rules matches (the tester key is standard tier, the route premium only): an error
    # naming the route, and no rule in x-gateway-rule.
    unmatched = chat(gateway, "picky", max_tokens=3)
    assert unmatched.status_code == 400 and unmatched.json()["error"]["code"] == "no_matching_rule"
    assert "picky" in unmatched.json()["error"]["message"] and "x-gateway-rule" not in unmatched.headers

    for name, deployment in (("md-x", "a/md-x"), ("a/md-x", "a/md-x"), ("md-y", "b/md-y")):
        direct = chat(gateway, name, max_tokens=3)
        assert direct.status_code == 200, direct.text
        assert direct.headers["x-gateway-deployment"] == deployment
        assert "x-gateway-rule" not in direct.headers
