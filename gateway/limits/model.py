"""Values the limiter takes and returns: frozen (gateway/values.py), no behaviour beyond validation."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final, Literal

Kind = Literal["requests", "tokens"]
# A budget's counter outlives its window by this much, so a request admitted just before the window ended
# still settles into it (the Lua scripts take the expiry from the caller).
BUDGET_KEPT_SECONDS = 86_400.0
Strategy = Literal["first", "most_headroom"]


@dataclass(init=False, unsafe_hash=True)
class BucketSpec:
    """One token bucket and what this request takes from it.

    ``name`` is logical ("acct:openai-main:tpm", "key:team-a:rpm"); buckets with the same name are the
    same bucket everywhere. A per-minute limit of N is ``capacity=N, refill_per_sec=N / 60``.
    """

    name: Final[str]
    capacity: Final[float]
    refill_per_sec: Final[float]
    cost: Final[float]
    kind: Final[Kind]

    def __init__(self, name: str, capacity: float, refill_per_sec: float, cost: float, kind: Kind) -> None:
        # A bucket that never refills would make every wait infinite; reject it at the edge instead.
        if capacity <= 0 or refill_per_sec <= 0 or cost < 0:
            raise ValueError(f"invalid bucket {name!r}: capacity and refill must be > 0, cost >= 0")
        self.name = name
        self.capacity = capacity
        self.refill_per_sec = refill_per_sec
        self.cost = cost
        self.kind = kind


@dataclass(init=False, unsafe_hash=True)
class Candidate:
    id: Final[str]  # deployment id "account/model"
    account: Final[str]
    buckets: Final[tuple[BucketSpec, ...]]  # provider-protection buckets; empty = unlimited
    usd: Final[float]  # the most this request can cost on this deployment: what it reserves on budgets

    def __init__(self, id: str, account: str, buckets: tuple[BucketSpec, ...], usd: float = 0.0) -> None:
        self.id = id
        self.account = account
        self.buckets = buckets
        self.usd = usd


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


@dataclass(init=False, unsafe_hash=True)
class BucketState:
    """A bucket as the caller's ``x-ratelimit-*`` headers show it; ``reset_seconds`` = time until full."""

    name: Final[str]
    kind: Final[str]
    limit: Final[float]
    remaining: Final[float]
    reset_seconds: Final[float]

    def __init__(self, name: str, kind: str, limit: float, remaining: float, reset_seconds: float) -> None:
        self.name = name
        self.kind = kind
        self.limit = limit
        self.remaining = remaining
        self.reset_seconds = reset_seconds


@dataclass(init=False, unsafe_hash=True)
class Reservation:
    """Every bucket ``admit`` charged (the chosen candidate's and the quotas), and what it took from each
    budget (USD), enough to settle later. ``local``: the budgets were charged in this process while Redis
    was unreachable, so settling adds the request's cost to Redis rather than a difference."""

    buckets: Final[tuple[BucketSpec, ...]]
    budgets: Final[tuple[tuple[Budget, float], ...]]
    local: Final[bool]

    def __init__(
        self, buckets: tuple[BucketSpec, ...], budgets: tuple[tuple[Budget, float], ...] = (), local: bool = False
    ) -> None:
        self.buckets = buckets
        self.budgets = budgets
        self.local = local


@dataclass(init=False, unsafe_hash=True)
class Admission:
    chosen: Final[int | None]  # index into the candidates; None when nothing had room
    retry_after: Final[float]  # seconds until a retry could succeed, from refill rates and cooldowns; 0 if admitted
    quota: Final[tuple[BucketState, ...]]  # the quota buckets after this decision
    skipped: Final[tuple[tuple[str, str], ...]]  # (candidate id, "cooldown" | "full: <bucket name>")
    reservation: Final[Reservation | None]
    blocked_by_quota: Final[bool]  # the caller's own quota refused, not provider capacity
    over_budget: Final[int | None]  # index of the budget that refused (nothing was charged), else None
    spent: Final[tuple[float, ...]]  # each budget's spend after this decision (USD, reservations included)
    alerts: Final[tuple[tuple[int, int, int], ...]]  # (budget index, alert level before, reached: decide.ALERTS)

    def __init__(
        self,
        chosen: int | None,
        retry_after: float,
        quota: tuple[BucketState, ...],
        skipped: tuple[tuple[str, str], ...],
        reservation: Reservation | None,
        blocked_by_quota: bool,
        over_budget: int | None = None,
        spent: tuple[float, ...] = (),
        alerts: tuple[tuple[int, int, int], ...] = (),
    ) -> None:
        self.chosen = chosen
        self.retry_after = retry_after
        self.quota = quota
        self.skipped = skipped
        self.reservation = reservation
        self.blocked_by_quota = blocked_by_quota
        self.over_budget = over_budget
        self.spent = spent
        self.alerts = alerts
