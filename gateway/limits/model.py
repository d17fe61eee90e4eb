"""Values the limiter takes and returns: frozen dataclasses, no behaviour beyond validation."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from gateway.values import value

Kind = Literal["requests", "tokens"]
# A budget's counter outlives its window by this much, so a request admitted just before the window ended
# still settles into it (the Lua scripts take the expiry from the caller).
BUDGET_KEPT_SECONDS = 86_400.0
Strategy = Literal["first", "most_headroom"]


@value
class BucketSpec:
    """One token bucket and what this request takes from it.

    ``name`` is logical ("acct:openai-main:tpm", "key:team-a:rpm"); buckets with the same name are the
    same bucket everywhere. A per-minute limit of N is ``capacity=N, refill_per_sec=N / 60``.
    """

    name: str
    capacity: float
    refill_per_sec: float
    cost: float
    kind: Kind

    def __post_init__(self) -> None:
        # A bucket that never refills would make every wait infinite; reject it at the edge instead.
        if self.capacity <= 0 or self.refill_per_sec <= 0 or self.cost < 0:
            raise ValueError(f"invalid bucket {self.name!r}: capacity and refill must be > 0, cost >= 0")


@value
class Candidate:
    id: str  # deployment id "account/model"
    account: str
    buckets: tuple[BucketSpec, ...]  # provider-protection buckets; empty = unlimited
    usd: float = 0.0  # the most this request can cost on this deployment: what it reserves on budgets


@dataclass(frozen=True, slots=True)
class Budget:
    """A spend cap over one calendar window, and the window this request falls in.

    ``name`` is logical and stable across replicas ("key:team-a:day", "user:team-a:<end user digest>:month",
    "tier:premium:day"); with ``window`` ("2026-12-01", "2026-12") it names one counter everywhere. A budget
    has room while its spend is under ``cap``: a request then reserves its maximum cost, or all the room that
    is left when its maximum is more, so spend can pass the cap only by what one request costs beyond that.
    """

    name: str
    window: str
    cap: float  # USD
    ends: float  # Unix time at which the window ends (its counter is kept a day longer)
    counter: str = field(init=False, compare=False, repr=False)  # "<name>:<window>", made once
    expires_ms: int = field(init=False, compare=False, repr=False)  # when its counter may go (Unix ms)

    def __post_init__(self) -> None:
        if not self.cap > 0:
            raise ValueError(f"invalid budget {self.name!r}: the cap must be > 0")
        object.__setattr__(self, "counter", f"{self.name}:{self.window}")
        object.__setattr__(self, "expires_ms", int((self.ends + BUDGET_KEPT_SECONDS) * 1000))


@value
class BucketState:
    """A bucket as the caller's ``x-ratelimit-*`` headers show it; ``reset_seconds`` = time until full."""

    name: str
    kind: str
    limit: float
    remaining: float
    reset_seconds: float


@value
class Reservation:
    """Every bucket ``admit`` charged (the chosen candidate's and the quotas), and what it took from each
    budget (USD), enough to settle later. ``local``: the budgets were charged in this process while Redis
    was unreachable, so settling adds the request's cost to Redis rather than a difference."""

    buckets: tuple[BucketSpec, ...]
    budgets: tuple[tuple[Budget, float], ...] = ()
    local: bool = False


@value
class Admission:
    chosen: int | None  # index into the candidates; None when nothing had room
    retry_after: float  # seconds until a retry could succeed, from refill rates and cooldowns; 0 if admitted
    quota: tuple[BucketState, ...]  # the quota buckets after this decision
    skipped: tuple[tuple[str, str], ...]  # (candidate id, "cooldown" | "full: <bucket name>")
    reservation: Reservation | None
    blocked_by_quota: bool  # the caller's own quota refused, not provider capacity
    over_budget: int | None = None  # index of the budget that refused (nothing was charged), else None
    spent: tuple[float, ...] = ()  # each budget's spend after this decision (USD, reservations included)
    alerts: tuple[tuple[int, int, int], ...] = ()  # (budget index, alert level before, reached: decide.ALERTS)
