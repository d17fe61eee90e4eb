"""Budgets in the configuration: per key, per end user of a key, per tier; and no unknown price with them."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.auth import digest
from gateway.config import ConfigError, load_settings
from gateway.config.model import BudgetCaps, Settings
from gateway.providers import REGISTRY

BASE = f"""
providers:
  acct:
    kind: openai
    api_key_env: KEY
    models:
      gpt-4o-mini: {{}}
      self-hosted: {{upstream_model: my-llama, price: {{input_per_mtok: 0}}}}
keys:
  - name: team-a
    key_sha256: {digest("a")}
    tier: premium
"""


def load(tmp_path: Path, text: str) -> Settings:
    path = tmp_path / "gateway.yaml"
    path.write_text(text)
    return load_settings(str(path), {"KEY": "sk-x"}, kinds=REGISTRY)


def errors(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, text)
    return info.value.errors


def test_caps_per_key_end_user_and_tier(tmp_path: Path) -> None:
    text = BASE + (
        "    budget: {daily_usd: 50, monthly_usd: 1000}\n"
        "    user_budget: {daily_usd: 2.5}\n"
        "budgets:\n  tiers:\n    premium: {monthly_usd: 20000}\n    standard: {}\n"
    )
    settings = load(tmp_path, text)
    key = settings.keys[0]
    assert key.budget == BudgetCaps(daily_usd=50.0, monthly_usd=1000.0)
    assert key.user_budget == BudgetCaps(daily_usd=2.5)
    assert dict(settings.budgets.tiers) == {"premium": BudgetCaps(monthly_usd=20000.0)}


def test_no_budget_by_default(tmp_path: Path) -> None:
    settings = load(tmp_path, BASE)
    assert not settings.keys[0].budget.any and not settings.budgets.tiers


def test_bad_caps_are_named_by_their_path(tmp_path: Path) -> None:
    text = BASE + (
        "    budget: {daily_usd: -1, weekly_usd: 5}\n"
        "    user_budget: 3\n"
        "budgets:\n  tiers:\n    premium: {monthly_usd: zero}\n  per_route: {}\n"
    )
    found = errors(tmp_path, text)
    for expected in (
        "keys[0].budget.daily_usd: expected USD > 0, got -1",
        "keys[0].budget.weekly_usd: unknown key",
        "keys[0].user_budget: expected a mapping, got int",
        "budgets.tiers.premium.monthly_usd: expected USD > 0, got 'zero'",
        "budgets.per_route: unknown key",
    ):
        assert any(e.split(": ", 1)[1].startswith(expected) for e in found), (expected, found)


def test_with_budgets_every_deployment_needs_a_price(tmp_path: Path) -> None:
    unpriced = BASE.replace(
        "      self-hosted: {upstream_model: my-llama, price: {input_per_mtok: 0}}", "      mystery: {}"
    )
    load(tmp_path, unpriced)  # no budget: served, its requests counted as unpriced in the ledger
    found = errors(tmp_path, unpriced + "    budget: {daily_usd: 5}\n")
    assert any(
        "providers.acct.models.mystery.price: no price is known for this model and budgets are set" in e for e in found
    )
    assert len(found) == 1  # gpt-4o-mini has the catalog's price, self-hosted an explicit 0
