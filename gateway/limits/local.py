"""Token buckets in this process: the single-replica default and the fallback while Redis is down.

Decisions contain no ``await``, so each one is atomic under asyncio, as a Lua script is in Redis.

The table is bounded (``max_buckets``): end users are chosen by clients, and a flood of distinct ones
must not grow memory without end. Over the bound, one bucket is evicted per new one: of the oldest
few, the one soonest full again (an evicted bucket reads as full, so that one loses the least); the
others go to the back of the line, so long-lived busy buckets (an account's) keep their levels.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from gateway.errors import bounded_seconds
from gateway.limits.decide import (
    MAX_COOLDOWN_SECONDS,
    decide,
    idle_ttl,
    need,
    refunds,
    reserved,
    skipped,
    state,
)
from gateway.limits.model import Admission, BucketSpec, Candidate, Reservation, Strategy

MAX_BUCKETS = 50_000  # about 10 MB of levels; far above the accounts, keys and active end users of a replica
_EVICTION_SAMPLE = 8


@dataclass(slots=True)
class _Level:
    level: float
    at: float  # clock time of ``level``
    expires: float  # after this the bucket is full again and may be forgotten


class LocalLimiter:
    mode = "local"

    def __init__(
        self, clock: Callable[[], float] = time.monotonic, sweep_every: float = 30.0, max_buckets: int = MAX_BUCKETS
    ) -> None:
        self._clock = clock
        self._sweep_every = sweep_every
        self._max_buckets = max_buckets
        self._next_sweep = clock() + sweep_every
        self._buckets: dict[str, _Level] = {}
        self._cooldowns: dict[str, float] = {}  # "dep:<id>" | "acct:<account>" -> expiry

    def level(self, bucket: BucketSpec, now: float | None = None) -> float:
        now = self._clock() if now is None else now
        entry = self._buckets.get(bucket.name)
        if entry is None or entry.expires <= now:
            return bucket.capacity
        return min(bucket.capacity, entry.level + max(0.0, now - entry.at) * bucket.refill_per_sec)

    async def levels(self, buckets: Sequence[BucketSpec]) -> list[float]:
        """Current levels (negative = debt), for admin views and tests; not part of ``Limiter``."""
        now = self._clock()
        return [self.level(b, now) for b in buckets]

    def __len__(self) -> int:
        """Buckets and cooldowns held in memory (for eviction tests)."""
        return len(self._buckets) + len(self._cooldowns)

    async def admit(
        self, candidates: Sequence[Candidate], quotas: Sequence[BucketSpec], strategy: Strategy = "first"
    ) -> Admission:
        now = self._clock()
        self._sweep(now)
        decision = decide(
            candidates,
            quotas,
            strategy,
            level=lambda b: self.level(b, now),
            cooldown=lambda c: self._candidate_cooling(c.id, c.account, now),
        )
        reservation = None
        if decision.chosen is not None:
            charged = (*candidates[decision.chosen].buckets, *quotas)
            for bucket in charged:
                self._store(bucket, self.level(bucket, now) - need(bucket), now)
            reservation = Reservation(reserved(charged))
        return Admission(
            chosen=decision.chosen,
            retry_after=decision.retry_after,
            quota=tuple(state(q, self.level(q, now)) for q in quotas),
            skipped=skipped(candidates, decision.skip_codes),
            reservation=reservation,
            blocked_by_quota=decision.blocked_by_quota,
        )

    async def settle(self, reservation: Reservation, actual_tokens: int | None) -> None:
        await self.apply(refunds(reservation, actual_tokens))

    async def apply(self, changes: Sequence[tuple[BucketSpec, float]]) -> None:
        """Add each delta to its bucket (negative = charge), capped at capacity."""
        now = self._clock()
        for bucket, delta in changes:
            self._store(bucket, min(bucket.capacity, self.level(bucket, now) + delta), now)

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

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        self._buckets.clear()
        self._cooldowns.clear()

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
