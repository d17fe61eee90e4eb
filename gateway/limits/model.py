"""Values the limiter takes and returns: frozen dataclasses, no behaviour beyond validation."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Kind = Literal["requests", "tokens"]
Strategy = Literal["first", "most_headroom"]


@dataclass(frozen=True)
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


@dataclass(frozen=True)
class Candidate:
    id: str  # deployment id "account/model"
    account: str
    buckets: tuple[BucketSpec, ...]  # provider-protection buckets; empty = unlimited


@dataclass(frozen=True)
class BucketState:
    """A bucket as the caller's ``x-ratelimit-*`` headers show it; ``reset_seconds`` = time until full."""

    name: str
    kind: str
    limit: float
    remaining: float
    reset_seconds: float


@dataclass(frozen=True)
class Reservation:
    """Every bucket ``admit`` charged (the chosen candidate's and the quotas), enough to settle later."""

    buckets: tuple[BucketSpec, ...]


@dataclass(frozen=True)
class Admission:
    chosen: int | None  # index into the candidates; None when nothing had room
    retry_after: float  # seconds until a retry could succeed, from refill rates and cooldowns; 0 if admitted
    quota: tuple[BucketState, ...]  # the quota buckets after this decision
    skipped: tuple[tuple[str, str], ...]  # (candidate id, "cooldown" | "full: <bucket name>")
    reservation: Reservation | None
    blocked_by_quota: bool  # the caller's own quota refused, not provider capacity
