"""What GET /admin/spend and gateway spend answer, from a ledger: filters, windows, and whose budgets show."""

from __future__ import annotations

from pathlib import Path

import pytest
from harness import UPSTREAM_KEY
from spend import support

from gateway.config import load_settings
from gateway.config.model import Settings
from gateway.providers import REGISTRY
from gateway.spend.books import Calendar
from gateway.spend.ledger import Entry, Ledger, MemoryTables
from gateway.spend.report import BadQuery, Query, report

NOW = 1_796_212_800.0  # 2026-12-02T12:00:00Z
CAL = Calendar.at(NOW)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    keys = [
        support.key("team-a", "a", tier="gold", budget={"daily_usd": 10}, user_budget={"daily_usd": 1}),
        support.key("team-b", "b", tier="gold", budget={"monthly_usd": 100}),
        support.key("team-c", "c"),
    ]
    path = tmp_path / "gateway.yaml"
    path.write_text(support.config(9000, "http://127.0.0.1:9", keys=keys, tiers={"gold": {"daily_usd": 50}}))
    return load_settings(str(path), {"FAKE_UPSTREAM_KEY": UPSTREAM_KEY}, kinds=REGISTRY)


@pytest.fixture
async def ledger() -> Ledger:
    ledger = Ledger(MemoryTables())
    for key, user, usd in [("team-a", "alice", 2.0), ("team-a", "bob", 0.5), ("team-b", "alice", 7.0)]:
        ledger.add(Entry(key, "gold", user, "acct/premium", "agent", usd), (CAL.day, CAL.month))
    ledger.add(Entry("team-c", "standard", None, "acct/cheap", "cheap", 0.25), (CAL.day, CAL.month))
    return ledger


async def test_everything_at_once(ledger: Ledger, settings: Settings) -> None:
    whole = await report(ledger, settings, Query(), NOW)
    assert (whole["window"], whole["period"], whole["ends_at"]) == ("2026-12-02", "day", "2026-12-03T00:00:00Z")
    assert whole["total"] == {"usd": 9.75, "requests": 4}
    assert whole["keys"][0] == {"key": "team-b", "usd": 7.0, "requests": 1}  # highest spend first
    assert [t["tier"] for t in whole["tiers"]] == ["gold", "standard"]
    assert whole["end_users"][:2] == [
        {"key": "team-b", "end_user": "alice", "usd": 7.0, "requests": 1},
        {"key": "team-a", "end_user": "alice", "usd": 2.0, "requests": 1},
    ]
    budgets = {b["budget"]: b for b in whole["budgets"]}
    assert set(budgets) == {"key:team-a:day", "tier:gold:day"}  # the day's caps (team-b's is monthly)
    assert budgets["key:team-a:day"] | {"resets_at": ""} == {
        "budget": "key:team-a:day",
        "cap_usd": 10.0,
        "spent_usd": 2.5,
        "used": 0.25,
        "resets_at": "",
    }
    assert budgets["tier:gold:day"]["spent_usd"] == 9.5


async def test_one_key_shows_its_own_budgets_and_its_tier_s_only(ledger: Ledger, settings: Settings) -> None:
    a = await report(ledger, settings, Query(key="team-a"), NOW)
    assert a["keys"] == [{"key": "team-a", "usd": 2.5, "requests": 2}]
    assert [u["end_user"] for u in a["end_users"]] == ["alice", "bob"]
    assert [b["budget"] for b in a["budgets"]] == ["key:team-a:day", "tier:gold:day"]
    assert "total" not in a and "deployments" not in a
    c = await report(ledger, settings, Query(key="team-c"), NOW)
    assert c["budgets"] == []  # no budget of its own, none for its tier; nobody else's
    b = await report(ledger, settings, Query(key="team-b", window="month"), NOW)
    assert [x["budget"] for x in b["budgets"]] == ["key:team-b:month"]


async def test_one_end_user_under_every_key(ledger: Ledger, settings: Settings) -> None:
    alice = await report(ledger, settings, Query(end_user="alice"), NOW)
    assert [(u["key"], u["usd"]) for u in alice["end_users"]] == [("team-a", 2.0), ("team-b", 7.0)]
    assert [(b["budget"], b["end_user"], b["spent_usd"]) for b in alice["budgets"]] == [
        ("user:team-a:day", "alice", 2.0)
    ]


async def test_windows_by_name(ledger: Ledger, settings: Settings) -> None:
    assert (await report(ledger, settings, Query(window="month"), NOW))["total"]["usd"] == 9.75
    assert (await report(ledger, settings, Query(window="2026-12-01"), NOW))["total"] == {"usd": 0, "requests": 0}
    assert (await report(ledger, settings, Query(window="2026-12"), NOW))["period"] == "month"


@pytest.mark.parametrize(
    ("query", "param"),
    [(Query(key="nobody"), "key"), (Query(window="yesterday"), "window"), (Query(top=5000), "top")],
)
async def test_nonsense_is_refused(ledger: Ledger, settings: Settings, query: Query, param: str) -> None:
    with pytest.raises(BadQuery) as refused:
        await report(ledger, settings, query, NOW)
    assert refused.value.param == param
