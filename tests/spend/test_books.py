"""The books on a fake clock: windows roll over at UTC midnight and month ends, a refused request is told
when its window ends, and what admissions report becomes the budget view, the gauge and the alert lines."""

from __future__ import annotations

import calendar
import logging

import pytest

from gateway.config.model import BudgetCaps, BudgetSettings, ServerSettings, Settings, VirtualKey
from gateway.limits.local import LocalLimiter
from gateway.limits.model import Candidate
from gateway.metrics import Metrics
from gateway.spend.books import Books
from gateway.spend.ledger import Ledger, MemoryTables


def at(text: str) -> float:
    """'2026-12-31T23:59:59' (UTC) as Unix time."""
    date, clock = text.split("T")
    y, mo, d = (int(p) for p in date.split("-"))
    h, mi, s = (int(p) for p in clock.split(":"))
    return float(calendar.timegm((y, mo, d, h, mi, s)))


KEY = VirtualKey(
    "team-a",
    "0" * 64,
    "premium",
    frozenset({"*"}),
    budget=BudgetCaps(daily_usd=1.0, monthly_usd=20.0),
    user_budget=BudgetCaps(daily_usd=0.5),
)
PLAIN = VirtualKey("plain", "1" * 64, "standard", frozenset({"*"}))


class Clock:
    def __init__(self, now: str) -> None:
        self.now = at(now)

    def __call__(self) -> float:
        return self.now


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.fields: list[dict[str, object]] = []

    def emit(self, record: logging.LogRecord) -> None:
        args = record.args
        if isinstance(args, dict):
            self.fields.append(dict(args))


def books(clock: Clock, tiers: dict[str, BudgetCaps] | None = None) -> tuple[Books, Metrics, Lines]:
    settings = Settings(
        source="test",
        server=ServerSettings(),
        redis_url="",
        accounts=(),
        keys=(KEY, PLAIN),
        admin_key_sha256=None,
        policy_dir="",
        budgets=BudgetSettings(tiers=tiers or {}),
    )
    log = logging.getLogger(f"test-books-{id(clock)}")
    lines = Lines()
    log.addHandler(lines)
    log.propagate = False
    metrics = Metrics()
    return Books(settings, metrics, Ledger(MemoryTables()), log, clock), metrics, lines


def gauge(metrics: Metrics, label: str) -> float:
    value = metrics.registry.get_sample_value("gateway_budget_used_ratio", {"budget": label})
    assert value is not None
    return value


async def test_a_daily_budget_spent_late_in_the_day_is_whole_again_after_midnight() -> None:
    clock = Clock("2026-12-31T23:59:58")
    book, _, _ = books(clock)
    limiter = LocalLimiter(wall=clock)
    costly = [Candidate("a/m", "a", (), 0.6)]
    for _ in range(2):  # 0.6, then the 0.4 left
        budgets = book.touched(KEY, None, None)
        assert (await limiter.admit(costly, [], "first", budgets)).chosen == 0
    budgets = book.touched(KEY, None, None)
    refused = await limiter.admit(costly, [], "first", budgets)
    assert refused.over_budget == 0
    error = book.refusal(budgets[0])
    assert error.code == "budget_exceeded" and error.retry_after == pytest.approx(2.0)
    assert "until 2027-01-01T00:00:00Z" in error.message and "team-a" not in error.message

    clock.now = at("2027-01-01T00:00:01")  # a new day, and a new month
    budgets = book.touched(KEY, None, None)
    assert [b.counter for b in budgets] == ["key:team-a:day:2027-01-01", "key:team-a:month:2027-01"]
    assert (await limiter.admit(costly, [], "first", budgets)).chosen == 0


async def test_a_monthly_budget_lasts_the_calendar_month() -> None:
    clock = Clock("2026-02-28T12:00:00")
    book, _, _ = books(clock)
    (_, month) = book.touched(KEY, None, None)
    assert (month.window, book.refusal(month).retry_after) == ("2026-02", pytest.approx(12 * 3600.0))
    clock.now = at("2026-03-01T00:00:00")
    assert book.touched(KEY, None, None)[1].window == "2026-03"


def test_configured_budgets_are_exported_from_the_start() -> None:
    _, metrics, _ = books(Clock("2026-12-01T10:00:00"), tiers={"premium": BudgetCaps(daily_usd=100.0)})
    for label in ("key:team-a:day", "key:team-a:month", "user:team-a:day", "tier:premium:day"):
        assert gauge(metrics, label) == 0.0
    assert metrics.registry.get_sample_value("gateway_budget_used_ratio", {"budget": "key:plain:day"}) is None


def test_which_budgets_a_request_touches() -> None:
    book, _, _ = books(Clock("2026-12-01T10:00:00"), tiers={"premium": BudgetCaps(daily_usd=100.0)})
    names = [b.name for b in book.touched("team-a", "premium", "alice")]
    assert names[:3] == ["key:team-a:day", "key:team-a:month", names[2]]
    assert names[2].startswith("user:team-a:") and "alice" not in names[2] and names[2].endswith(":day")
    assert names[3:] == ["tier:premium:day"]
    assert book.touched(PLAIN, "standard", "bob") == ()  # no budget on this key, its end users or its tier
    assert book.touched("nobody", None, None) == ()
    unbudgeted, _, _ = books(Clock("2026-12-01T10:00:00"))
    assert unbudgeted.enabled  # KEY has budgets


async def test_what_admissions_report_is_the_view_the_gauge_and_one_line_per_share_crossed() -> None:
    clock = Clock("2026-12-01T10:00:00")
    book, metrics, lines = books(clock)
    limiter = LocalLimiter(wall=clock)
    budgets = book.touched(KEY, None, "alice")
    admission = await limiter.admit([Candidate("a/m", "a", (), 0.45)], [], "first", budgets)
    book.observe(budgets, admission)
    assert book.used(budgets) == pytest.approx(0.9)  # alice's: 0.45 of 0.5
    assert gauge(metrics, "key:team-a:day") == pytest.approx(0.45)
    assert gauge(metrics, "user:team-a:day") == pytest.approx(0.9)
    crossed = [(f["budget"], f["threshold"]) for f in lines.fields if f.get("event") == "budget_alert"]
    assert crossed == [("user:team-a:day", 0.5), ("user:team-a:day", 0.8)]  # both crossed at once

    # Another end user of the key, less spent: the key's end-user gauge keeps the highest in the window.
    others = book.touched(KEY, None, "bob")
    book.observe(others, await limiter.admit([Candidate("a/m", "a", (), 0.1)], [], "first", others))
    assert gauge(metrics, "user:team-a:day") == pytest.approx(0.9)
    assert "alice" not in metrics.render().decode() and "bob" not in metrics.render().decode()

    # The next day the end users' gauge starts again from what they spend then; budgets not handed out by
    # touched() (a list) are observed alike.
    clock.now = at("2026-12-02T10:00:00")
    fresh = list(book.touched(KEY, None, "bob"))
    book.observe(fresh, await limiter.admit([Candidate("a/m", "a", (), 0.1)], [], "first", fresh))
    assert gauge(metrics, "user:team-a:day") == pytest.approx(0.2) and book.used(fresh) == pytest.approx(0.2)


async def test_costs_are_counted_by_bounded_labels() -> None:
    book, metrics, _ = books(Clock("2026-12-01T10:00:00"))
    book.charge("team-a", "premium", "alice", "acct/m", "agent", 0.25)
    book.charge("team-a", "made-up-by-a-trusted-key", None, "acct/m", "agent", 0.5)
    book.charge("team-a", "premium", None, "acct/free", "agent", None)  # unpriced: not in USD

    def cost(tier: str) -> float | None:
        labels = {"deployment": "acct/m", "key": "team-a", "tier": tier, "route": "agent"}
        return metrics.registry.get_sample_value("gateway_cost_usd_total", labels)

    assert (cost("premium"), cost("other")) == (0.25, 0.5)
    await book.ledger.flush()
    (unpriced,) = await book.ledger.tables.tables(book.calendar().day, ["unpriced:n"])
    assert unpriced == {"acct/free": 1.0}  # counted, never taken for free
