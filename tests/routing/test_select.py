"""select.plan: filters (each reason), strategies and tie breakers, chains, fallback, the empty cases."""

from __future__ import annotations

import json
import random
import textwrap
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from routing import builders
from routing.builders import feats

from gateway.config.model import Deployment, Price
from gateway.routing.features import Features
from gateway.routing.policy import Policy
from gateway.routing.policy_load import load_policies
from gateway.routing.select import Plan, estimated_cost, plan
from gateway.routing.snapshot import DeploymentState, Snapshot


def dep(
    ident: str,
    *,
    price: tuple[float, float] | None = None,  # USD per million tokens
    window: int | None = None,
    max_out: int | None = None,
    caps: str = "streaming tools",
    mode: str = "chat",
) -> Deployment:
    account, model = ident.split("/")
    cost = Price(price[0] / 1e6, price[1] / 1e6) if price else None
    return builders.dep(
        account, model, window, mode=mode, price=cost, max_out=max_out, capabilities=frozenset(caps.split())
    )


DEPLOYMENTS = {
    d.id: d
    for d in (
        dep("a/small", price=(1, 2), window=8000, max_out=2000),
        dep("a/big", price=(10, 30), window=200000, caps="streaming tools vision json_schema"),
        dep("b/cheap", price=(0.1, 0.2), caps="streaming"),
        dep("b/free"),  # price unknown
        dep("c/mid", price=(1, 2)),  # the same price as a/small
        dep("c/emb", price=(0.02, 0), mode="embedding", caps=""),
    )
}
ALL = "[a/small, a/big, b/cheap, b/free, c/mid]"


def policy(tmp_path: Path, rules: str, extra: str = "") -> Policy:
    text = extra + "routes:\n  r:\n" + textwrap.indent(textwrap.dedent(rules).lstrip("\n"), "    ")
    (tmp_path / "p.yaml").write_text(text)
    return load_policies(str(tmp_path), DEPLOYMENTS)


def run(p: Policy, f: Features | None = None, snapshot: Snapshot | None = None, seed: int = 1) -> Plan:
    found = plan(p, f or feats(), snapshot or Snapshot(), random.Random(seed), DEPLOYMENTS)
    assert found is not None
    return found


def snap(**states: DeploymentState) -> Snapshot:
    return Snapshot({k.replace("__", "/"): v for k, v in states.items()})


FILTERS: list[tuple[str, dict[str, Any], Snapshot, str, str]] = [
    ("not allowed", {"allowed": frozenset({"b/cheap", "big"})}, Snapshot(), "a/small", "key 'team-a' may not use it"),
    ("endpoint", {"endpoint": "embeddings"}, Snapshot(), "a/small", "a chat model: it serves /v1/chat/completions"),
    ("capabilities", {"capabilities": frozenset({"vision", "tools"})}, Snapshot(), "a/small", "lacks vision"),
    (
        "context window",
        {"prompt_tokens": 7000, "max_tokens": 1500},
        Snapshot(),
        "a/small",
        "needs 8500 tokens (7000 prompt + 1500 max_tokens), its context window is 8000",
    ),
    ("output limit", {"max_tokens": 3000}, Snapshot(), "a/small", "max_tokens 3000 is over its output limit 2000"),
    (
        "circuit open",
        {},
        snap(a__small=DeploymentState(circuit="open", retry_in=12.34)),
        "a/small",
        "circuit open, retry in 12.3s",
    ),
]


@pytest.mark.parametrize("changes,snapshot,excluded,reason", [c[1:] for c in FILTERS], ids=[c[0] for c in FILTERS])
def test_each_filter_excludes_with_its_reason(
    tmp_path: Path, changes: dict[str, Any], snapshot: Snapshot, excluded: str, reason: str
) -> None:
    p = run(policy(tmp_path, f"- candidates: {ALL}\n"), feats(**changes), snapshot)
    found = {x.deployment: x.reason for x in p.excluded}
    assert found[excluded] == reason
    assert excluded not in p.deployments


def test_allowed_by_model_name_id_or_route(tmp_path: Path) -> None:
    p = policy(tmp_path, f"- candidates: {ALL}\n", "aliases:\n  other: r\n")
    assert run(p, feats(allowed=frozenset({"small", "b/cheap"}))).deployments == ("a/small", "b/cheap")
    whole = ("a/small", "a/big", "b/cheap", "b/free", "c/mid")
    assert run(p, feats(allowed=frozenset({"r"}))).deployments == whole  # the route's name grants its deployments
    assert run(p, feats(model="other", allowed=frozenset({"other"}))).deployments == whole
    kinds = {x.kind for x in run(p, feats(allowed=frozenset({"nothing"}))).excluded}
    assert kinds == {"not_allowed"}


def test_embeddings_go_to_embedding_models_only(tmp_path: Path) -> None:
    p = run(policy(tmp_path, "- candidates: [a/small, c/emb]\n"), feats(endpoint="embeddings"))
    assert p.deployments == ("c/emb",) and [x.kind for x in p.excluded] == ["endpoint"]
    p = run(policy(tmp_path, "- candidates: [a/small, c/emb]\n"), feats())
    assert p.deployments == ("a/small",) and p.excluded[0].reason == "an embedding model: it serves /v1/embeddings"


def test_cost_ceiling_excludes_the_expensive_and_passes_unknown_prices(tmp_path: Path) -> None:
    p = run(policy(tmp_path, "- candidates: [a/big, b/free, b/cheap]\n  max_cost_usd: 0.005\n"))
    # a/big: 1000 x $10/M + 1024 (no max_tokens: limits.default_output_tokens) x $30/M = $0.04072
    assert [(x.deployment, x.kind) for x in p.excluded] == [("a/big", "cost")]
    assert p.excluded[0].reason == "estimated $0.0407 is over the rule's max_cost_usd 0.005"
    assert p.deployments == ("b/free", "b/cheap")


def test_unknown_deployments_are_excluded_not_fatal(tmp_path: Path) -> None:
    p = policy(tmp_path, "- candidates: [a/small, b/cheap]\n")
    found = plan(p, feats(), Snapshot(), random.Random(1), {"b/cheap": DEPLOYMENTS["b/cheap"]})
    assert found is not None and found.deployments == ("b/cheap",)
    assert found.excluded[0].kind == "unknown"


def test_a_half_open_deployment_keeps_its_place_as_a_probe(tmp_path: Path) -> None:
    p = run(
        policy(tmp_path, "- candidates: [a/small, b/cheap]\n"),
        snapshot=snap(a__small=DeploymentState(circuit="half_open")),
    )
    assert p.deployments == ("a/small", "b/cheap")
    assert [e.probe for e in p.entries] == [True, False] and "probe" in p.entries[0].why


def test_priority_keeps_the_listed_order(tmp_path: Path) -> None:
    p = run(policy(tmp_path, "- candidates: [b/free, a/big, a/small]\n"))
    assert p.deployments == ("b/free", "a/big", "a/small") and p.strategy == "priority"
    assert p.entries[1].why == "priority: listed #2" and p.admit_strategy == "first"


def test_cheapest_orders_by_estimated_cost_unknown_last(tmp_path: Path) -> None:
    p = run(policy(tmp_path, "- strategy: cheapest\n  candidates: [b/free, a/big, a/small, b/cheap]\n"))
    assert p.deployments == ("b/cheap", "a/small", "a/big", "b/free")
    cost = estimated_cost(DEPLOYMENTS["b/cheap"], feats())
    assert cost == pytest.approx(1000 * 0.1e-6 + 1024 * 0.2e-6) and p.entries[0].score == cost
    with_n = estimated_cost(DEPLOYMENTS["b/cheap"], feats(max_tokens=100, output_tokens=300))  # n=3
    assert with_n == pytest.approx(1000 * 0.1e-6 + 300 * 0.2e-6)
    assert p.entries[-1].why == "cheapest: price unknown"


def test_least_loaded_by_headroom_then_inflight(tmp_path: Path) -> None:
    states = snap(
        a__small=DeploymentState(headroom=0.2),
        a__big=DeploymentState(headroom=0.9, inflight=5),
        b__cheap=DeploymentState(headroom=0.9, inflight=2),
        c__mid=DeploymentState(inflight=9),  # no bucket: counts as full headroom
    )
    p = run(
        policy(tmp_path, "- strategy: least-loaded\n  candidates: [a/small, a/big, b/cheap, c/mid]\n"), None, states
    )
    assert p.deployments == ("c/mid", "b/cheap", "a/big", "a/small")
    assert p.admit_strategy == "most_headroom"
    assert p.entries[1].why == "least-loaded: headroom 0.90, 2 in flight"


@pytest.mark.parametrize(
    "stream,expected", [(True, ("b/cheap", "a/small", "a/big")), (False, ("a/big", "a/small", "b/cheap"))]
)
def test_lowest_latency_uses_ttft_for_streams(tmp_path: Path, stream: bool, expected: tuple[str, ...]) -> None:
    states = snap(
        a__small=DeploymentState(ttft_ms=300, latency_ms=900),
        a__big=DeploymentState(ttft_ms=500, latency_ms=700),
        b__cheap=DeploymentState(ttft_ms=100),  # whole-response latency unknown
    )
    p = run(
        policy(tmp_path, "- strategy: lowest-latency\n  candidates: [a/small, a/big, b/cheap]\n"),
        feats(stream=stream),
        states,
    )
    assert p.deployments == expected


TIES: list[tuple[str, str, Snapshot, tuple[str, ...]]] = [
    # a/small and c/mid cost the same: the tie breaker decides, then the listed order.
    ("cheapest", "", Snapshot(), ("a/small", "c/mid", "b/free")),
    ("cheapest", "lowest-latency", snap(c__mid=DeploymentState(latency_ms=10)), ("c/mid", "a/small", "b/free")),
    ("cheapest", "least-loaded", snap(a__small=DeploymentState(headroom=0.1)), ("c/mid", "a/small", "b/free")),
    ("lowest-latency", "", Snapshot(), ("a/small", "c/mid", "b/free")),  # all unknown
    ("lowest-latency", "cheapest", Snapshot(), ("a/small", "c/mid", "b/free")),
    ("least-loaded", "cheapest", snap(b__free=DeploymentState(headroom=1.0)), ("a/small", "c/mid", "b/free")),
    ("least-loaded", "lowest-latency", snap(b__free=DeploymentState(latency_ms=5)), ("b/free", "a/small", "c/mid")),
]


@pytest.mark.parametrize("strategy,tie,states,expected", TIES)
def test_tie_breakers(tmp_path: Path, strategy: str, tie: str, states: Snapshot, expected: tuple[str, ...]) -> None:
    tie_line = f"  tie_breaker: {tie}\n" if tie else ""
    p = policy(tmp_path, f"- strategy: {strategy}\n{tie_line}  candidates: [a/small, c/mid, b/free]\n")
    found = run(p, None, states)
    assert found.deployments == expected
    if tie:
        assert f"ties by {tie}" in found.entries[0].why


WEIGHTED = "- strategy: weighted\n  candidates: [a/small, b/cheap, c/mid]\n  weights: {a/small: 6, b/cheap: 3}\n"


def test_weighted_is_reproducible_with_a_seeded_rng(tmp_path: Path) -> None:
    p = policy(tmp_path, WEIGHTED)
    orders = {run(p, seed=s).deployments for s in range(20)}
    assert len(orders) > 1  # it does vary with the seed
    for s in range(20):
        assert run(p, seed=s).deployments == run(p, seed=s).deployments
    assert run(p).entries[0].why.startswith("weighted: ") and run(p).entries[0].why.endswith(" of 10")


def test_weighted_follows_the_weights(tmp_path: Path) -> None:
    p = policy(tmp_path, WEIGHTED)  # c/mid weighs 1 by default
    rng = random.Random(42)
    n = 6000
    firsts = Counter(plan(p, feats(), Snapshot(), rng, DEPLOYMENTS).deployments[0] for _ in range(n))  # type: ignore[union-attr]
    for deployment, share in (("a/small", 0.6), ("b/cheap", 0.3), ("c/mid", 0.1)):
        assert firsts[deployment] / n == pytest.approx(share, abs=0.03)


def test_weighted_renormalises_over_what_the_filters_leave(tmp_path: Path) -> None:
    p = policy(tmp_path, WEIGHTED)
    states = snap(a__small=DeploymentState(circuit="open", retry_in=5))
    rng = random.Random(3)
    firsts = Counter(plan(p, feats(), states, rng, DEPLOYMENTS).deployments[0] for _ in range(4000))  # type: ignore[union-attr]
    assert set(firsts) == {"b/cheap", "c/mid"}
    assert firsts["b/cheap"] / 4000 == pytest.approx(0.75, abs=0.03)


def test_chains_expand_in_place_and_dedupe_keeping_the_first(tmp_path: Path) -> None:
    extra = "chains:\n  cheap: [b/cheap, a/small]\n  both: [chain:cheap, a/big, b/cheap]\n"
    p = run(policy(tmp_path, "- candidates: [a/small, chain:both, c/mid]\n", extra))
    assert p.deployments == ("a/small", "b/cheap", "a/big", "c/mid")


def test_fallback_follows_the_candidates_filtered_and_deduped(tmp_path: Path) -> None:
    extra = "chains:\n  cheap: [b/cheap, a/small]\n"
    rules = "- strategy: cheapest\n  candidates: [a/big, c/mid]\n  fallback: [a/big, b/free, a/small, chain:cheap]\n"
    states = snap(b__free=DeploymentState(circuit="open", retry_in=1))
    p = run(policy(tmp_path, rules, extra), None, states)
    assert p.deployments == ("c/mid", "a/big", "a/small", "b/cheap")  # fallback keeps its listed order
    assert [e.stage for e in p.entries] == ["candidate", "candidate", "fallback", "fallback"]
    assert [e.why for e in p.entries[2:]] == ["fallback #1", "fallback #2"]
    assert [(x.deployment, x.stage, x.kind) for x in p.excluded] == [("b/free", "fallback", "circuit_open")]


def test_no_matching_rule_gives_an_empty_plan_with_a_reason(tmp_path: Path) -> None:
    p = run(policy(tmp_path, "- match: {tier: gold}\n  candidates: [a/small]\n"))
    assert p.rule is None and p.entries == () and p.strategy is None
    assert p.reason is not None and p.reason.startswith("no rule of route 'r' matches this request (tier=standard")


def test_everything_excluded_gives_an_empty_plan_with_the_reasons(tmp_path: Path) -> None:
    p = run(policy(tmp_path, "- name: only\n  candidates: [a/small]\n"), feats(prompt_tokens=9000))
    assert p.entries == () and p.rule == "only" and p.reason == "rule 'only': every deployment was excluded"
    assert p.excluded[0].kind == "context_window"


def test_every_circuit_open_plans_the_least_bad_as_a_last_resort_and_keeps_the_reasons(tmp_path: Path) -> None:
    rules = "- candidates: [a/small, b/cheap]\n  fallback: [c/mid]\n"
    states = snap(
        a__small=DeploymentState(circuit="open", retry_in=4.0, error_rate=0.2),
        b__cheap=DeploymentState(circuit="open", retry_in=1.5, error_rate=0.9),  # half-opens soonest
        c__mid=DeploymentState(circuit="open", retry_in=1.5, error_rate=0.95),
    )
    p = run(policy(tmp_path, rules), snapshot=states)
    assert [(e.deployment, e.stage, e.last_resort, e.probe) for e in p.entries] == [
        ("b/cheap", "candidate", True, False)
    ]
    assert p.entries[0].why == "last resort: every circuit is open, this one half-opens soonest (in 1.5s)"
    assert [(x.deployment, x.kind) for x in p.excluded] == [
        ("a/small", "circuit_open"),
        ("b/cheap", "circuit_open"),
        ("c/mid", "circuit_open"),
    ]
    assert p.reason is None
    half = snap(a__small=DeploymentState(circuit="open", retry_in=4.0), b__cheap=DeploymentState(circuit="half_open"))
    assert [(e.deployment, e.last_resort) for e in run(policy(tmp_path, rules), snapshot=half).entries] == [
        ("b/cheap", False),
        ("c/mid", False),
    ]  # something is not open: no last resort


def test_no_last_resort_for_deployments_excluded_for_lasting_reasons(tmp_path: Path) -> None:
    states = snap(a__big=DeploymentState(circuit="open", retry_in=1.0))
    p = run(policy(tmp_path, "- candidates: [a/small, a/big]\n"), feats(prompt_tokens=9000), states)
    assert [e.deployment for e in p.entries] == ["a/big"] and p.entries[0].last_resort
    p = run(policy(tmp_path, "- candidates: [a/small]\n"), feats(prompt_tokens=9000), states)
    assert p.entries == () and p.excluded[0].kind == "context_window"


def test_a_model_that_is_not_a_route_gives_none_and_aliases_resolve(tmp_path: Path) -> None:
    p = policy(tmp_path, "- candidates: [a/small]\n", "aliases:\n  auto: r\n")
    assert plan(p, feats(model="gpt-4o"), Snapshot(), random.Random(1), DEPLOYMENTS) is None
    assert run(p, feats(model="auto")).route == "r"


def test_the_plan_carries_retry_settings_and_renders_as_json(tmp_path: Path) -> None:
    rules = "- candidates: [a/small]\n  retry_on: [429, timeout]\n  retries: {same_deployment: 0}\n"
    p = run(policy(tmp_path, rules), snapshot=snap(a__small=DeploymentState(circuit="half_open")))
    assert p.retry_on == frozenset({"429", "timeout"}) and p.retries.same_deployment == 0
    doc = json.loads(json.dumps(p.to_json()))
    assert doc["rule"] == "#1" and doc["retry_on"] == ["429", "timeout"] and doc["retries"]["same_deployment"] == 0
    assert doc["entries"] == [
        {
            "deployment": "a/small",
            "score": None,
            "why": "priority: listed #1 (circuit half-open: probe)",
            "stage": "candidate",
            "probe": True,
            "last_resort": False,
        }
    ]
    assert list(doc["entries"][0]) == ["deployment", "score", "why", "stage", "probe", "last_resort"]
    assert doc["policy_version"] == p.policy_version and len(p.policy_version) == 12
