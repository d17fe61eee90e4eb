"""The workload file: what traffic arrives, what it asks for, and how the providers behave (values only).

A workload is YAML (``config/plan/workload.yaml`` is a commented example)::

    seed: 1                      # one seed drives every random draw
    duration_s: 3600             # arrivals stop here; requests under way finish
    arrivals: {rate: {constant: 13.8}, process: poisson, bursts: [{at_s: 600, count: 200}]}
    classes:                     # what a workflow is; shares add up to 1
      simple: {share: 0.7, model: agent-default, task: simple, calls: 3,
               prompt_tokens: {lognormal: {median: 800, p95: 2400}}, output_tokens: 250,
               max_tokens: 1024, stream: 0.5, think_ms: 0}
    tiers: {standard: 0.95, premium: 0.05}
    key: null                    # a key name from the config (its quotas apply), else one per tier, unlimited
    end_users: 0                 # distinct end users (user quotas); 0: requests name none
    providers:                   # modelled behaviour: "*", an account, or a deployment id (most specific wins)
      "*": {ttft_ms: {lognormal: {median: 400, p95: 1500}}, tokens_per_second: 80, error_rate: 0.0}
      groq: {ttft_ms: 150, tokens_per_second: 500, limits: {rpm: 6000}}   # limits: the provider's own,
                                                                          # when they differ from the config's
    outages: [{target: openai-tier5, from_s: 1200, to_s: 1500, kind: "503"}]   # 5xx, 429, timeout, connection
    search: {warmup_s: 300, window_s: 300, precision: 0.02}

A variant names only what it changes: ``extends: workload.yaml`` takes that file's keys, its own over them.
Unknown keys are errors, as in the gateway's config: a typo never silently does nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gateway.config.model import Limits, Settings
from gateway.routing.policy import Policy
from gateway.sim import arrivals as arrival
from gateway.sim.distributions import Dist, constant

OUTAGE_KINDS = ("429", "500", "502", "503", "504", "timeout", "connection")


class WorkloadError(Exception):
    def __init__(self, errors: list[str]) -> None:
        super().__init__("; ".join(errors))
        self.errors = errors


@dataclass(frozen=True)
class RequestClass:
    """One kind of workflow: ``calls`` requests in a row, each shaped as below."""

    name: str
    share: float
    model: str  # a route, an alias, a model name or a deployment id, as a client sends it
    task: str | None = None
    tags: tuple[str, ...] = ()
    calls: int = 3
    prompt_tokens: Dist = constant(1000)
    output_tokens: Dist = constant(300)  # what the provider generates (capped by max_tokens)
    max_tokens: int | None = None  # what the request sets; None: the gateway reserves default_output_tokens
    stream: float = 0.0  # share of requests that stream
    think: Dist = constant(0.0)  # seconds between one call's answer and the next call


@dataclass(frozen=True)
class Behaviour:
    """A modelled provider deployment: time to first token, generation speed, failures, its own limits."""

    ttft: Dist = constant(0.5)  # seconds
    tokens_per_second: Dist = constant(80.0)
    error_rate: float = 0.0
    error: str = "500"


@dataclass(frozen=True)
class Outage:
    target: str  # an account or a deployment id
    start: float
    end: float
    kind: str
    retry_after: float = 5.0  # what a 429 outage's answers say


@dataclass(frozen=True)
class Search:
    warmup: float = 120.0  # seconds of each probe not counted (the waiting line and circuits settle)
    window: float = 300.0  # seconds counted, at least
    min_workflows: int = 10_000  # counted workflows, at least (a longer window at low rates): Poisson noise ~1 %
    precision: float = 0.01  # relative width of the final bracket
    max_probes: int = 24


@dataclass(frozen=True)
class Workload:
    seed: int
    duration: float
    arrivals: arrival.Arrivals
    classes: tuple[RequestClass, ...]
    tiers: tuple[tuple[str, float], ...] = (("standard", 1.0),)
    key: str | None = None
    end_users: int = 0
    behaviours: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # parsed fields, by target
    limits: Mapping[str, Limits] = field(default_factory=dict)  # a provider's own limits, by account or deployment
    outages: tuple[Outage, ...] = ()
    search: Search = Search()
    source: str = "<workload>"

    def behaviour(self, kind: str, account: str, deployment: str) -> Behaviour:
        """The most specific behaviour: the deployment's fields over its account's, over its provider kind's
        (``openai``, ``groq``, ...), over ``*``'s."""
        merged: dict[str, Any] = {}
        for target in ("*", kind, account, deployment):
            merged.update(self.behaviours.get(target, {}))
        return Behaviour(**merged)

    @property
    def calls_per_workflow(self) -> float:
        return sum(c.share * c.calls for c in self.classes)


def unused(workload: Workload, settings: Settings) -> list[str]:
    """Provider behaviours that match nothing in this configuration (a workload may serve several)."""
    known = {"*"} | {a.name for a in settings.accounts} | {a.kind for a in settings.accounts}
    known |= {d.id for d in settings.deployments}
    return [
        f"{workload.source}: providers.{t}: no provider kind, account or deployment of that name here"
        for t in [*workload.behaviours, *workload.limits]
        if t not in known
    ]


def check(workload: Workload, settings: Settings, policy: Policy) -> list[str]:
    """What in the workload cannot apply to this gateway configuration and policy."""
    accounts = {a.name for a in settings.accounts}
    deployments = {d.id for d in settings.deployments}
    known = accounts | deployments
    models = {d.model for d in settings.deployments} | deployments
    problems = [
        f"classes.{c.name}.model: {c.model!r} is no route, alias, model or deployment of this config and policy"
        for c in workload.classes
        if policy.route_for(c.model) is None and c.model not in models
    ]
    problems += [
        f"outages: {o.target}: no account or deployment of that name" for o in workload.outages if o.target not in known
    ]
    key = next((k for k in settings.keys if k.name == workload.key), None)
    if workload.key is not None and key is None:
        problems.append(f"key: {workload.key}: no virtual key of that name in {settings.source}")
    if key is not None and not key.trusted and {t for t, share in workload.tiers if share} != {key.tier}:
        problems.append(
            f"tiers: key {key.name!r} is not trusted, so all its requests are tier {key.tier!r} "
            "(drop tiers, or name a trusted key, which asserts each workflow's tier)"
        )
    return [f"{workload.source}: {p}" for p in problems]
