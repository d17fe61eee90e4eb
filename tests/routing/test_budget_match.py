"""The ``budget_used`` feature and its match condition: a share of a cap, 0.8 for 80 %."""

from __future__ import annotations

from pathlib import Path

import pytest
from routing.builders import dep, feats

from gateway.config.model import VirtualKey
from gateway.routing.features import features_from
from gateway.routing.policy_load import PolicyError, load_policies

DEPLOYMENTS = {d.id: d for d in (dep("a", "x"), dep("a", "cheap"))}
POLICY = """
routes:
  r:
    - name: saving
      match: {budget_used: {gte: 0.8}}
      candidates: [a/cheap]
    - name: long
      match: {prompt_tokens: {gt: 5000}}
      candidates: [a/x]
    - name: normal
      candidates: [a/x]
"""


@pytest.mark.parametrize(("used", "rule"), [(0.0, "normal"), (0.79, "normal"), (0.8, "saving"), (1.3, "saving")])
def test_a_rule_matches_on_the_share_of_budget_used(tmp_path: Path, used: float, rule: str) -> None:
    (tmp_path / "p.yaml").write_text(POLICY)
    found = load_policies(str(tmp_path), DEPLOYMENTS).routes["r"].first_match(feats(budget_used=used))
    assert found is not None and found.name == rule


def test_its_bounds_are_no_token_thresholds(tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text(POLICY)
    # Only token bounds make routing count a prompt exactly; 0.8 is not one.
    assert load_policies(str(tmp_path), DEPLOYMENTS).thresholds("r") == (5000,)


@pytest.mark.parametrize(
    ("match", "message"),
    [
        ("{budget_used: 0.8}", "expected a range such as {gte: 0.8}"),
        ("{budget_used: {gte: -0.1}}", "expected a share of the cap (a number >= 0, 0.8 for 80 %), got -0.1"),
        ("{budget_used: {over: 0.5}}", "unknown operator"),
        ("{budget_used: {gt: 0.9, lt: 0.5}}", "matches no request"),
        ("{budget_spent: {gt: 0.5}}", "unknown feature (expected one of:"),
    ],
)
def test_mistakes_are_reported(tmp_path: Path, match: str, message: str) -> None:
    (tmp_path / "p.yaml").write_text(f"routes:\n  r:\n    - match: {match}\n      candidates: [a/x]\n")
    with pytest.raises(PolicyError) as info:
        load_policies(str(tmp_path), DEPLOYMENTS)
    assert any(message in e for e in info.value.errors), info.value.errors


def test_features_carry_what_they_are_given() -> None:
    body = {"model": "r", "messages": [{"role": "user", "content": "Hi"}]}
    key = VirtualKey("team-a", "0" * 64, "standard", frozenset({"*"}))
    assert features_from(body, key, {}, "chat", False).budget_used == 0.0
    assert features_from(body, key, {}, "chat", False, budget_used=0.85).budget_used == 0.85
