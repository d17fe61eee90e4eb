"""A loaded routing policy: routes of ordered rules, chains already expanded (frozen values).

Built only by ``load.load_policies``, which has checked every reference, so nothing here
validates; ``select.plan`` reads it on every request.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from gateway.routing.features import Features
from gateway.routing.policy.conditions import Condition, Range

Strategy = Literal["priority", "cheapest", "least-loaded", "lowest-latency", "weighted"]
TieBreaker = Literal["cheapest", "least-loaded", "lowest-latency"]
STRATEGIES: tuple[Strategy, ...] = ("priority", "cheapest", "least-loaded", "lowest-latency", "weighted")
TIE_BREAKERS: tuple[TieBreaker, ...] = ("cheapest", "least-loaded", "lowest-latency")

# Fallback triggers: a status (429, 408, 409, 5xx codes), "5xx", or a failure class.
RETRY_ON_DEFAULT = frozenset({"429", "5xx", "timeout", "connection", "context_length"})


@dataclass(frozen=True)
class Retries:
    same_deployment: int = 1  # retries on the same deployment before moving on
    backoff_ms: int = 200
    backoff_max_ms: int = 2000
    attempt_timeout_s: float = 30.0
    deadline_s: float = 90.0  # the whole request, every attempt included


@dataclass(frozen=True)
class Rule:
    name: str
    match: tuple[Condition, ...]  # empty: catch-all
    strategy: Strategy
    candidates: tuple[str, ...]  # deployment ids, chains expanded, first occurrence kept
    fallback: tuple[str, ...] = ()
    tie_breaker: TieBreaker | None = None
    weights: Mapping[str, float] = field(default_factory=dict)  # weighted: id -> weight (default 1)
    max_cost_usd: float | None = None
    retry_on: frozenset[str] = RETRY_ON_DEFAULT
    retries: Retries = Retries()
    source: str = ""  # "file:line", for explain output
    # The fallback without the deployments already candidates: what a plan tries after them, each once.
    fallback_only: tuple[str, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "fallback_only", tuple(i for i in self.fallback if i not in self.candidates))

    def matches(self, f: Features) -> bool:
        for condition in self.match:  # a plain loop: this runs for every rule of every request
            if not condition.test(f):
                return False
        return True

    def bounds(self) -> tuple[int, ...]:
        """Token counts this rule compares the prompt (or prompt + max_tokens) with."""
        return tuple(
            b
            for c in self.match
            if isinstance(c, Range) and c.feature in ("prompt_tokens", "total_tokens")
            for b in c.bounds()
        )


@dataclass(frozen=True)
class Route:
    name: str
    rules: tuple[Rule, ...]
    thresholds: tuple[int, ...] = ()  # rule bounds and the context windows of its deployments, sorted
    source: str = ""

    def first_match(self, f: Features) -> Rule | None:
        for rule in self.rules:  # Rule.matches inlined: this is most of a decision's time with many rules
            for condition in rule.match:
                if not condition.test(f):
                    break
            else:
                return rule
        return None


@dataclass(frozen=True)
class Defaults:
    retry_on: frozenset[str] = RETRY_ON_DEFAULT
    retries: Retries = Retries()


@dataclass(frozen=True)
class Policy:
    version: str  # sha256 of the files' names and bytes, 12 hex digits: equal on every replica
    routes: Mapping[str, Route] = field(default_factory=dict)
    aliases: Mapping[str, str] = field(default_factory=dict)  # client-facing name -> route name
    chains: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # expanded
    defaults: Defaults = Defaults()
    files: tuple[str, ...] = ()

    def route_for(self, model: str) -> Route | None:
        return self.routes.get(self.aliases.get(model, model))

    def names(self) -> tuple[str, ...]:
        """The model names clients may send for a route (for /v1/models): routes, then aliases."""
        return (*self.routes, *self.aliases)

    def thresholds(self, model: str | None = None) -> tuple[int, ...]:
        """Token counts near which an estimate is not good enough (for ``features.refine``).

        For one model name (a route or alias), that route's; for None, every route's.
        """
        if model is not None:
            route = self.route_for(model)
            return route.thresholds if route is not None else ()
        return tuple(sorted({t for r in self.routes.values() for t in r.thresholds}))
