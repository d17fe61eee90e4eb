"""What requests admitted on local shares owe Redis's provider buckets (the resilient limiter's degraded mode).

The provider counted them, so Redis must too once it answers: the usage of those that settled while it was
away (``decide.carried``), and the reservations of those still running when it answers again (``send``).
Those then settle as Redis's own reservations, a refund rather than a charge (``settle``). Budgets have the
same bookkeeping of their own (``budget_shares``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from gateway.limits.decide import carried
from gateway.limits.model import BucketSpec, Reservation

MAX_OPEN = 10_000  # degraded admissions followed until they settle; beyond, the oldest settle as a charge

Changes = list[tuple[BucketSpec, float]]


def queue(queued: dict[str, tuple[BucketSpec, float]], changes: Sequence[tuple[BucketSpec, float]]) -> None:
    """Add each delta to what is queued for its bucket."""
    for bucket, delta in changes:
        held = queued.get(bucket.name)
        queued[bucket.name] = (bucket, delta if held is None else held[1] + delta)


class Carry:
    def __init__(self, max_open: int = MAX_OPEN) -> None:
        self._max = max_open
        self._used: dict[str, tuple[BucketSpec, float]] = {}  # bucket name -> (bucket, delta owed)
        # Degraded admissions not settled yet, by id (the dict keeps each alive, so ids stay unique); ``send``
        # moves them to ``_moved``, whose members settle as Redis's own reservations.
        self._open: dict[int, Reservation] = {}
        self._moved: dict[int, Reservation] = {}

    @property
    def owing(self) -> bool:
        return bool(self._used)

    def admitted(self, reservation: Reservation) -> None:
        """Follow a reservation made on local shares until it settles."""
        if len(self._open) >= self._max:
            del self._open[next(iter(self._open))]
        self._open[id(reservation)] = reservation

    def settle(self, reservation: Reservation, actual_tokens: int | None) -> bool:
        """Settle a reservation made on local shares: True when Redis never held its charge (what it used is
        owed now), False when ``send`` moved its charge to Redis (settle it as Redis's own)."""
        key = id(reservation)
        if self._moved.get(key) is reservation:
            del self._moved[key]
            return False
        if self._open.get(key) is reservation:
            del self._open[key]
        queue(self._used, carried(reservation, actual_tokens))
        return True

    def take(self) -> Changes:
        """The usage owed, to send with other changes (``owe`` it again if that fails)."""
        used, self._used = list(self._used.values()), {}
        return used

    def owe(self, used: Sequence[tuple[BucketSpec, float]]) -> None:
        queue(self._used, used)

    async def send(self, apply: Callable[[Changes], Awaitable[object]]) -> None:
        """Charge Redis through ``apply`` with the usage owed and the reservations still running; on failure all
        of it is kept for the next try (a charge Redis did apply counts twice: the safe side). A reservation
        moved by an earlier return and still unsettled settles as a charge again."""
        used, opened = self._used, self._open
        self._used, self._open = {}, {}
        charges = dict(used)
        queue(charges, [(b, -b.cost) for r in opened.values() for b in r.buckets if b.cost])
        try:
            await apply(list(charges.values()))
        except BaseException:
            queue(self._used, list(used.values()))
            self._open = {**opened, **self._open}
            raise
        self._moved = opened
