"""What a run observed, counted as it happens (a day of traffic is millions of requests: nothing per request is
kept but its latencies, in compact arrays).

Time is cut into bins (a minute, for runs of 20 minutes and more): each limiter bucket's charge per bin,
over the limit's allowance for a bin, is its utilisation; a bin in which admission found the bucket full
counts towards the deployment's saturation time.
"""

from __future__ import annotations

import math
from array import array
from collections import Counter, defaultdict
from collections.abc import Sequence
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
    cost: float = 0.0
    workflows: int = 0  # arrived
    completed: int = 0  # every call answered
    workflow_cost: float = 0.0  # of the completed ones
    latency: array[float] = field(default_factory=lambda: array("d"))  # arrival to last byte, answered calls
    ttft: array[float] = field(default_factory=lambda: array("d"))  # streams: arrival to first token
    wait: array[float] = field(default_factory=lambda: array("d"))  # arrival to reservation (or to its refusal)

    @property
    def requests(self) -> int:
        """Every request ended with a wait, answered or refused."""
        return len(self.wait)

    @property
    def ok(self) -> int:
        return len(self.latency)


@dataclass
class DeploymentTally:
    prompt: int = 0
    completion: int = 0
    cost: float = 0.0
    attempts: Counter[str] = field(default_factory=Counter)  # by outcome: ok, 429, 503, timeout, ...
    answered: defaultdict[int, int] = field(default_factory=lambda: defaultdict(int))  # by bin
    first_full: float | None = None  # when admission first found one of its buckets full
    full_bins: set[int] = field(default_factory=set)
    cooldowns: int = 0

    @property
    def served(self) -> int:
        return sum(self.answered.values())

    def per_bin(self, bins: int) -> list[int]:
        """Requests answered in each of the first ``bins`` bins."""
        answered = self.answered
        return [answered.get(i, 0) for i in range(bins)]


@dataclass
class BucketTally:
    capacity: float  # the limit, per minute
    kind: str
    # by bin: reserved, then corrected to actual usage
    charged: defaultdict[int, float] = field(default_factory=lambda: defaultdict(float))

    def per_bin(self, bins: int) -> list[float]:
        """The charges in each of the first ``bins`` bins."""
        charged = self.charged
        return [charged.get(i, 0.0) for i in range(bins)]


class Tally:
    """Counted as it happens, in as few steps as a request allows (a run makes millions): classes, deployments
    and bins are made on first use (``defaultdict``: in the order the run first meets them, which the report
    keeps), and totals that a count already holds are derived from it (``ClassTally.requests``, ``ok``,
    ``DeploymentTally.served``)."""

    def __init__(self, duration: float, counted_from: float = 0.0, counted_until: float = math.inf) -> None:
        self.bin = bin_seconds(duration)
        self.counted_from, self.counted_until = counted_from, counted_until
        self.classes: defaultdict[str, ClassTally] = defaultdict(ClassTally)
        self.deployments: defaultdict[str, DeploymentTally] = defaultdict(DeploymentTally)
        self.buckets: dict[str, BucketTally] = {}
        self.errors: Counter[str] = Counter()  # what clients saw, "status code"
        self.fallbacks: Counter[str] = Counter()  # why a request left its plan's first choice
        self.circuits: list[tuple[float, str, str]] = []  # (time, deployment, new state)
        self.upstream_429 = 0

    def counts(self, arrived: float) -> bool:
        """Whether a workflow that arrived then is counted (the capacity search leaves its warm-up out)."""
        return self.counted_from <= arrived < self.counted_until

    def of(self, cls: str) -> ClassTally:
        return self.classes[cls]

    def deployment(self, deployment: str) -> DeploymentTally:
        return self.deployments[deployment]

    # What the watched limiter sees.

    def requested(self, buckets: tuple[BucketSpec, ...], at: float, sign: float = 1.0) -> bool:
        """One request (``sign`` -1: given back) on each request bucket; token buckets are only registered.
        Whether any token bucket was charged (the reservation holds tokens until it is settled)."""
        i = int(at / self.bin)
        tallies = self.buckets
        holds = False
        for b in buckets:
            tally = tallies.get(b.name)
            if tally is None:
                tally = tallies[b.name] = BucketTally(b.capacity, b.kind)
            if b.kind == "requests":
                tally.charged[i] += sign
            elif b.cost:
                holds = True
        return holds

    def used(self, buckets: tuple[BucketSpec, ...], returned: Sequence[tuple[BucketSpec, float]], at: float) -> None:
        """Tokens a settled request used, on each token bucket (registered when it was admitted), in the time
        bin it was admitted in: what it held, less what settling gave back (``returned``, by the limiter)."""
        i = int(at / self.bin)
        tallies = self.buckets
        for b in buckets:
            if b.kind == "tokens":
                kept = b.cost
                for r, back in returned:  # a bucket or two: no dict made for them
                    if r.name == b.name:
                        kept = b.cost - back
                tallies[b.name].charged[i] += kept

    def full(self, deployment: str, now: float) -> None:
        d = self.deployments[deployment]
        if d.first_full is None:
            d.first_full = now
        d.full_bins.add(int(now / self.bin))

    def cooldown(self, deployment: str) -> None:
        self.deployments[deployment].cooldowns += 1

    # What the modelled providers and the circuit breaker see.

    def attempt(self, deployment: str, error: UpstreamError | None, trace: Trace) -> None:
        result = "ok" if error is None else outcome(error)
        trace.attempts.append((deployment, result))
        if not trace.counted:
            return
        self.deployments[deployment].attempts[result] += 1
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
        c = self.classes[trace.cls]
        c.cost += cost
        c.latency.append(now - trace.arrived)
        if ttft is not None:
            c.ttft.append(ttft)
        c.wait.append(trace.admitted - trace.arrived)
        d = self.deployments[deployment.id]
        d.answered[int(now / self.bin)] += 1
        d.prompt += usage.prompt
        d.completion += usage.completion
        d.cost += cost
        if trace.passed or trace.circuit_open or len(trace.attempts) > 1:  # not the first choice's first try
            self._fallbacks(trace, deployment.id)

    def refused(self, trace: Trace, error: GatewayError, now: float) -> None:
        """A request that failed (the error says why: no fallbacks are counted)."""
        if not trace.counted:
            return
        self.errors[f"{error.status} {error.code or type(error).__name__}"] += 1
        self.classes[trace.cls].wait.append((trace.admitted if trace.admitted >= 0 else now) - trace.arrived)

    def _fallbacks(self, trace: Trace, served: str) -> None:
        """Each move away from a deployment, with the reason: admission passed it over (its bucket full, or
        cooling down after the provider's 429), the plan left it out (circuit open), or an attempt on it
        failed and the request went on to another."""
        for deployment, why in trace.passed.items():
            if deployment != served:
                self.fallbacks[why] += 1
        if trace.circuit_open:
            self.fallbacks["circuit open"] += trace.circuit_open
        attempts = trace.attempts
        for i, (deployment, result) in enumerate(attempts):
            after = attempts[i + 1][0] if i + 1 < len(attempts) else served
            if result != "ok" and after != deployment:
                self.fallbacks[f"after {result}"] += 1

    def workflow(self, cls: str, counted: bool, completed: bool, cost: float) -> None:
        """A workflow's end (``counted``: it arrived inside the counted window, as ``counts`` tells)."""
        if not counted:
            return
        c = self.classes[cls]
        c.workflows += 1
        if completed:
            c.completed += 1
            c.workflow_cost += cost
