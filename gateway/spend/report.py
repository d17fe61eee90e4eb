"""What ``GET /admin/spend`` and ``gateway spend`` answer: spend in one window, by key, tier, deployment,
route and end user, and the budgets that apply, read from the ledger.

Filters narrow the answer to one key (its spend, its end users, its budgets and its tier's), one end
user (under every key, or the one given) or one tier; unfiltered, it shows every key, tier, deployment and
route, the top end users across keys and every key's and tier's budget. A budget shows its spend as the
ledger has it (settled requests; reservations in flight are not in it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from gateway.config.model import BudgetCaps, Settings, VirtualKey
from gateway.spend import windows
from gateway.spend.ledger import SEP, Ledger, Tables, end_user_id
from gateway.spend.windows import Period

MAX_TOP = 1000


@dataclass(frozen=True)
class Query:
    key: str | None = None
    end_user: str | None = None
    tier: str | None = None
    window: str = "day"  # "day" or "month" (the current one), or one named: "2026-12-01", "2026-12"
    top: int = 10  # end users listed, highest spend first


class BadQuery(ValueError):
    def __init__(self, message: str, param: str) -> None:
        super().__init__(message)
        self.param = param


def resolve(window: str, now: float) -> tuple[str, Period]:
    """The window's name and kind.

    >>> resolve("month", 1764633599.0), resolve("2026-02-03", 0.0)
    (('2025-12', 'month'), ('2026-02-03', 'day'))
    """
    if window in windows.PERIODS:
        period: Period = "day" if window == "day" else "month"
        return windows.window(period, now), period
    found = windows.period_of(window)
    if found is None:
        raise BadQuery(f"window must be day, month, YYYY-MM-DD or YYYY-MM, not {window!r}", "window")
    return window, found


def _rows(usd: dict[str, float], n: dict[str, float], name: str) -> list[dict[str, Any]]:
    rows = [{name: m, "usd": round(v, 6), "requests": int(n.get(m, 0))} for m, v in usd.items()]
    return sorted(rows, key=lambda r: (-r["usd"], r[name]))


def _cap(caps: BudgetCaps, period: Period) -> float | None:
    return caps.daily_usd if period == "day" else caps.monthly_usd


def _budget(name: str, cap: float, spent: float, period: Period, window: str) -> dict[str, Any]:
    return {
        "budget": f"{name}:{period}",
        "cap_usd": cap,
        "spent_usd": round(spent, 6),
        "used": round(spent / cap, 4),
        "resets_at": windows.iso(windows.ends(period, windows.start_of(window))),
    }


async def report(ledger: Ledger, settings: Settings, query: Query, now: float) -> dict[str, Any]:
    window, period = resolve(query.window, now)
    if not 0 <= query.top <= MAX_TOP:
        raise BadQuery(f"top must be from 0 to {MAX_TOP}", "top")
    keys = {k.name: k for k in settings.keys}
    if query.key is not None and query.key not in keys:
        raise BadQuery(f"no virtual key is named {query.key!r}", "key")
    await ledger.flush()  # this replica's spend not yet written
    t = ledger.tables
    names = ("key", "tier", "deployment", "route")
    read = await t.tables(window, [f"{n}:{unit}" for n in names for unit in ("usd", "n")] + ["unpriced:n"])
    by = {n: _rows(read[2 * i], read[2 * i + 1], n) for i, n in enumerate(names)}
    answer: dict[str, Any] = {
        "window": window,
        "period": period,
        "ends_at": windows.iso(windows.ends(period, windows.start_of(window))),
        "filters": {k: v for k, v in vars(query).items() if v is not None and k not in ("window", "top")},
    }
    budgets: list[dict[str, Any]] = []
    scoped = [keys[query.key]] if query.key is not None else list(keys.values())
    if query.end_user is not None:
        user = end_user_id(query.end_user)
        found = []
        for key in scoped:
            usd, n = await _scores(t, window, f"user:{key.name}", user)
            if n:
                found.append({"key": key.name, "end_user": user, "usd": round(usd, 6), "requests": int(n)})
            cap = _cap(key.user_budget, period)
            if cap is not None:
                budgets.append(_budget(f"user:{key.name}", cap, usd, period, window) | {"end_user": user})
        answer["end_users"] = found
    elif query.key is not None:
        key = keys[query.key]
        answer["keys"] = [r for r in by["key"] if r["key"] == key.name]
        answer["end_users"] = await _top(t, window, f"user:{key.name}", query.top, key.name)
    elif query.tier is not None:
        answer["tiers"] = [r for r in by["tier"] if r["tier"] == query.tier]
    else:
        answer |= {"total": _total(by["deployment"]), "keys": by["key"], "tiers": by["tier"]}
        answer |= {"deployments": by["deployment"], "routes": by["route"]}
        answer["end_users"] = await _top(t, window, "users", query.top, None)
        answer["unpriced"] = [{"deployment": m, "requests": int(v)} for m, v in sorted(read[-1].items())]
    if query.end_user is None:
        budgets += _key_budgets(scoped if query.tier is None else [], by["key"], period, window)
    tiers = _tiers(settings, query, keys)
    budgets += _tier_budgets(settings, tiers, by["tier"], period, window)
    answer["budgets"] = budgets
    return answer


def _total(rows: list[dict[str, Any]]) -> dict[str, Any]:
    return {"usd": round(sum(r["usd"] for r in rows), 6), "requests": sum(r["requests"] for r in rows)}


def _tiers(settings: Settings, query: Query, keys: dict[str, VirtualKey]) -> list[str]:
    if query.tier is not None:
        return [query.tier]
    if query.key is not None:
        return [keys[query.key].tier]
    return [] if query.end_user is not None else sorted(settings.budgets.tiers)


def _key_budgets(
    keys: Sequence[VirtualKey], rows: list[dict[str, Any]], period: Period, window: str
) -> list[dict[str, Any]]:
    spent = {r["key"]: r["usd"] for r in rows}
    found = []
    for key in keys:
        cap = _cap(key.budget, period)
        if cap is not None:
            found.append(_budget(f"key:{key.name}", cap, spent.get(key.name, 0.0), period, window))
    return found


def _tier_budgets(
    settings: Settings, tiers: list[str], rows: list[dict[str, Any]], period: Period, window: str
) -> list[dict[str, Any]]:
    spent = {r["tier"]: r["usd"] for r in rows}
    found = []
    for tier in tiers:
        caps = settings.budgets.tiers.get(tier)
        cap = None if caps is None else _cap(caps, period)
        if cap is not None:
            found.append(_budget(f"tier:{tier}", cap, spent.get(tier, 0.0), period, window))
    return found


async def _scores(tables: Tables, window: str, table: str, member: str) -> tuple[float, float]:
    usd = await tables.scores(window, f"{table}:usd", [member])
    n = await tables.scores(window, f"{table}:n", [member])
    return usd[0], n[0]


async def _top(tables: Tables, window: str, table: str, top: int, key: str | None) -> list[dict[str, Any]]:
    if top == 0:
        return []
    best = await tables.top(window, f"{table}:usd", top)
    members = [m for m, _ in best]
    counts = await tables.scores(window, f"{table}:n", members)
    rows = []
    for (member, usd), n in zip(best, counts, strict=True):
        owner, user = (key, member) if key is not None else member.split(SEP, 1)
        rows.append({"key": owner, "end_user": user, "usd": round(usd, 6), "requests": int(n)})
    return rows
