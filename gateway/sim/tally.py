"""What a run observed, counted as it happens (a day of traffic is millions of requests: nothing per request is
kept but its latencies, in compact arrays).

Time is cut into bins (a minute, for runs of 20 minutes and more): each limiter bucket's charge per bin,
over the limit's allowance for a bin, is its utilisation; a bin in which admission found the bucket full
counts towards the deployment's saturation time.
"""

from __future__ import annotations

import math
from array import array
from collections import Counter
from dataclasses import dataclass, field

from gateway.config.model import Deployment
from gateway.errors import GatewayError, UpstreamError
from gateway.failures import outcome
from gateway.limits.model import BucketSpec
from gateway.sim.trace import Trace
from gateway.spend import pricing
from gateway.types import Usage


def bin_seconds(duration: float) -> float:
    """>>> bin_seconds(3600), bin_seconds(600)
    (60.0, 30.0)
    """
    return 60.0 if duration >= 1200 else max(1.0, duration / 20)


def cost_usd(deployment: Deployment, usage: Usage) -> float:
    """USD for one answer at the deployment's prices (the catalog's, or the config's); modelled providers
    cache no prompts."""
    price = deployment.price
    return 0.0 if price is None else pricing.cost(pricing.Tokens(usage.prompt, 0, 0, usage.completion), price)


@dataclass
class ClassTally:
    requests: int = 0
    ok: int = 0
    cost: float = 0.0
    workflows: int = 0  # arrived
    completed: int = 0  # every call answered
    workflow_cost: float = 0.0  # of the completed ones
    latency: array[float] = field(default_factory=lambda: array("d"))  # arrival to last byte, answered calls
    ttft: array[float] = field(default_factory=lambda: array("d"))  # streams: arrival to first token
    wait: array[float] = field(default_factory=lambda: array("d"))  # arrival to reservation (or to its refusal)


@dataclass
class DeploymentTally:
    served: int = 0
    prompt: int = 0
    completion: int = 0
    cost: float = 0.0
    attempts: Counter[str] = field(default_factory=Counter)  # by outcome: ok, 429, 503, timeout, ...
    answered: list[int] = field(default_factory=list)  # per bin
    first_full: float | None = None  # when admission first found one of its buckets full
    full_bins: set[int] = field(default_factory=set)
    cooldowns: int = 0


@dataclass
class BucketTally:
    capacity: float  # the limit, per minute
    kind: str
    charged: list[float] = field(default_factory=list)  # per bin: reserved, then corrected to actual usage


class Tally:
    def __init__(self, duration: float, counted_from: float = 0.0, counted_until: float = math.inf) -> None:
        self.bin = bin_seconds(duration)
        self.counted_from, self.counted_until = counted_from, counted_until
        self.classes: dict[str, ClassTally] = {}
        self.deployments: dict[str, DeploymentTally] = {}
        self.buckets: dict[str, BucketTally] = {}
        self.errors: Counter[str] = Counter()  # what clients saw, "status code"
        self.fallbacks: Counter[str] = Counter()  # why a request left its plan's first choice
        self.circuits: list[tuple[float, str, str]] = []  # (time, deployment, new state)
        self.upstream_429 = 0

    def counts(self, arrived: float) -> bool:
        """Whether a workflow that arrived then is counted (the capacity search leaves its warm-up out)."""
        return self.counted_from <= arrived < self.counted_until

    def of(self, cls: str) -> ClassTally:
        found = self.classes.get(cls)
        return found if found is not None else self.classes.setdefault(cls, ClassTally())

    def deployment(self, deployment: str) -> DeploymentTally:
        found = self.deployments.get(deployment)
        return found if found is not None else self.deployments.setdefault(deployment, DeploymentTally())

    # What the watched limiter sees.

    def _bin(self, bucket: BucketSpec, i: int) -> list[float]:
        """The bucket's charges per bin, bin ``i`` included."""
        tally = self.buckets.get(bucket.name)
        if tally is None:
            tally = self.buckets.setdefault(bucket.name, BucketTally(bucket.capacity, bucket.kind))
        charged = tally.charged
        if i >= len(charged):
            charged.extend([0.0] * (i + 1 - len(charged)))
        return charged

    def requested(self, buckets: tuple[BucketSpec, ...], at: float, sign: float = 1.0) -> None:
        """One request (``sign`` -1: given back) on each request bucket; token buckets are only registered."""
        i = int(at / self.bin)
        for b in buckets:
            charged = self._bin(b, i)
            if b.kind == "requests":
                charged[i] += sign

    def used(self, buckets: tuple[BucketSpec, ...], kept: dict[str, float], at: float) -> None:
        """Tokens a settled request used, on each token bucket, in the time bin it was admitted in."""
        i = int(at / self.bin)
        for b in buckets:
            if b.kind == "tokens":
                self._bin(b, i)[i] += kept.get(b.name, b.cost)

    def full(self, deployment: str, now: float) -> None:
        d = self.deployment(deployment)
        if d.first_full is None:
            d.first_full = now
        d.full_bins.add(int(now / self.bin))

    def cooldown(self, deployment: str) -> None:
        self.deployment(deployment).cooldowns += 1

    # What the modelled providers and the circuit breaker see.

    def attempt(self, deployment: str, error: UpstreamError | None, trace: Trace) -> None:
        result = "ok" if error is None else outcome(error)
        trace.attempts.append((deployment, result))
        if not trace.counted:
            return
        self.deployment(deployment).attempts[result] += 1
        if result == "429":
            self.upstream_429 += 1

    def circuit(self, now: float, deployment: str, state: str) -> None:
        self.circuits.append((now, deployment, state))

    # Each request's end.

    def answered(
        self, trace: Trace, deployment: Deployment, usage: Usage, cost: float, now: float, ttft: float | None
    ) -> None:
        if not trace.counted:
            return
        c = self.of(trace.cls)
        c.requests += 1
        c.ok += 1
        c.cost += cost
        c.latency.append(now - trace.arrived)
        if ttft is not None:
            c.ttft.append(ttft)
        c.wait.append(trace.admitted - trace.arrived)
        deployment_id = deployment.id
        d = self.deployment(deployment_id)
        i = int(now / self.bin)
        if i >= len(d.answered):
            d.answered.extend([0] * (i + 1 - len(d.answered)))
        d.answered[i] += 1
        d.served += 1
        d.prompt += usage.prompt
        d.completion += usage.completion
        d.cost += cost
        self._fallbacks(trace, deployment_id)

    def refused(self, trace: Trace, error: GatewayError, now: float) -> None:
        if not trace.counted:
            return
        c = self.of(trace.cls)
        c.requests += 1
        self.errors[f"{error.status} {error.code or type(error).__name__}"] += 1
        c.wait.append((trace.admitted if trace.admitted >= 0 else now) - trace.arrived)
        self._fallbacks(trace, None)

    def _fallbacks(self, trace: Trace, served: str | None) -> None:
        """Each move away from a deployment, with the reason: admission passed it over (its bucket full, or
        cooling down after the provider's 429), the plan left it out (circuit open), or an attempt on it
        failed and the request went on to another."""
        attempts = trace.attempts
        if served is None or (len(attempts) == 1 and not trace.passed and not trace.circuit_open):
            return  # nothing answered (the error says why), or the first choice answered at its first try
        for deployment, why in trace.passed.items():
            if deployment != served:
                self.fallbacks[why] += 1
        if trace.circuit_open:
            self.fallbacks["circuit open"] += trace.circuit_open
        for i, (deployment, result) in enumerate(attempts):
            after = attempts[i + 1][0] if i + 1 < len(attempts) else served
            if result != "ok" and after != deployment:
                self.fallbacks[f"after {result}"] += 1

    def workflow(self, cls: str, arrived: float, completed: bool, cost: float) -> None:
        if not self.counts(arrived):
            return
        c = self.of(cls)
        c.workflows += 1
        if completed:
            c.completed += 1
            c.workflow_cost += cost
