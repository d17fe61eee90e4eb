"""The config's spending caps: a key's and its end users' (``budget``, ``user_budget``) and each tier's
(``budgets.tiers``), and the rule that makes them keepable: every deployment priced."""

from __future__ import annotations

from typing import Any

from gateway.config.model import Account, BudgetCaps, BudgetSettings, VirtualKey
from gateway.config.reader import _pos_float, _Reader


def budget_caps(r: _Reader, raw: Any, path: str) -> BudgetCaps:
    m = r.mapping(raw, path, frozenset({"daily_usd", "monthly_usd"}))
    return BudgetCaps(
        daily_usd=r.get(m, path, "daily_usd", _pos_float, "USD > 0", None),
        monthly_usd=r.get(m, path, "monthly_usd", _pos_float, "USD > 0", None),
    )


def budgets(r: _Reader, raw: Any, accounts: tuple[Account, ...], keys: tuple[VirtualKey, ...]) -> BudgetSettings:
    """``budgets: {tiers: {<tier>: {daily_usd, monthly_usd}}}``. Where any budget is set, every deployment
    needs a price (the catalog's, or the config's; ``input_per_mtok: 0`` serves one free): a budget cannot be
    kept on spend the gateway cannot price, and an unknown price is never taken for free."""
    m = r.mapping(raw, "budgets", frozenset({"tiers"}))
    given = r.mapping(m.get("tiers"), "budgets.tiers", frozenset(m.get("tiers") or {}))
    tiers = {str(t): budget_caps(r, caps, f"budgets.tiers.{t}") for t, caps in given.items()}
    if any(c.any for c in tiers.values()) or any(k.budget.any or k.user_budget.any for k in keys):
        for account in accounts:
            for d in account.deployments:
                if d.price is None:
                    r.error(
                        f"providers.{account.name}.models.{d.model}.price",
                        "no price is known for this model and budgets are set: give its price "
                        "(input_per_mtok: 0 serves it free)",
                    )
    return BudgetSettings(tiers={t: c for t, c in tiers.items() if c.any})
