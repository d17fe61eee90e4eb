"""decision.decide and explain: the one routing decision that serving and explain both make."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from routing import builders
from routing.builders import feats

from gateway.config.model import Deployment, VirtualKey
from gateway.errors import InvalidRequest, ModelNotFound, PermissionDenied
from gateway.routing.decision import decide
from gateway.routing.explain import explain, refusal
from gateway.routing.policy import Policy
from gateway.routing.policy_load import load_policies
from gateway.routing.resolve import ModelIndex
from gateway.routing.snapshot import Snapshot

DEPLOYMENTS: dict[str, Deployment] = {
    d.id: d
    for d in (
        builders.dep("a", "small"),
        builders.dep("b", "small"),
        builders.dep("b", "large"),
        builders.dep("c", "emb", mode="embedding", capabilities=frozenset()),
    )
}
INDEX = ModelIndex(
    {m: tuple(d for d in DEPLOYMENTS.values() if d.model == m) for m in ("small", "large", "emb")}, DEPLOYMENTS
)
EVERYTHING = VirtualKey(name="k", key_sha256="0" * 64, tier="standard", models=frozenset({"*"}))
ONLY_LARGE = VirtualKey(name="k", key_sha256="0" * 64, tier="standard", models=frozenset({"large"}))


@pytest.fixture
def policy(tmp_path: Path) -> Policy:
    (tmp_path / "p.yaml").write_text(
        "routes:\n  smart:\n    - name: main\n      candidates: [b/large, a/small]\naliases:\n  auto: smart\n"
    )
    return load_policies(str(tmp_path), DEPLOYMENTS)


def decided(policy: Policy, model: str, key: VirtualKey = EVERYTHING, endpoint: str = "chat") -> tuple[str, ...]:
    found = decide(policy, feats(model=model, endpoint=endpoint), Snapshot(), random.Random(1), DEPLOYMENTS, INDEX, key)
    return found.deployments


def test_routes_and_aliases_take_the_policys_plan(policy: Policy) -> None:
    assert decided(policy, "smart") == decided(policy, "auto") == ("b/large", "a/small")


def test_a_model_name_takes_its_deployments_in_config_order(policy: Policy) -> None:
    assert decided(policy, "small") == ("a/small", "b/small")
    assert decided(policy, "b/small") == ("b/small",)
    assert decided(policy, "emb", endpoint="embeddings") == ("c/emb",)


@pytest.mark.parametrize(
    ("model", "key", "endpoint", "error"),
    [
        ("nope", EVERYTHING, "chat", ModelNotFound),
        ("small", ONLY_LARGE, "chat", PermissionDenied),
        ("emb", EVERYTHING, "chat", InvalidRequest),
    ],
)
def test_what_no_plan_can_serve_is_refused(
    policy: Policy, model: str, key: VirtualKey, endpoint: str, error: type[Exception]
) -> None:
    with pytest.raises(error):
        decided(policy, model, key, endpoint)


def test_explain_shows_serving_s_decision(policy: Policy) -> None:
    request = {"model": "smart", "messages": [{"role": "user", "content": "hi"}]}
    shown = explain(policy, DEPLOYMENTS, INDEX, Snapshot(), request)
    assert shown["rule"] == "smart/main" and shown["outcome"] == {"status": 200, "first_choice": "b/large"}
    assert [e["deployment"] for e in shown["plan"]["entries"]] == ["b/large", "a/small"]
    assert shown["features"]["model"] == "smart" and shown["policy_version"] == policy.version
    missing = explain(policy, DEPLOYMENTS, INDEX, Snapshot(), {**request, "model": "nope"})
    assert missing["error"]["code"] == "model_not_found"
    assert refusal(policy, InvalidRequest("bad", code="invalid_json"))["error"]["code"] == "invalid_json"
