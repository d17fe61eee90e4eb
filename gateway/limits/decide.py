"""The admission decision as a pure function of bucket levels, cooldowns and budget spend.

``LocalLimiter`` calls it directly; ``admit_v7.lua`` is the same algorithm, line for line, so the
Redis and in-process limiters answer identically (the semantic tests run one table against both).

Budgets are the outer gate: every budget a request touches must have room for its maximum cost on the
chosen deployment (on the cheapest candidate when none has capacity now, since waiting for capacity could
not help), else nothing is charged and the request is over budget. A budget has room while its spend is
under its cap; the request then takes its maximum cost, or all that is left when that is less
(``budget_take``), so concurrent requests overshoot a cap by at most one request's cost beyond what it took.

A reservation takes at most a bucket's capacity (``need``): a request larger than the bucket may drain
it when it is full, never push it into debt, so no number a client chooses can hold a bucket below
empty. Actual usage at reconciliation may (the provider really counted it), by at most one capacity
per request beyond what was reserved (``refunds``), so no number a provider reports can either.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Final

from gateway.limits.model import BucketSpec, BucketState, Budget, Candidate, Reservation, Strategy

# The per-request paths here compare rather than call min() and max(): in CPython 3.11 each call parses
# keyword arguments, several times the cost of the comparison.

COOLDOWN = -1  # skip code: the candidate is cooling down; codes > 0 name its first full bucket (1-based)


@dataclass(init=False, unsafe_hash=True)
class Decision:
    chosen: Final[int | None]
    retry_after: Final[float]
    blocked_by_quota: Final[bool]
    skip_codes: Final[tuple[tuple[int, int], ...]]  # (candidate index, COOLDOWN | 1-based position of a full bucket)
    over_budget: Final[int | None]  # index of the first budget without room; nothing may be charged

    def __init__(
        self,
        chosen: int | None,
        retry_after: float,
        blocked_by_quota: bool,
        skip_codes: tuple[tuple[int, int], ...],
        over_budget: int | None = None,
    ) -> None:
        self.chosen = chosen
        self.retry_after = retry_after
        self.blocked_by_quota = blocked_by_quota
        self.skip_codes = skip_codes
        self.over_budget = over_budget


def need(bucket: BucketSpec) -> float:
    """The level a request needs, and what it takes: its cost, or the whole bucket when the cost exceeds
    the capacity (it is admitted only into a full bucket, which it leaves empty)."""
    return bucket.cost if bucket.cost <= bucket.capacity else bucket.capacity


def reserved(buckets: tuple[BucketSpec, ...]) -> tuple[BucketSpec, ...]:
    """The buckets as charged: each cost cut to what admission took (``need``), so settling reconciles
    against what was really taken. The usual case (every cost within its capacity) allocates nothing."""
    for b in buckets:
        if b.cost > b.capacity:
            return tuple(b if b.cost <= b.capacity else replace(b, cost=b.capacity) for b in buckets)
    return buckets


def wait(bucket: BucketSpec, level: float) -> float:
    seconds = (need(bucket) - level) / bucket.refill_per_sec
    return seconds if seconds > 0.0 else 0.0


def state(bucket: BucketSpec, level: float) -> BucketState:
    capacity = bucket.capacity
    reset = (capacity - level) / bucket.refill_per_sec
    # name, kind, limit, remaining, reset_seconds
    return BucketState(bucket.name, bucket.kind, capacity, level if level > 0.0 else 0.0, reset if reset > 0.0 else 0.0)


def decide(
    candidates: Sequence[Candidate],
    quotas: Sequence[BucketSpec],
    strategy: Strategy,
    level: Callable[[BucketSpec], float],
    cooldown: Callable[[Candidate], float],
    budgets: Sequence[Budget] = (),
    spent: Callable[[Budget], float] = lambda _: 0.0,
) -> Decision:
    """Choose a candidate; deducting (``budget_take`` for budgets) is the caller's job.

    >>> b = BucketSpec("dep:a/m:rpm", capacity=10, refill_per_sec=2, cost=10, kind="requests")
    >>> decide([Candidate("a/m", "a", (b,))], [], "first", lambda _: 4.0, lambda _: 0.0)
    Decision(chosen=None, retry_after=3.0, blocked_by_quota=False, skip_codes=((0, 1),), over_budget=None)
    """
    quota_ok, quota_wait = True, 0.0
    for q in quotas:  # a loop, no generators: this runs for every request
        lv = level(q)
        if lv < need(q):  # else its wait is 0
            quota_ok = False
            quota_wait = max(quota_wait, wait(q, lv))
    chosen: int | None = None
    best = -math.inf
    candidate_wait = math.inf
    skips: list[tuple[int, int]] = []
    for index, candidate in enumerate(candidates):
        cooling = cooldown(candidate)
        buckets = candidate.buckets
        full = 0  # the first full bucket's position (1-based)
        for pos, b in enumerate(buckets, 1):
            if level(b) < need(b):
                full = pos
                break
        # Levels are read again only off the usual path (a candidate passed over, or compared): ``level`` is
        # pure for the length of a decision, and admitting on the first with room reads each bucket once.
        if cooling > 0 or full:
            skips.append((index, COOLDOWN if cooling > 0 else full))
            candidate_wait = min(candidate_wait, max([cooling, *(wait(b, level(b)) for b in buckets)]))
            continue
        if strategy == "first":
            chosen = index
            break
        headroom = min(((level(b) - b.cost) / b.capacity for b in buckets), default=math.inf)
        if chosen is None or headroom > best:
            chosen, best = index, headroom
    if chosen is not None or not candidates:
        candidate_wait = 0.0
    if budgets and candidates:
        cost = candidates[chosen].usd if chosen is not None else min(c.usd for c in candidates)
        for j, budget in enumerate(budgets):
            if not budget_room(spent(budget), budget.cap, cost):
                return Decision(None, 0.0, False, tuple(skips), j)
    if not quota_ok:
        # Both the quota and some candidate must have room again before a retry can succeed.
        return Decision(None, max(quota_wait, candidate_wait), True, tuple(skips))
    return Decision(chosen, 0.0 if chosen is not None else candidate_wait, False, tuple(skips))


def skipped(candidates: Sequence[Candidate], codes: Sequence[Sequence[int]]) -> tuple[tuple[str, str], ...]:
    """Skip codes as (candidate id, reason): ("a/m", "cooldown"), ("a/m", "full: acct:a:tpm"). The codes are
    (index, code) pairs: tuples from ``decide``, two-element lists from the Redis scripts' replies."""
    if not codes:
        return ()
    return tuple(
        (c.id, "cooldown" if code == COOLDOWN else f"full: {c.buckets[code - 1].name}")
        for c, code in ((candidates[i], code) for i, code in codes)
    )


TTL_MARGIN_SECONDS: Final = 10.0  # the Lua scripts use the same margin
# No bucket key outlives this, whatever its level (the Lua scripts use the same cap): a TTL computed
# from a level that something drove absurdly low must still be a number Redis accepts.
MAX_TTL_SECONDS: Final = 3600.0
# Cooldowns longer than this are cut to it, in every implementation (callers cap lower, from config).
MAX_COOLDOWN_SECONDS = 3600.0


def idle_ttl(bucket: BucketSpec, level: float) -> float:
    """How long an untouched bucket must be kept: twice its time to refill fully, plus a margin, at most
    ``MAX_TTL_SECONDS``.

    After that it is full again, and a missing bucket reads as full, so expiring it changes nothing.
    """
    empty = bucket.capacity - level
    ttl = 2 * (empty if empty > 0.0 else 0.0) / bucket.refill_per_sec + TTL_MARGIN_SECONDS
    return ttl if ttl < MAX_TTL_SECONDS else MAX_TTL_SECONDS


def refunds(reservation: Reservation, actual_tokens: int | None) -> list[tuple[BucketSpec, float]]:
    """What settling gives back per bucket (negative = charge): the reserved-minus-actual tokens, or
    everything, request counts included, when the request never reached the provider.

    A usage report is a provider's number: a negative one counts as 0, and a request is charged at most
    one bucket capacity beyond its reservation, so no report can hold a bucket in debt for long.
    """
    if actual_tokens is None:
        return [(b, b.cost) for b in reservation.buckets if b.cost]
    used = actual_tokens if actual_tokens > 0 else 0
    changes = []
    for b in reservation.buckets:
        if b.kind == "tokens" and b.cost != used:
            back, most = b.cost - used, -b.capacity
            changes.append((b, back if back > most else most))
    return changes


def carried(reservation: Reservation, actual_tokens: int | None) -> list[tuple[BucketSpec, float]]:
    """What a request admitted on local shares while Redis was away adds to its buckets in Redis once Redis
    answers (negative = charge): its requests and the tokens it used, as the provider counted them; nothing
    when it never reached the provider (``actual_tokens`` None).

    >>> rpm, tpm = BucketSpec("acct:a:rpm", 60, 1, 1, "requests"), BucketSpec("acct:a:tpm", 600, 10, 50, "tokens")
    >>> [(b.kind, delta) for b, delta in carried(Reservation((rpm, tpm)), 30)]
    [('requests', -1.0), ('tokens', -30.0)]
    """
    if actual_tokens is None:
        return []
    used = float(actual_tokens) if actual_tokens > 0 else 0.0
    changes = []
    for b in reservation.buckets:
        taken = (used if used < b.capacity else b.capacity) if b.kind == "tokens" else b.cost
        if taken:
            changes.append((b, -float(taken)))
    return changes


# Fractions of a budget whose first crossing in a window is reported (once for the whole fleet: the level
# reached is kept beside the spend, in the same counter).
ALERTS = (0.5, 0.8, 1.0)


def budget_room(spent: float, cap: float, cost: float) -> bool:
    """A request that costs nothing never meets a budget; any other needs spend under the cap.

    >>> budget_room(9.99, 10.0, 5.0), budget_room(10.0, 10.0, 0.01), budget_room(12.0, 10.0, 0.0)
    (True, False, True)
    """
    return cost <= 0 or spent < cap


def budget_take(spent: float, cap: float, cost: float) -> float:
    """What an admitted request reserves: its maximum cost, or all the room left when that is less.

    >>> budget_take(2.0, 10.0, 3.0), budget_take(9.0, 10.0, 3.0)
    (3.0, 1.0)
    """
    return 0.0 if cost <= 0 else min(cost, cap - spent)


def alert_level(spent: float, cap: float) -> int:
    """How many of ``ALERTS`` the spend has reached.

    >>> alert_level(7.9, 10.0), alert_level(8.0, 10.0), alert_level(10.5, 10.0)
    (1, 2, 3)
    """
    return sum(1 for share in ALERTS if spent >= share * cap)


def budget_refunds(
    reservation: Reservation, actual_tokens: int | None, cost: float | None
) -> list[tuple[Budget, float]]:
    """What settling adds to each budget's spend (negative = gives back): everything it took when the
    request never reached the provider; the difference to the actual cost when that is known; nothing when
    it is not (a stream cut short without a usage report keeps its maximum, as its tokens do).

    A provider's cost is charged in full: spend is money already owed, whatever the cap.
    """
    if actual_tokens is None:
        return [(b, -took) for b, took in reservation.budgets if took]
    if cost is None:
        return []
    used = max(0.0, cost)
    return [(b, used - took) for b, took in reservation.budgets if used != took]
