"""Which budgets a request touches, and how they are named to people and to metrics (pure).

A request touches up to six: its key's daily and monthly caps (``keys[].budget``), those of its end user
under that key (``keys[].user_budget``; the end user as routing identifies it), and those of its tier
(``budgets.tiers``). Names are stable across replicas: ``key:<key name>:day``, ``user:<key name>:<end user
digest>:month``, ``tier:<tier>:day``; the window ("2026-12-01", "2026-12") completes a counter's name.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from gateway.config.model import BudgetCaps, VirtualKey
from gateway.limits.model import Budget
from gateway.limits.specs import end_user_digest
from gateway.spend import windows


@dataclass(frozen=True, slots=True)
class Calendar:
    """The day and month windows of one moment."""

    day: str
    day_ends: float
    month: str
    month_ends: float
    day_month: tuple[str, str] = field(init=False, compare=False, repr=False)  # (day, month), made once

    def __post_init__(self) -> None:
        object.__setattr__(self, "day_month", (self.day, self.month))

    @classmethod
    def at(cls, now: float) -> Calendar:
        return cls(
            windows.window("day", now),
            windows.ends("day", now),
            windows.window("month", now),
            windows.ends("month", now),
        )


def _caps(scope: str, caps: BudgetCaps, cal: Calendar) -> list[Budget]:
    found = []
    if caps.daily_usd is not None:
        found.append(Budget(f"{scope}:day", cal.day, caps.daily_usd, cal.day_ends))
    if caps.monthly_usd is not None:
        found.append(Budget(f"{scope}:month", cal.month, caps.monthly_usd, cal.month_ends))
    return found


def touched(
    key: VirtualKey, end_user: str | None, tier: str, tiers: Mapping[str, BudgetCaps], cal: Calendar
) -> tuple[Budget, ...]:
    """
    >>> key = VirtualKey("team-a", "0" * 64, "premium", frozenset({"*"}), budget=BudgetCaps(daily_usd=5.0))
    >>> [b.counter for b in touched(key, "alice", "premium", {"premium": BudgetCaps(monthly_usd=900.0)},
    ...                              Calendar.at(1764633599.0))]
    ['key:team-a:day:2025-12-01', 'tier:premium:month:2025-12']
    """
    found = _caps(f"key:{key.name}", key.budget, cal)
    if end_user and key.user_budget.any:
        found += _caps(f"user:{key.name}:{end_user_digest(end_user)}", key.user_budget, cal)
    caps = tiers.get(tier)
    if caps is not None:
        found += _caps(f"tier:{tier}", caps, cal)
    return tuple(found)


def label(budget: Budget) -> str:
    """The budget's metric label: never an end user (theirs fold into one label per key).

    >>> label(Budget("user:team-a:2bd806c97f0e00af:day", "2026-12-01", 1.0, 0.0))
    'user:team-a:day'
    >>> label(Budget("tier:premium:month", "2026-12", 1.0, 0.0))
    'tier:premium:month'
    """
    scope, _, rest = budget.name.partition(":")
    owner, _, period = rest.rpartition(":")
    if scope == "user":
        owner = owner.rpartition(":")[0]
    return f"{scope}:{owner}:{period}"


def describe(budget: Budget) -> str:
    """What a client is told: the budget's kind and size, never a key's name (a tier's is not a secret).

    >>> describe(Budget("key:team-a:day", "2026-12-01", 5.0, 0.0))
    "this key's daily budget (USD 5.00)"
    >>> describe(Budget("tier:premium:month", "2026-12", 900.0, 0.0))
    "the premium tier's monthly budget (USD 900.00)"
    """
    scope, _, rest = budget.name.partition(":")
    period = "daily" if budget.name.endswith(":day") else "monthly"
    whose = {"key": "this key's", "user": "this end user's"}.get(scope) or f"the {rest.rpartition(':')[0]} tier's"
    return f"{whose} {period} budget (USD {budget.cap:.2f})"
