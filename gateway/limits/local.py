"""Token buckets in this process: the single-replica default and the fallback while Redis is down.

Decisions contain no ``await``, so each one is atomic under asyncio, as a Lua script is in Redis.

The table is bounded (``max_buckets``): end users are chosen by clients, and a flood of distinct ones
must not grow memory without end. Over the bound, one bucket is evicted per new one: of the oldest
few, the one soonest full again (an evicted bucket reads as full, so that one loses the least); the
others go to the back of the line, so long-lived busy buckets (an account's) keep their levels.

Budget counters (spend per calendar window) are kept beside the buckets, as many at most, until a day
after their window ends (wall-clock time); over the bound the oldest counter is forgotten, which only a
flood of distinct end users with budgets can cause.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

from gateway.errors import bounded_seconds
from gateway.limits.base import Immediate
from gateway.limits.decide import (
    MAX_COOLDOWN_SECONDS,
    alert_level,
    budget_refunds,
    budget_take,
    decide,
    idle_ttl,
    refunds,
    reserved,
    skipped,
    state,
)
from gateway.limits.model import BUDGET_KEPT_SECONDS, Admission, BucketSpec, Budget, Candidate, Reservation, Strategy

MAX_BUCKETS = 50_000  # about 10 MB of levels; far above the accounts, keys and active end users of a replica
_EVICTION_SAMPLE = 8


@dataclass(slots=True)
class _Level:
    level: float
    at: float  # clock time of ``level``
    expires: float  # after this the bucket is full again and may be forgotten


@dataclass(slots=True)
class _Spent:
    usd: float
    reached: int  # alert level already reported in this window (decide.ALERTS)
    expires: float  # Unix time: a day after the window ends


def _not_cooling(candidate: Candidate) -> float:
    return 0.0


def _level(held: dict[str, _Level], now: float, bucket: BucketSpec) -> float:
    """The bucket's level at ``now`` (negative = debt); a bucket not held, or expired, is full. An admission
    reads through ``partial(_level, held, now)``: one call per bucket, no bound method or keyword."""
    capacity = bucket.capacity
    entry = held.get(bucket.name)
    if entry is None or entry.expires <= now:
        return capacity
    elapsed = now - entry.at
    level = entry.level + (elapsed if elapsed > 0.0 else 0.0) * bucket.refill_per_sec
    return level if level < capacity else capacity


class LocalLimiter(Immediate):
    mode = "local"

    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        sweep_every: float = 30.0,
        max_buckets: int = MAX_BUCKETS,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self._clock = clock
        self._wall = wall  # budget windows are calendar time
        self._budgets: dict[str, _Spent] = {}  # counter ("key:a:day:2026-12-01") -> spend
        self._sweep_every = sweep_every
        self._max_buckets = max_buckets
        self._next_sweep = clock() + sweep_every
        self._buckets: dict[str, _Level] = {}
        self._cooldowns: dict[str, float] = {}  # "dep:<id>" | "acct:<account>" -> expiry

    def level(self, bucket: BucketSpec, now: float | None = None) -> float:
        return _level(self._buckets, self._clock() if now is None else now, bucket)

    async def levels(self, buckets: Sequence[BucketSpec]) -> list[float]:
        """Current levels (negative = debt), for admin views and tests; not part of ``Limiter``."""
        now = self._clock()
        return [self.level(b, now) for b in buckets]

    def __len__(self) -> int:
        """Buckets and cooldowns held in memory (for eviction tests)."""
        return len(self._buckets) + len(self._cooldowns)

    def admit_now(
        self,
        candidates: Sequence[Candidate],
        quotas: Sequence[BucketSpec],
        strategy: Strategy = "first",
        budgets: Sequence[Budget] = (),
    ) -> Admission:
        """``admit`` as a plain call (``base.Immediate``): nothing here waits."""
        now = self._clock()
        if now >= self._next_sweep:
            self._sweep(now)
        level = partial(_level, self._buckets, now)
        decision = decide(
            candidates,
            quotas,
            strategy,
            level=level,
            # Nothing cooling down (the usual case) is answered without asking per candidate.
            cooldown=partial(self._cooling, now=now) if self._cooldowns else _not_cooling,
            budgets=budgets,
            spent=self.spent,
        )
        chosen = decision.chosen
        reservation = None
        took: list[float] = []
        if chosen is not None:
            charged = reserved((*candidates[chosen].buckets, *quotas))
            for bucket in charged:  # each cost as admission takes it (``need``)
                self._store(bucket, level(bucket) - bucket.cost, now)
            if budgets:
                cost = candidates[chosen].usd
                took = [budget_take(self.spent(b), b.cap, cost) for b in budgets]
            reservation = Reservation(charged, tuple(zip(budgets, took, strict=True)) if budgets else ())
        alerts = self._record_spend(budgets, took) if budgets else ()
        return Admission(
            chosen=chosen,
            retry_after=decision.retry_after,
            quota=tuple([state(q, level(q)) for q in quotas]) if quotas else (),
            skipped=skipped(candidates, decision.skip_codes) if decision.skip_codes else (),
            reservation=reservation,
            blocked_by_quota=decision.blocked_by_quota,
            over_budget=decision.over_budget,
            spent=tuple([self.spent(b) for b in budgets]) if budgets else (),
            alerts=alerts,
        )

    def _record_spend(self, budgets: Sequence[Budget], took: list[float]) -> tuple[tuple[int, int, int], ...]:
        """Add what an admission took to each budget's spend (``took`` is empty when nothing was admitted) and
        raise its alert level, written together as admit_v7.lua does; the alerts newly reached."""
        alerts = []
        for j, budget in enumerate(budgets):
            taken = took[j] if took else 0.0
            usd = self.spent(budget) + taken
            reached = alert_level(usd, budget.cap)
            old = self._budgets.get(budget.counter)
            before = 0 if old is None else old.reached
            raised = reached > before
            if raised:
                alerts.append((j, before, reached))
            if raised or taken > 0:
                entry = self._counter(budget)
                entry.usd, entry.reached = usd, max(entry.reached, reached)
        return tuple(alerts)

    def spent(self, budget: Budget) -> float:
        """The budget's spend in its window so far (USD, reservations included)."""
        entry = self._budgets.get(budget.counter)
        return 0.0 if entry is None else entry.usd

    async def budget_spend(self, budgets: Sequence[Budget]) -> list[float]:
        """Spend per budget (for admin views and tests; not part of ``Limiter``)."""
        return [self.spent(b) for b in budgets]

    def add_spend(self, changes: Sequence[tuple[Budget, float]]) -> None:
        """Add each amount to its budget's spend, which never goes below 0."""
        for budget, delta in changes:
            entry = self._counter(budget)
            entry.usd = max(0.0, entry.usd + delta)

    def forget_spend(self) -> None:
        """Drop every budget counter (the degraded mode's local shares, once Redis holds the spend again)."""
        self._budgets.clear()

    def settle_now(
        self, reservation: Reservation, actual_tokens: int | None, actual_cost: float | None = None
    ) -> list[tuple[BucketSpec, float]]:
        """``settle`` as a plain call (``base.Immediate``); what it gave back per bucket (``decide.refunds``)."""
        changes = refunds(reservation, actual_tokens)
        self._apply(changes)
        if reservation.budgets:
            self.add_spend(budget_refunds(reservation, actual_tokens, actual_cost))
        return changes

    async def apply(self, changes: Sequence[tuple[BucketSpec, float]]) -> None:
        """Add each delta to its bucket (negative = charge), capped at capacity."""
        self._apply(changes)

    def _apply(self, changes: Sequence[tuple[BucketSpec, float]]) -> None:
        if not changes:
            return
        now = self._clock()
        held = self._buckets
        for bucket, delta in changes:
            self._store(bucket, _level(held, now, bucket) + delta, now)  # at capacity or over: full

    async def cooldown(
        self, deployment_id: str, account: str | None, seconds: float, drain: Sequence[BucketSpec] = ()
    ) -> None:
        now = self._clock()
        until = now + bounded_seconds(seconds, MAX_COOLDOWN_SECONDS)
        keys = [f"dep:{deployment_id}"] + ([f"acct:{account}"] if account else [])
        for key in keys:
            self._cooldowns[key] = max(self._cooldowns.get(key, 0.0), until)
        for bucket in drain:
            self._store(bucket, min(0.0, self.level(bucket, now)), now)

    async def cooldowns(self, ids: Sequence[str]) -> dict[str, float]:
        now = self._clock()
        return {i: self._candidate_cooling(i, i.partition("/")[0], now) for i in ids}

    async def correct(self, bucket: BucketSpec, remaining: float) -> None:
        now = self._clock()
        if remaining < self.level(bucket, now):
            self._store(bucket, remaining, now)

    def restart(self, levels: Sequence[tuple[BucketSpec, float, float]]) -> None:
        """Forget every bucket, then hold each of ``levels``: (bucket, level, this limiter's clock time of that
        level, from which it refills). Where a degraded replica's shares start (``ResilientLimiter``)."""
        self._buckets.clear()
        for bucket, level, at in levels:
            self._store(bucket, level, at)

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        self._buckets.clear()
        self._cooldowns.clear()
        self._budgets.clear()

    def _counter(self, budget: Budget) -> _Spent:
        entry = self._budgets.get(budget.counter)
        if entry is None:
            if len(self._budgets) >= self._max_buckets:
                del self._budgets[next(iter(self._budgets))]
            entry = self._budgets[budget.counter] = _Spent(0.0, 0, budget.ends + BUDGET_KEPT_SECONDS)
        return entry

    def _cooling(self, candidate: Candidate, now: float) -> float:
        return self._candidate_cooling(candidate.id, candidate.account, now)

    def _candidate_cooling(self, deployment_id: str, account: str, now: float) -> float:
        until = self._cooldowns.get(f"dep:{deployment_id}", now)
        return max(0.0, until - now, self._cooldowns.get(f"acct:{account}", now) - now)

    def _store(self, bucket: BucketSpec, level: float, now: float) -> None:
        if level >= bucket.capacity:
            self._buckets.pop(bucket.name, None)  # full reads the same as absent
            return
        entry = self._buckets.get(bucket.name)
        if entry is None:
            if len(self._buckets) >= self._max_buckets:
                self._evict_one()
            self._buckets[bucket.name] = _Level(level, now, now + idle_ttl(bucket, level))
        else:
            entry.level, entry.at, entry.expires = level, now, now + idle_ttl(bucket, level)

    def _evict_one(self) -> None:
        sample = list(itertools.islice(self._buckets.items(), _EVICTION_SAMPLE))
        victim = min(sample, key=lambda item: item[1].expires)[0]
        for name, entry in sample:
            del self._buckets[name]
            if name != victim:
                self._buckets[name] = entry

    def _sweep(self, now: float) -> None:
        """Forget buckets that have refilled and cooldowns that ended; amortised over many admits."""
        if now < self._next_sweep:
            return
        self._next_sweep = now + self._sweep_every
        self._buckets = {k: v for k, v in self._buckets.items() if v.expires > now}
        self._cooldowns = {k: v for k, v in self._cooldowns.items() if v > now}
        wall = self._wall()
        self._budgets = {k: v for k, v in self._budgets.items() if v.expires > wall}
