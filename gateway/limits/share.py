"""A share of every limit, for limiters that count alone what several processes spend together.

In-process buckets are per worker process: with ``server.workers: N`` and no Redis, N workers would each
admit the whole limit. ``WorkerShare`` gives each one 1/N of every capacity and refill (connections are
spread over the workers by the kernel, so together they stay near the limit). The degraded mode of the
Redis limiter divides the same way by the number of live replicas (see ``resilient.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from gateway.limits.local import LocalLimiter
from gateway.limits.model import Admission, BucketSpec, BucketState, Budget, Candidate, Reservation, Strategy


def scaled(bucket: BucketSpec, divisor: int) -> BucketSpec:
    """This process's share of a bucket while each one limits on its own."""
    return replace(bucket, capacity=bucket.capacity / divisor, refill_per_sec=bucket.refill_per_sec / divisor)


class WorkerShare:
    """A ``LocalLimiter`` enforcing 1/``workers`` of every limit; the ``Limiter`` contract otherwise."""

    mode = "local"

    def __init__(self, workers: int, local: LocalLimiter | None = None) -> None:
        if workers < 1:
            raise ValueError(f"workers must be at least 1, not {workers}")
        self.workers = workers
        self.local = local or LocalLimiter()

    def _share(self, buckets: Sequence[BucketSpec]) -> tuple[BucketSpec, ...]:
        return tuple(scaled(b, self.workers) for b in buckets)

    async def admit(
        self,
        candidates: Sequence[Candidate],
        quotas: Sequence[BucketSpec],
        strategy: Strategy = "first",
        budgets: Sequence[Budget] = (),
    ) -> Admission:
        shares = [replace(c, buckets=self._share(c.buckets)) for c in candidates]
        caps = [replace(b, cap=b.cap / self.workers) for b in budgets]
        admission = await self.local.admit(shares, self._share(quotas), strategy, caps)
        # The caller's x-ratelimit-* headers speak of its whole quota: this worker's share, scaled back
        # up (as if the other workers were as busy), so the limit shown is the configured one; so is a
        # budget's spend.
        whole = tuple(
            BucketState(s.name, s.kind, s.limit * self.workers, s.remaining * self.workers, s.reset_seconds)
            for s in admission.quota
        )
        return replace(admission, quota=whole, spent=tuple(s * self.workers for s in admission.spent))

    async def settle(
        self, reservation: Reservation, actual_tokens: int | None, actual_cost: float | None = None
    ) -> None:
        # The reservation names the shares admit charged (costs are never scaled: a request costs the
        # worker that served it all of its tokens, and all of its price).
        await self.local.settle(reservation, actual_tokens, actual_cost)

    async def cooldown(
        self, deployment_id: str, account: str | None, seconds: float, drain: Sequence[BucketSpec] = ()
    ) -> None:
        await self.local.cooldown(deployment_id, account, seconds, self._share(drain))

    async def cooldowns(self, ids: Sequence[str]) -> dict[str, float]:
        return await self.local.cooldowns(ids)

    async def correct(self, bucket: BucketSpec, remaining: float) -> None:
        await self.local.correct(scaled(bucket, self.workers), remaining / self.workers)

    async def levels(self, buckets: Sequence[BucketSpec]) -> list[float]:
        """Levels of this worker's shares (for tests and admin views)."""
        return await self.local.levels(self._share(buckets))

    async def start(self) -> None:
        await self.local.start()

    async def close(self) -> None:
        await self.local.close()
