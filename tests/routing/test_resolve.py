import pytest
from routing import builders

from gateway.config.model import Deployment, VirtualKey
from gateway.errors import GatewayError, RateLimited, ServiceUnavailable, UpstreamStatus, UpstreamTimeout
from gateway.providers.base import UnsupportedParameter
from gateway.routing.policy import Policy
from gateway.routing.resolve import ModelIndex, candidates, direct_plan
from gateway.routing.snapshot import DeploymentState, Snapshot
from gateway.routing.walk import final_error


def dep(account: str, model: str, mode: str = "chat") -> Deployment:
    return builders.dep(account, model, mode=mode, capabilities=frozenset())


DEPLOYMENTS = (
    dep("a", "gpt-4o-mini"),
    dep("b", "gpt-4o-mini"),
    dep("a", "gpt-4o"),
    dep("a", "emb", "embedding"),
)
INDEX = ModelIndex(
    {m: tuple(d for d in DEPLOYMENTS if d.model == m) for m in ("gpt-4o-mini", "gpt-4o", "emb")},
    {d.id: d for d in DEPLOYMENTS},
)


def key(*models: str) -> VirtualKey:
    return VirtualKey(name="k", key_sha256="0" * 64, tier="standard", models=frozenset(models))


def ids(found: tuple[Deployment, ...]) -> list[str]:
    return [d.id for d in found]


@pytest.mark.parametrize(
    "model,allowed,expected",
    [
        ("gpt-4o-mini", ["*"], ["a/gpt-4o-mini", "b/gpt-4o-mini"]),
        ("b/gpt-4o-mini", ["*"], ["b/gpt-4o-mini"]),
        ("gpt-4o-mini", ["b/gpt-4o-mini"], ["b/gpt-4o-mini"]),
        ("gpt-4o", ["gpt-4o"], ["a/gpt-4o"]),
    ],
)
def test_candidates(model: str, allowed: list[str], expected: list[str]) -> None:
    assert ids(candidates(INDEX, key(*allowed), model, "chat")) == expected


@pytest.mark.parametrize(
    "model,allowed,mode,status",
    [
        ("nope", ["*"], "chat", 404),
        ("gpt-4o", ["gpt-4o-mini"], "chat", 403),
        ("emb", ["*"], "chat", 400),
        ("gpt-4o", ["*"], "embedding", 400),
    ],
)
def test_refusals(model: str, allowed: list[str], mode: str, status: int) -> None:
    with pytest.raises(GatewayError) as info:
        candidates(INDEX, key(*allowed), model, mode)  # type: ignore[arg-type]
    assert info.value.status == status


def test_models_listing_respects_the_key() -> None:
    assert INDEX.visible(key("*")) == ["gpt-4o-mini", "gpt-4o", "emb"]
    assert INDEX.visible(key("gpt-4o")) == ["gpt-4o"]


def test_final_error() -> None:
    assert isinstance(final_error([]), ServiceUnavailable)
    limited = final_error([UpstreamStatus(429, "x", retry_after=3), UpstreamStatus(429, "y", retry_after=1.5)])
    assert isinstance(limited, RateLimited) and limited.retry_after == 1.5
    mixed = final_error([UpstreamStatus(429, "x"), UpstreamTimeout("t")])
    assert mixed.status == 504
    unsupported = UnsupportedParameter("logprobs", "groq")
    assert final_error([unsupported]) is unsupported


def test_direct_plan_all_open_tries_the_one_that_half_opens_soonest() -> None:
    found = candidates(INDEX, key("*"), "gpt-4o-mini", "chat")
    policy = Policy(version="v", routes={}, aliases={}, chains={})
    both = Snapshot(
        {
            "a/gpt-4o-mini": DeploymentState(circuit="open", retry_in=3.0),
            "b/gpt-4o-mini": DeploymentState(circuit="open", retry_in=1.0),
        }
    )
    p = direct_plan(found, policy, both, "gpt-4o-mini")
    assert [(e.deployment, e.last_resort) for e in p.entries] == [("b/gpt-4o-mini", True)]
    assert [x.kind for x in p.excluded] == ["circuit_open", "circuit_open"]
    one = Snapshot({"a/gpt-4o-mini": DeploymentState(circuit="open", retry_in=3.0)})
    p = direct_plan(found, policy, one, "gpt-4o-mini")
    assert [(e.deployment, e.last_resort) for e in p.entries] == [("b/gpt-4o-mini", False)]
