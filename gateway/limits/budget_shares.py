"""Budgets while Redis is unreachable (the resilient limiter's degraded mode).

Each replica remembers the spend Redis last reported for every budget it admitted on (``saw``). While
degraded, a budget whose last known spend has reached its cap refuses for certain; any other may spend,
in this process, its remaining room divided by the live replicas (``shares``), counted in the local
limiter. Whatever a request costs (or keeps reserved) while Redis is away is owed to Redis (``owe``) and
added to its counters when Redis answers again, as are reconciliations Redis could not take: spend is
never lost, unless a replica stops while Redis is still down. A batch whose call failed is resent as it
was, under its sequence number (``failed``): the failed call may still have run, and Redis applies a
replica's batch once (``settle_v3.lua``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from gateway.limits.model import Budget, Reservation

MAX_COUNTERS = 50_000  # as the local limiter's table: end users are chosen by clients


@dataclass(slots=True)
class _Owed:
    budget: Budget
    usd: float  # added to in place: every settled request with budgets adds to it


class BudgetShares:
    def __init__(self, max_counters: int = MAX_COUNTERS) -> None:
        self._max = max_counters
        self._seen: dict[str, float] = {}  # counter -> spend Redis last reported
        self._owed: dict[str, _Owed] = {}  # counter -> USD to add to Redis
        self._failed: list[tuple[int, list[tuple[Budget, float]]]] = []  # (seq, batch) to resend, in order
        self._seq = 0

    def saw(self, budgets: Sequence[Budget], spent: Sequence[float]) -> None:
        """What Redis reported after an admission (every request that touches budgets: kept cheap)."""
        seen = self._seen
        if len(seen) >= self._max:  # a flood of end users: start over rather than track it
            seen = self._seen = {}
        for budget, usd in zip(budgets, spent, strict=True):  # a plain loop: a third of update(zip(...))'s time
            seen[budget.counter] = usd

    def seen(self, budget: Budget) -> float:
        return self._seen.get(budget.counter, 0.0)

    def shares(self, budgets: Sequence[Budget], replicas: int) -> tuple[list[Budget], int | None]:
        """This replica's share of each budget, or the index of one that is over for certain."""
        found = []
        for j, budget in enumerate(budgets):
            seen = self.seen(budget)
            if seen >= budget.cap:
                return [], j
            found.append(replace(budget, cap=(budget.cap - seen) / max(1, replicas)))
        return found, None

    def owe(self, changes: Sequence[tuple[Budget, float]]) -> None:
        """Add to what is owed (every settled request with budgets: kept cheap)."""
        owed = self._owed
        for budget, usd in changes:
            if usd:
                queued = owed.get(budget.counter)
                if queued is None:
                    owed[budget.counter] = _Owed(budget, usd)
                else:
                    queued.usd += usd

    def owe_settled(self, reserved: Sequence[tuple[Budget, float]], cost: float) -> None:
        """``owe(decide.budget_refunds(...))`` for a request whose actual cost is known (the usual settlement):
        each budget's spend moves from what it took to that cost."""
        used = cost if cost > 0 else 0.0
        self.owe([(budget, used - took) for budget, took in reserved])

    def take(self) -> tuple[int, list[tuple[Budget, float]]]:
        """What is owed, as the next batch (its sequence number, its amounts); (0, []) when nothing is."""
        if not self._owed:
            return 0, []
        owed, self._owed = [(o.budget, o.usd) for o in self._owed.values()], {}
        self._seq += 1
        return self._seq, owed

    def failed(self, seq: int, batch: list[tuple[Budget, float]]) -> None:
        """A batch whose call failed: resent, as it is, before anything newer."""
        self._failed.append((seq, batch))

    def resend(self) -> list[tuple[int, list[tuple[Budget, float]]]]:
        failed, self._failed = self._failed, []
        return failed

    @property
    def owing(self) -> bool:
        return bool(self._owed or self._failed)


def spent_by(reservation: Reservation, actual_tokens: int | None, cost: float | None) -> list[tuple[Budget, float]]:
    """What a request admitted on local shares spent, per budget, for Redis (which never saw its
    reservation): nothing when it never reached the provider, its cost when known, else what it took."""
    if actual_tokens is None:
        return []
    return [(b, took if cost is None else max(0.0, cost)) for b, took in reservation.budgets]
