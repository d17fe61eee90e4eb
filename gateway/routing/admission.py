"""The walk's admission step: the limiter, the waiting line, cooldowns and the provider's own counts.

``admit`` reserves on the first deployment with room (or the one with most headroom), charging the
caller's quotas in the same atomic step; when none has room the request waits in line for the refill
(arrival order, per model) up to ``limits.queue_timeout_seconds``, or is told at once when the wait
could not end in time: a 429 whose Retry-After comes from the buckets (capped at
``limits.max_retry_after_seconds``), counted in ``gateway_throttled_total`` by reason.

Budgets ride on the same atomic step (one round trip): the request reserves its maximum cost on the
deployment it is admitted on (``spend.pricing.max_cost``) against every budget it touches
(``spend.books``), and settles with its actual cost when it ends. A budget without room is a 429
``budget_exceeded`` at once: waiting could not help before its window ends.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine, Mapping, Sequence
from typing import Any, Final

from gateway import failures
from gateway.config.model import Account, Deployment, LimitSettings
from gateway.errors import (
    RateLimited,
    ServiceUnavailable,
    UpstreamConnection,
    UpstreamError,
    UpstreamPoolExhausted,
    UpstreamStatus,
    bounded_seconds,
)
from gateway.limits import Limiter, specs
from gateway.limits.base import Immediate
from gateway.limits.model import Admission, Budget, Reservation, Strategy
from gateway.limits.queue import WaitLine
from gateway.metrics import Metrics
from gateway.providers.base import Provider
from gateway.record import RequestRecord
from gateway.routing.steps import Demand
from gateway.spend.books import Books
from gateway.spend.pricing import max_cost

DEFAULT_COOLDOWN = 5.0  # seconds, when a provider's 429 names no Retry-After
LOW: Final = 0.1  # a provider's remaining capacity under this share of our bucket corrects the bucket


class Admitter:
    def __init__(
        self,
        limiter: Limiter,
        wait_line: WaitLine,
        accounts: Mapping[str, tuple[Account, Provider]],
        limits: LimitSettings,
        metrics: Metrics,
        spawn: Callable[[Coroutine[Any, Any, None]], None],
        books: Books | None = None,
    ) -> None:
        self._books = books  # None: no spend is kept (the simulator)
        self._limiter = limiter
        # A limiter deciding in this process answers with plain calls: no coroutine of its own per request.
        self._immediate = limiter if isinstance(limiter, Immediate) else None
        self._line = wait_line
        self._accounts = accounts
        self._limits = limits
        self._metrics = metrics
        self._spawn = spawn  # background work after the answer (correcting a bucket costs a round trip)
        # each deployment's buckets (``specs.shape``) by id, with the deployment they were made for
        self._shapes: dict[str, tuple[Deployment, specs.Shape]] = {}

    def _shape(self, deployment: Deployment) -> specs.Shape:
        known = self._shapes.get(deployment.id)
        if known is None or known[0] is not deployment:
            known = self._shapes[deployment.id] = (
                deployment,
                specs.shape(self._accounts[deployment.account][0], deployment),
            )
        return known[1]

    async def admit(
        self,
        record: RequestRecord,
        deployments: Sequence[Deployment],
        demand: Demand,
        strategy: Strategy = "first",
        may_wait: bool = True,
    ) -> Admission | None:
        limiter = self._limiter
        books = self._books
        budgets = () if books is None else books.touched(record.key_name, record.tier, record.end_user)
        tokens, shape = demand.tokens, self._shape
        if budgets:
            output = tokens - demand.prompt
            candidates = [shape(d).candidate(tokens, max_cost(d.price, demand.prompt, output)) for d in deployments]
        else:
            candidates = [shape(d).candidate(tokens) for d in deployments]
        budget = self._limits.queue_timeout_seconds if may_wait else 0.0
        deadline = time.monotonic() + budget
        try:
            if not self._line.busy(demand.group) or not may_wait:
                if self._immediate is not None:
                    admission = self._immediate.admit_now(candidates, demand.quotas, strategy, budgets)
                else:
                    admission = await limiter.admit(candidates, demand.quotas, strategy, budgets)
                if self._settled(record, admission, budget, may_wait, budgets):
                    return admission
                if not may_wait:
                    return None
            waited = time.monotonic()
            async with self._line.turn(demand.group):
                while True:
                    admission = await limiter.admit(candidates, demand.quotas, strategy, budgets)
                    if self._settled(record, admission, deadline - time.monotonic(), True, budgets):
                        self._metrics.queue_wait.observe(time.monotonic() - waited)
                        return admission
                    await asyncio.sleep(admission.retry_after)
        except ServiceUnavailable:  # the caller's quotas cannot be checked (Redis down, fail_mode closed)
            self._metrics.throttled.labels("limiter_unavailable").inc()
            raise

    def _settled(
        self, record: RequestRecord, admission: Admission, budget: float, final: bool, budgets: Sequence[Budget] = ()
    ) -> bool:
        """True when admitted; raises when waiting cannot help; False when it is worth waiting. A bucket a
        provider drove far into debt must not say "come back next year": Retry-After is capped (a budget's
        says when its window ends)."""
        if admission.quota:
            record.extra_headers.update(specs.ratelimit_headers(admission.quota))
        if budgets and self._books is not None:
            self._books.observe(budgets, admission)
            if admission.over_budget is not None:
                self._metrics.throttled.labels("budget").inc()
                raise self._books.refusal(budgets[admission.over_budget])
        if admission.chosen is not None:
            return True
        cap = self._limits.max_retry_after_seconds
        if admission.blocked_by_quota:
            self._metrics.throttled.labels("key_quota").inc()
            retry_after = bounded_seconds(admission.retry_after, cap)
            raise RateLimited("this key's rate limit is exhausted", retry_after=retry_after)
        if final and admission.retry_after > budget:
            self._metrics.throttled.labels("capacity").inc()
            reasons = ", ".join(f"{d}: {why}" for d, why in admission.skipped)
            raise RateLimited(
                f"no deployment has capacity right now ({reasons})",
                retry_after=bounded_seconds(admission.retry_after, cap),
                code="capacity_exhausted",
            )
        return False

    async def give_back(self, reservation: Reservation | None, used: int | None) -> None:
        """Settle an attempt that produced no answer: nothing used (None: never sent) costs nothing."""
        if reservation is None:
            return
        cost = 0.0 if used == 0 else None
        if self._immediate is not None:
            self._immediate.settle_now(reservation, used, cost)
        else:
            await self._limiter.settle(reservation, used, cost)

    async def failed(self, deployment: Deployment, reservation: Reservation | None, error: UpstreamError) -> None:
        """Give back what the failed attempt did not use; a provider out of room (a 429, Anthropic's 529:
        ``failures.cools_down``) cools the deployment for everyone (``insufficient_quota``: the whole
        account), for the provider's Retry-After, capped."""
        if isinstance(error, UpstreamStatus) and failures.cools_down(error):
            account = self._accounts[deployment.account][0]
            whole_account = error.code == "insufficient_quota"
            seconds = bounded_seconds(error.retry_after or DEFAULT_COOLDOWN, self._limits.max_retry_after_seconds)
            await self._limiter.cooldown(
                deployment.id,
                account.name if whole_account else None,
                seconds,
                drain=specs.deployment_buckets(account, deployment),
            )
        # A connection that never opened (or never came free) cost the provider nothing; anything else counted.
        never_sent = isinstance(error, UpstreamPoolExhausted) or (
            isinstance(error, UpstreamConnection) and error.code == "upstream_connect_failed"
        )
        await self.give_back(reservation, None if never_sent else 0)

    async def another_try(self, deployment: Deployment) -> bool:
        """A same-deployment retry is another request to the provider: one more from its request buckets
        (its tokens ride on the original reservation, which is settled with actual usage)."""
        admission = await self._limiter.admit([self._shape(deployment).candidate(0)], ())
        return admission.chosen is not None

    def observe(self, deployment: Deployment, headers: Mapping[str, str]) -> None:
        """Lower our bucket when the provider says it is nearly out. Correcting costs a Redis round trip, so it
        is done only then (our bucket may be optimistic: another client may share the account); in normal
        operation requests stay at two round trips."""
        reported = self._accounts[deployment.account][1].rate_limits(headers)
        if not reported:
            return
        for bucket in self._shape(deployment).reported:
            remaining = reported.get(bucket.kind)
            if remaining is not None and remaining < LOW * bucket.capacity:
                self._spawn(self._limiter.correct(bucket, remaining))
