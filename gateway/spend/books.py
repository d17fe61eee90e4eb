"""Spend and budgets for one process: built once in the lifespan and kept on the runtime.

- ``touched``: the budgets a request touches (key, its end user, its tier), in the current windows.
- ``used``: the highest share of them spent, as this replica last saw it (the ``budget_used`` routing
  feature). Every admission returns the spend of the budgets it touched (``Admission.spent``), so the view
  costs no round trip; it is as fresh as this replica's last admission on that budget.
- ``observe``: after an admission, that view, the ``gateway_budget_used_ratio`` gauge, and the alert lines:
  the first time a budget's spend reaches 50, 80 and 100 % of its cap in a window (the admission script
  reports it once for the whole fleet), one JSON line ``{"event": "budget_alert", ...}``.
- ``refusal``: the 429 for a budget with no room: ``budget_exceeded``, the budget named (never the key) and
  ``Retry-After`` until its window ends (a day at most, ``errors.RETRY_AFTER_CEILING``).
- ``charge``: a finished request's cost into ``gateway_cost_usd_total`` and the ledger.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from gateway.config.model import Settings, VirtualKey
from gateway.errors import RateLimited
from gateway.limits.decide import ALERTS
from gateway.limits.model import Admission, Budget
from gateway.metrics import Metrics
from gateway.spend import budgets as naming
from gateway.spend import windows
from gateway.spend.budgets import Calendar
from gateway.spend.ledger import Ledger, MemoryTables
from gateway.state.ledger import RedisLedger
from gateway.state.store import KeyLayout, Scripts, build_client

MAX_VIEW = 50_000  # budgets this replica remembers the spend of (end users are chosen by clients)
OTHER_TIER = "other"  # a tier no configuration names (a trusted key may assert any): one label for all
GAUGE_STEP = 0.001  # a budget's gauge is set again once its share moved this much (each set takes a lock)


@dataclass(slots=True)
class _Gauge:
    """One label of ``gateway_budget_used_ratio``: a key's or a tier's budget, or all of a key's end users'
    budgets of one period, which show the highest share among them in the window."""

    child: Any
    user: bool
    shown: float = -1.0  # the share last set
    window: str = ""  # end users' budgets: the window of ``peak``
    peak: float = 0.0  # end users' budgets: the highest share seen in ``window``


class Books:
    def __init__(
        self,
        settings: Settings,
        metrics: Metrics,
        ledger: Ledger,
        log: logging.Logger | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.ledger = ledger
        self.clock = clock
        self._metrics = metrics
        self._log = log or logging.getLogger(__name__)
        self._keys = {k.name: k for k in settings.keys}
        self._tiers = settings.budgets.tiers
        # Only requests that can touch a budget pay for looking: keys with none, in tiers with none, skip it.
        self.enabled = bool(self._tiers) or any(k.budget.any or k.user_budget.any for k in settings.keys)
        self._tier_labels = frozenset({k.tier for k in settings.keys} | set(self._tiers))
        self._calendar: Calendar | None = None
        self._seen: dict[str, float] = {}  # budget counter -> share of its cap spent
        # Per request, on the hot path: the budgets of (key, end user, tier) while the day lasts, and their
        # gauges by the tuple's id (labels() costs more than the rest of a request's budget work).
        self._touched: dict[tuple[str, str | None, str], tuple[Budget, ...]] = {}
        self._touched_day = ""
        self._rows: dict[int, tuple[tuple[Budget, ...], tuple[_Gauge, ...]]] = {}
        self._gauges: dict[str, _Gauge] = {}  # label -> its gauge (labels are configured: a bounded set)
        self._costs: dict[tuple[str, str, str, str], Any] = {}  # labels -> the cost counter's child
        for label in configured_labels(settings):  # exported from the start, at 0, as dashboards expect
            metrics.budget_used.labels(label).set(0)

    def calendar(self) -> Calendar:
        """The current windows (computed again when the day changes, or the clock goes back)."""
        now = self.clock()
        cal = self._calendar
        if cal is None or not cal.day_ends - windows.DAY <= now < cal.day_ends:
            cal = self._calendar = Calendar.at(now)
        return cal

    def touched(self, key: VirtualKey | str | None, tier: str | None, end_user: str | None) -> tuple[Budget, ...]:
        if not self.enabled or key is None:
            return ()
        found = self._keys.get(key) if isinstance(key, str) else key
        if found is None:
            return ()
        cal = self.calendar()
        if cal.day != self._touched_day or len(self._touched) >= MAX_VIEW:  # windows change with the day
            self._touched, self._rows, self._touched_day = {}, {}, cal.day
        slot = (found.name, end_user, tier or found.tier)
        budgets = self._touched.get(slot)
        if budgets is None:
            budgets = self._touched[slot] = naming.touched(found, end_user, slot[2], self._tiers, cal)
            self._rows[id(budgets)] = (budgets, tuple([self._gauge(b) for b in budgets]))
        return budgets

    def used(self, budgets: Sequence[Budget]) -> float:
        """The highest share of a cap spent among ``budgets``, as last seen (0 for one never seen)."""
        seen, top = self._seen, 0.0
        for budget in budgets:  # a plain loop: max() over a generator took twice as long, on every request
            share = seen.get(budget.counter, 0.0)
            if share > top:
                top = share
        return top

    def observe(self, budgets: Sequence[Budget], admission: Admission) -> None:
        row = self._rows.get(id(budgets))
        gauges = row[1] if row is not None and row[0] is budgets else [self._gauge(b) for b in budgets]
        seen = self._seen
        for budget, spent, gauge in zip(budgets, admission.spent, gauges, strict=False):
            share = spent / budget.cap
            seen[budget.counter] = share
            if gauge.user:  # one label for every end user of a key: the highest share in the window
                if gauge.window != budget.window:
                    gauge.window, gauge.peak = budget.window, share
                elif share > gauge.peak:
                    gauge.peak = share
                else:
                    share = gauge.peak
            if share - gauge.shown >= GAUGE_STEP or gauge.shown - share >= GAUGE_STEP:
                gauge.child.set(share)
                gauge.shown = share
        while len(seen) > MAX_VIEW:  # end users are chosen by clients: the oldest go
            del seen[next(iter(seen))]
        for index, before, reached in admission.alerts:
            budget = budgets[index]
            for level in range(before + 1, reached + 1):  # one line per share crossed, even several at once
                self._log.warning(
                    "budget threshold reached",
                    {
                        "event": "budget_alert",
                        "budget": naming.label(budget),
                        "counter": budget.counter,  # an end user's budget by the digest of the id, never the id
                        "window": budget.window,
                        "threshold": ALERTS[level - 1],
                        "spent_usd": round(admission.spent[index], 6),
                        "cap_usd": budget.cap,
                    },
                )

    def _gauge(self, budget: Budget) -> _Gauge:
        label = naming.label(budget)
        found = self._gauges.get(label)
        if found is None:
            user = budget.name.startswith("user:")
            found = self._gauges[label] = _Gauge(self._metrics.budget_used.labels(label), user)
        return found

    def refusal(self, budget: Budget) -> RateLimited:
        until = windows.iso(budget.ends)
        return RateLimited(
            f"budget exceeded: {naming.describe(budget)} is used up until {until}",
            retry_after=budget.ends - self.clock(),
            code="budget_exceeded",
        )

    def charge(
        self, key: str, tier: str | None, end_user: str | None, deployment: str, route: str, usd: float | None
    ) -> None:
        """Count a finished request's cost (None: its deployment has no price): the Prometheus counter now,
        the ledger at its next flush."""
        if usd:
            labels = (deployment, key, tier if tier in self._tier_labels else OTHER_TIER, route)
            counter = self._costs.get(labels)
            if counter is None:
                if len(self._costs) >= MAX_VIEW:
                    self._costs = {}
                counter = self._costs[labels] = self._metrics.cost.labels(*labels)
            counter.inc(usd)
        self.ledger.add((key, tier or OTHER_TIER, end_user, deployment, route, usd), self.calendar().day_month)

    async def close(self) -> None:
        await self.ledger.close()


def configured_labels(settings: Settings) -> list[str]:
    """Every budget gauge label the configuration names (end users' budgets: one per key and period)."""
    owners = [(f"key:{k.name}", k.budget) for k in settings.keys] + [
        (f"user:{k.name}", k.user_budget) for k in settings.keys
    ]
    owners += [(f"tier:{tier}", caps) for tier, caps in settings.budgets.tiers.items()]
    found = []
    for owner, caps in owners:
        found += [f"{owner}:day"] if caps.daily_usd is not None else []
        found += [f"{owner}:month"] if caps.monthly_usd is not None else []
    return found


def build_books(settings: Settings, metrics: Metrics, log: logging.Logger | None = None) -> Books:
    """The books for ``settings``: the ledger in Redis when ``state.redis_url`` is set, else in this process."""
    if not settings.redis_url:
        return Books(settings, metrics, Ledger(MemoryTables()), log)
    client = build_client(settings.redis_url)
    tables = RedisLedger(client, Scripts(client), KeyLayout(settings.limits.key_prefix))
    return Books(settings, metrics, Ledger(tables, close=client.aclose), log)
