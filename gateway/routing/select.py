"""The routing decision: policy + request features + live state -> an ordered plan (pure, no awaits).

1. The route: the model name the client sent, or the route an alias names.
2. The first rule whose ``match`` holds.
3. Filters, before any strategy, each exclusion keeping its reason: unknown deployment, not allowed
   for the key, wrong endpoint, missing capabilities, prompt + max_tokens over the context window,
   max_tokens over the output limit, over the rule's cost ceiling, circuit open. The order puts
   lasting reasons before passing ones: a window too small matters more than an open circuit.
4. The strategy orders the candidates that are left; ``tie_breaker`` orders its ties, then the
   listed order does.
5. The fallback chain follows, filtered the same way, in its listed order, without repeats.

A half-open deployment keeps its place, marked ``probe`` (the health module admits its probes).
When every deployment left after the lasting filters has its circuit open, the least bad of them
(the one that half-opens soonest, then the lowest error rate, then the listed order) is still
planned, marked ``last_resort``: a fleet in a brownout answers what it can instead of refusing all.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Final, Literal

from gateway.config.model import Deployment
from gateway.limits.model import Strategy as AdmitStrategy
from gateway.routing.features import Features
from gateway.routing.policy import Policy, Retries, Route, Rule, Strategy
from gateway.routing.snapshot import UNKNOWN, DeploymentState, Snapshot

Stage = Literal["candidate", "fallback"]
ExclusionKind = Literal[
    "unknown", "not_allowed", "endpoint", "capabilities", "context_window", "max_output", "cost", "circuit_open"
]


@dataclass(init=False, unsafe_hash=True)
class PlanEntry:
    """One deployment of a plan. Its explanation, ``why``, is kept as a ``str.format`` template and its
    arguments and rendered when read (as ``logging`` renders a record's message): every request gets a plan,
    while only explain, the admin API, logs and traces read why."""

    deployment: Final[str]
    score: Final[float | None]  # what the strategy ranked by: USD, headroom, ms or weight; None for priority
    why_template: Final[str]  # plain text when there are no ``why_args``
    stage: Final[Stage]
    probe: Final[bool]  # circuit half-open: this attempt tests whether it has recovered
    last_resort: Final[bool]  # every circuit is open: tried anyway, once, as a probe
    why_args: Final[tuple[Any, ...]]

    def __init__(
        self,
        deployment: str,
        score: float | None,
        why_template: str,
        stage: Stage,
        probe: bool = False,
        last_resort: bool = False,
        why_args: tuple[Any, ...] = (),
    ) -> None:
        self.deployment = deployment
        self.score = score
        self.why_template = why_template
        self.stage = stage
        self.probe = probe
        self.last_resort = last_resort
        self.why_args = why_args

    @property
    def why(self) -> str:
        return self.why_template.format(*self.why_args) if self.why_args else self.why_template

    def to_json(self) -> dict[str, Any]:
        return {
            "deployment": self.deployment,
            "score": self.score,
            "why": self.why,
            "stage": self.stage,
            "probe": self.probe,
            "last_resort": self.last_resort,
        }


@dataclass(frozen=True, slots=True)
class Excluded:
    deployment: str
    reason: str
    kind: ExclusionKind = "unknown"
    stage: Stage = "candidate"


@dataclass(init=False, unsafe_hash=True)
class Plan:
    route: Final[str]
    rule: Final[str | None]  # None: no rule matched (``reason`` says so)
    strategy: Final[Strategy | None]
    entries: Final[tuple[PlanEntry, ...]]
    excluded: Final[tuple[Excluded, ...]]
    retry_on: Final[frozenset[str]]
    retries: Final[Retries]
    admit_strategy: Final[AdmitStrategy]  # least-loaded asks the limiter to re-check headroom atomically
    policy_version: Final[str]
    reason: Final[str | None]  # why the plan is empty
    direct: Final[bool]  # a plain model name's deployments, not a policy route

    def __init__(
        self,
        route: str,
        rule: str | None,
        strategy: Strategy | None,
        entries: tuple[PlanEntry, ...],
        excluded: tuple[Excluded, ...],
        retry_on: frozenset[str],
        retries: Retries,
        admit_strategy: AdmitStrategy,
        policy_version: str = "",
        reason: str | None = None,
        direct: bool = False,
    ) -> None:
        self.route = route
        self.rule = rule
        self.strategy = strategy
        self.entries = entries
        self.excluded = excluded
        self.retry_on = retry_on
        self.retries = retries
        self.admit_strategy = admit_strategy
        self.policy_version = policy_version
        self.reason = reason
        self.direct = direct

    @property
    def deployments(self) -> tuple[str, ...]:
        return tuple(e.deployment for e in self.entries)

    def to_json(self) -> dict[str, Any]:
        """The plan for ``explain`` and logs: plain JSON types only."""
        return {
            "policy_version": self.policy_version,
            "route": self.route,
            "rule": self.rule,
            "strategy": self.strategy,
            "admit_strategy": self.admit_strategy,
            "entries": [e.to_json() for e in self.entries],
            "excluded": [asdict(x) for x in self.excluded],
            "retry_on": sorted(self.retry_on),
            "retries": asdict(self.retries),
            "reason": self.reason,
        }


def estimated_cost(d: Deployment, f: Features) -> float | None:
    """USD for the prompt plus what the answers may take (``Features.output_tokens``, the same number the
    request reserves); None when the price is unknown."""
    if d.price is None:
        return None
    return f.prompt_tokens * d.price.input + f.output_tokens * d.price.output


def _exclusion(
    d: Deployment | None, f: Features, total: int, rule: Rule, state: DeploymentState, grants_all: bool
) -> tuple[ExclusionKind, str] | None:
    """The first reason to leave ``d`` out, as (kind, reason); ``total`` is ``f.total_tokens``, read once a plan."""
    if d is None:
        return "unknown", "not in the gateway's configuration"
    if not (grants_all or d.model in f.allowed or d.id in f.allowed):
        return "not_allowed", f"key {f.key_name!r} may not use it"
    if (d.mode == "embedding") != (f.endpoint == "embeddings"):
        if d.mode == "embedding":
            return "endpoint", "an embedding model: it serves /v1/embeddings"
        return "endpoint", "a chat model: it serves /v1/chat/completions"
    if not f.capabilities <= d.capabilities:
        return "capabilities", f"lacks {', '.join(sorted(f.capabilities - d.capabilities))}"
    if d.context_window is not None and total > d.context_window:
        return "context_window", (
            f"needs {total} tokens ({f.prompt_tokens} prompt + {f.max_tokens or 0} max_tokens), "
            f"its context window is {d.context_window}"
        )
    if d.max_output_tokens is not None and f.max_tokens is not None and f.max_tokens > d.max_output_tokens:
        return "max_output", f"max_tokens {f.max_tokens} is over its output limit {d.max_output_tokens}"
    if rule.max_cost_usd is not None:
        cost = estimated_cost(d, f)
        if cost is not None and cost > rule.max_cost_usd:
            return "cost", f"estimated ${cost:.4f} is over the rule's max_cost_usd {rule.max_cost_usd:g}"
    if state.circuit == "open":
        return "circuit_open", f"circuit open, retry in {state.retry_in:.1f}s"
    return None


# A strategy's view of one candidate: (sort key, score, explanation as a template and its arguments).
Ranked = tuple[tuple[float, ...], float | None, str, tuple[Any, ...]]
Ranker = Callable[[Deployment, DeploymentState, Features], Ranked]


def _cheapest(d: Deployment, s: DeploymentState, f: Features) -> Ranked:
    cost = estimated_cost(d, f)
    if cost is None:
        return (1.0, 0.0), None, "price unknown", ()
    return (0.0, cost), cost, "est. ${:.6f}", (cost,)


def _least_loaded(d: Deployment, s: DeploymentState, f: Features) -> Ranked:
    key = float(s.inflight)
    if s.headroom is None:  # no bucket known: nothing used up
        return (-1.0, key), 1.0, "headroom unknown, {} in flight", (s.inflight,)
    return (-s.headroom, key), s.headroom, "headroom {:.2f}, {} in flight", (s.headroom, s.inflight)


def _lowest_latency(d: Deployment, s: DeploymentState, f: Features) -> Ranked:
    value, name = (s.ttft_ms, "ttft") if f.stream else (s.latency_ms, "latency")
    if value is None:
        return (1.0, 0.0), None, "{} unknown", (name,)
    return (0.0, value), value, "{} {:.0f} ms", (name, value)


_RANKERS: dict[str, Ranker] = {
    "cheapest": _cheapest,
    "least-loaded": _least_loaded,
    "lowest-latency": _lowest_latency,
}

Usable = tuple[str, Deployment, DeploymentState]


# What filtering reads, the same for every deployment of a plan: the features, their total tokens, the
# rule, whether the key may use the whole route, the deployments' states and the deployments.
Facts = tuple[Features, int, Rule, bool, Mapping[str, DeploymentState], Mapping[str, Deployment]]


def _usable(ids: tuple[str, ...], stage: Stage, facts: Facts, excluded: list[Excluded]) -> list[Usable]:
    """The deployments of ``ids`` that may serve the request, with their states; the others go to ``excluded``."""
    f, total, rule, grants_all, states, deployments = facts
    kept: list[Usable] = []
    for i in ids:
        d = deployments.get(i)
        state = states.get(i, UNKNOWN)  # snapshot.state(i)
        why = _exclusion(d, f, total, rule, state, grants_all)
        if why is not None:
            excluded.append(Excluded(i, why[1], why[0], stage))
        elif d is not None:
            kept.append((i, d, state))
    return kept


def _order(rule: Rule, usable: list[Usable], f: Features, rng: random.Random) -> list[PlanEntry]:
    if rule.strategy == "priority":
        return [
            _entry(i, None, "candidate", s, "priority: listed #{}", (rule.candidates.index(i) + 1,))
            for i, _, s in usable
        ]
    if rule.strategy == "weighted":
        # Weighted sampling without replacement: each key is u ** (1 / w), highest first (Efraimidis-Spirakis).
        # The first pick follows the weights exactly; the rest stay available as fallbacks in weighted order.
        weights = [rule.weights.get(i, 1.0) for i, _, _ in usable]
        keys = [rng.random() ** (1.0 / w) for w in weights]
        order = sorted(range(len(usable)), key=lambda n: -keys[n])
        total = sum(weights)
        return [
            _entry(usable[n][0], weights[n], "candidate", usable[n][2], "weighted: {:g} of {:g}", (weights[n], total))
            for n in order
        ]
    primary = _RANKERS[rule.strategy]
    tie = _RANKERS[rule.tie_breaker] if rule.tie_breaker is not None else None
    named, tie_named = f"{rule.strategy}: ", f"; ties by {rule.tie_breaker}: "
    ranked = []
    for position, (i, d, s) in enumerate(usable):
        key, score, why, args = primary(d, s, f)
        why = named + why
        if tie is not None:
            tie_key, _, tie_why, tie_args = tie(d, s, f)
            key, why, args = key + tie_key, why + tie_named + tie_why, args + tie_args
        ranked.append((key + (float(position),), i, score, why, args, s))
    ranked.sort(key=lambda r: r[0])
    return [_entry(i, score, "candidate", s, why, args) for _, i, score, why, args, s in ranked]


def _entry(
    deployment: str, score: float | None, stage: Stage, s: DeploymentState, why: str, args: tuple[Any, ...]
) -> PlanEntry:
    if s.circuit == "half_open":
        return PlanEntry(deployment, score, why + " (circuit half-open: probe)", stage, True, False, args)
    return PlanEntry(deployment, score, why, stage, False, False, args)


def last_resort(excluded: Sequence[Excluded], snapshot: Snapshot) -> PlanEntry | None:
    """The least bad of the deployments excluded only for an open circuit; None when there are none.

    >>> shut = [Excluded("a/x", "circuit open", "circuit_open"), Excluded("b/y", "circuit open", "circuit_open")]
    >>> states = {"a/x": DeploymentState("open", retry_in=9.0), "b/y": DeploymentState("open", retry_in=2.0)}
    >>> last_resort(shut, Snapshot(states)).deployment  # the one that half-opens soonest
    'b/y'
    """
    shut = [x for x in excluded if x.kind == "circuit_open"]
    if not shut:
        return None
    best = min(shut, key=lambda x: (snapshot.state(x.deployment).retry_in, snapshot.state(x.deployment).error_rate))
    s = snapshot.state(best.deployment)
    why = "last resort: every circuit is open, this one half-opens soonest (in {:.1f}s)"
    return PlanEntry(best.deployment, s.retry_in, why, best.stage, last_resort=True, why_args=(s.retry_in,))


def _no_rule(policy: Policy, route: Route, f: Features) -> Plan:
    sought = f"tier={f.tier}, task={f.task}, prompt_tokens={f.prompt_tokens}, endpoint={f.endpoint}"
    return Plan(
        route=route.name,
        rule=None,
        strategy=None,
        entries=(),
        excluded=(),
        retry_on=policy.defaults.retry_on,
        retries=policy.defaults.retries,
        admit_strategy="first",
        policy_version=policy.version,
        reason=f"no rule of route {route.name!r} matches this request ({sought})",
    )


def plan(
    policy: Policy, features: Features, snapshot: Snapshot, rng: random.Random, deployments: Mapping[str, Deployment]
) -> Plan | None:
    """The ordered deployments to try for this request; None when its model is not a route.

    With policies/platform.yaml, for a premium key:

    With policies/platform.yaml and a premium key, ``plan(...).deployments[:3]`` is
    ``('openai-main/gpt-4o', 'azure-eastus/gpt-4o', 'gemini/gemini-2.5-flash')``
    (tests/routing/test_policy_platform.py).
    """
    route = policy.route_for(features.model)
    if route is None:
        return None
    rule = route.first_match(features)
    if rule is None:
        return _no_rule(policy, route, features)
    allowed = features.allowed
    # "*", the route's name or the name the client sent grant the whole route; otherwise each deployment.
    grants_all = "*" in allowed or route.name in allowed or features.model in allowed
    excluded: list[Excluded] = []
    facts = (features, features.total_tokens, rule, grants_all, snapshot.deployments, deployments)
    entries = _order(rule, _usable(rule.candidates, "candidate", facts, excluded), features, rng)
    for n, (i, _, s) in enumerate(_usable(rule.fallback_only, "fallback", facts, excluded), start=1):
        entries.append(_entry(i, None, "fallback", s, "fallback #{}", (n,)))
    if not entries and (spare := last_resort(excluded, snapshot)) is not None:
        entries.append(spare)  # it stays in ``excluded`` too: its circuit is open
    return Plan(
        route=route.name,
        rule=rule.name,
        strategy=rule.strategy,
        entries=tuple(entries),
        excluded=tuple(excluded),
        retry_on=rule.retry_on,
        retries=rule.retries,
        admit_strategy="most_headroom" if rule.strategy == "least-loaded" else "first",
        policy_version=policy.version,
        reason=None if entries else f"rule {rule.name!r}: every deployment was excluded",
    )
