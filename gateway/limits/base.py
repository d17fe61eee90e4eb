"""The one contract every limiter implements (Redis, in-process, and the resilient wrapper).

Semantics shared by all of them:

- ``admit`` is one atomic step: every quota bucket needs room, then the first candidate (or the one with
  the most relative headroom) that is not cooling down and has room in all its buckets is chosen, and the
  cost is taken from its buckets and the quotas together, all or nothing.
- A bucket has room when ``level >= cost``, or when it is full and the cost exceeds its capacity (the
  request then takes the whole bucket, leaving it empty: admission never puts a bucket in debt, and the
  reservation records what was taken). Levels refill continuously up to the capacity.
- ``settle`` reconciles token buckets with actual usage, which may leave a bucket in debt by up to one
  capacity (the provider really used it); ``settle(r, None)`` gives everything back.
- Budgets (spend caps per calendar window) are checked and charged in the same atomic step as the
  buckets (``decide`` says how); ``settle`` reconciles what a request took from each with its actual
  cost, and keeps it when the cost is unknown.
- No number a caller passes (costs, usage, cooldown seconds) can make a Redis key's TTL overflow: TTLs and
  cooldowns are capped (``decide.MAX_TTL_SECONDS``, ``decide.MAX_COOLDOWN_SECONDS``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from gateway.limits.model import Admission, BucketSpec, Budget, Candidate, Reservation, Strategy


class Limiter(Protocol):
    mode: str  # "redis" | "local" | "degraded"

    async def admit(
        self,
        candidates: Sequence[Candidate],
        quotas: Sequence[BucketSpec],
        strategy: Strategy = "first",
        budgets: Sequence[Budget] = (),
    ) -> Admission: ...

    async def settle(
        self, reservation: Reservation, actual_tokens: int | None, actual_cost: float | None = None
    ) -> None:
        """Give back (reserved − actual) tokens, or charge the excess; None gives back everything. Budgets
        are settled to ``actual_cost`` (USD) when it is known, and keep what they took when it is not."""
        ...

    async def cooldown(
        self, deployment_id: str, account: str | None, seconds: float, drain: Sequence[BucketSpec] = ()
    ) -> None:
        """Cool a deployment (and its whole account when given) down; extends, never shortens."""
        ...

    async def cooldowns(self, ids: Sequence[str]) -> dict[str, float]:
        """Remaining seconds per deployment id, its account's cooldown included (0 = none)."""
        ...

    async def correct(self, bucket: BucketSpec, remaining: float) -> None:
        """Lower the bucket's level to at most ``remaining`` (the provider says so); never raise it."""
        ...

    async def start(self) -> None: ...

    async def close(self) -> None: ...


@runtime_checkable
class Immediate(Protocol):
    """What a limiter that decides in this process (no I/O: ``LocalLimiter``) offers beside ``Limiter``:
    ``admit`` and ``settle`` as plain calls, which the admission step makes without a coroutine per request.
    Limiters that wait on a network (Redis) do not offer it. One that subclasses this gets ``Limiter``'s
    ``admit`` and ``settle`` from the plain calls."""

    def admit_now(
        self,
        candidates: Sequence[Candidate],
        quotas: Sequence[BucketSpec],
        strategy: Strategy = "first",
        budgets: Sequence[Budget] = (),
    ) -> Admission: ...

    def settle_now(
        self, reservation: Reservation, actual_tokens: int | None, actual_cost: float | None = None
    ) -> list[tuple[BucketSpec, float]]:
        """``settle``; what it gave back per bucket (negative = charged), as ``decide.refunds`` says."""
        ...

    async def admit(
        self,
        candidates: Sequence[Candidate],
        quotas: Sequence[BucketSpec],
        strategy: Strategy = "first",
        budgets: Sequence[Budget] = (),
    ) -> Admission:
        return self.admit_now(candidates, quotas, strategy, budgets)

    async def settle(
        self, reservation: Reservation, actual_tokens: int | None, actual_cost: float | None = None
    ) -> None:
        self.settle_now(reservation, actual_tokens, actual_cost)
