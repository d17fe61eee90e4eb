"""Rule matching: every feature and operator, as the YAML says it, against request features."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest
from routing.builders import feats

from gateway.config.model import Deployment, Limits
from gateway.routing.policy_load import load_policies

DEPLOYMENTS = {
    "a/x": Deployment(
        account="a",
        model="x",
        upstream_model="x",
        mode="chat",
        limits=Limits(),
        price=None,
        context_window=None,
        max_output_tokens=None,
        capabilities=frozenset(),
    )
}


CASES: list[tuple[str, dict[str, Any], bool]] = [
    ("tier: premium", {"tier": "premium"}, True),
    ("tier: premium", {"tier": "standard"}, False),
    ("tier: [gold, premium]", {"tier": "premium"}, True),
    ("key: team-a", {}, True),
    ("key: [team-b]", {}, False),
    ("end_user: alice", {"end_user": "alice"}, True),
    ("end_user: alice", {"end_user": None}, False),
    ("task: [simple, classify]", {"task": "classify"}, True),
    ("task: [simple, classify]", {"task": None}, False),
    ("endpoint: embeddings", {"endpoint": "embeddings"}, True),
    ("endpoint: embeddings", {}, False),
    ("stream: true", {"stream": True}, True),
    ("stream: true", {}, False),
    ("stream: false", {}, True),
    ("tags: urgent", {"tags": frozenset({"urgent", "eu"})}, True),
    ("tags: urgent", {"tags": frozenset({"eu"})}, False),
    ("tags: {any: [urgent, batch]}", {"tags": frozenset({"batch"})}, True),
    ("tags: {any: [urgent, batch]}", {"tags": frozenset()}, False),
    ("tags: {all: [urgent, eu]}", {"tags": frozenset({"urgent", "eu", "x"})}, True),
    ("tags: {all: [urgent, eu]}", {"tags": frozenset({"urgent"})}, False),
    ("tags: {any: [a], all: [b, c]}", {"tags": frozenset({"a", "b", "c"})}, True),
    ("tags: {any: [a], all: [b, c]}", {"tags": frozenset({"b", "c"})}, False),
    ("capabilities: {all: [tools, vision]}", {"capabilities": frozenset({"tools", "vision", "streaming"})}, True),
    ("capabilities: {all: [tools, vision]}", {"capabilities": frozenset({"tools"})}, False),
    ("capabilities: {any: [vision]}", {"capabilities": frozenset({"vision"})}, True),
    ("prompt_tokens: {gt: 1000}", {"prompt_tokens": 1000}, False),
    ("prompt_tokens: {gt: 1000}", {"prompt_tokens": 1001}, True),
    ("prompt_tokens: {gte: 1000}", {"prompt_tokens": 1000}, True),
    ("prompt_tokens: {lt: 1000}", {"prompt_tokens": 1000}, False),
    ("prompt_tokens: {lte: 1000}", {"prompt_tokens": 1000}, True),
    ("prompt_tokens: {gte: 10, lt: 20}", {"prompt_tokens": 19}, True),
    ("prompt_tokens: {gte: 10, lt: 20}", {"prompt_tokens": 20}, False),
    ("max_tokens: {gt: 100}", {"max_tokens": 101}, True),
    ("max_tokens: {lt: 100}", {"max_tokens": None}, False),  # not sent: no range holds
    ("total_tokens: {gt: 1500}", {"prompt_tokens": 1000, "max_tokens": 501}, True),
    ("total_tokens: {gt: 1500}", {"prompt_tokens": 1000, "max_tokens": 500}, False),
    ("total_tokens: {gt: 999}", {"prompt_tokens": 1000, "max_tokens": None}, True),  # prompt + 0
    ("{tier: premium, task: simple}", {"tier": "premium", "task": "simple"}, True),  # every condition
    ("{tier: premium, task: simple}", {"tier": "premium"}, False),
]


def _shown(changes: dict[str, Any]) -> str:
    """A test id that is the same in every process (a frozenset's order follows the hash seed)."""
    return str({k: sorted(v) if isinstance(v, frozenset) else v for k, v in changes.items()})


@pytest.mark.parametrize("match,changes,expected", CASES, ids=[f"{m} {_shown(c)}" for m, c, _ in CASES])
def test_matching(tmp_path: Path, match: str, changes: dict[str, Any], expected: bool) -> None:
    flow = match if match.startswith("{") else f"{{{match}}}"
    (tmp_path / "p.yaml").write_text(f"routes:\n  r:\n    - match: {flow}\n      candidates: [a/x]\n")
    rule = load_policies(str(tmp_path), DEPLOYMENTS).routes["r"].rules[0]
    assert rule.matches(feats(**changes)) is expected


def test_the_first_matching_rule_wins_and_no_match_is_none(tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text(
        textwrap.dedent(
            """
            routes:
              r:
                - {name: gold, match: {tier: gold}, candidates: [a/x]}
                - {name: simple, match: {task: simple}, candidates: [a/x]}
                - {name: gold-simple, match: {tier: gold, task: simple}, candidates: [a/x]}
            """
        )
    )
    route = load_policies(str(tmp_path), DEPLOYMENTS).routes["r"]
    found = route.first_match(feats(tier="gold", task="simple"))
    assert found is not None and found.name == "gold"
    found = route.first_match(feats(task="simple"))
    assert found is not None and found.name == "simple"
    assert route.first_match(feats()) is None
