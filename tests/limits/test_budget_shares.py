"""What a replica owes Redis for budgets: the usual settlement (a known cost) takes a shortcut that must owe
exactly what ``decide.budget_refunds`` says."""

from __future__ import annotations

import pytest

from gateway.limits.budget_shares import BudgetShares
from gateway.limits.decide import budget_refunds
from gateway.limits.model import Budget, Reservation

END = 4_102_444_800.0
DAY = Budget("key:k:day", "2026-12-01", 10.0, END)
MONTH = Budget("key:k:month", "2026-12", 100.0, END)
USER = Budget("user:k:2bd806c97f0e00af:day", "2026-12-01", 1.0, END)


@pytest.mark.parametrize("cost", [0.0, -1.0, 0.3, 0.5, 2.0])
def test_settling_a_known_cost_owes_what_budget_refunds_says(cost: float) -> None:
    reservation = Reservation((), ((DAY, 0.5), (MONTH, 0.3), (USER, 0.0)))
    direct, listed = BudgetShares(), BudgetShares()
    for _ in range(2):  # twice: amounts owed add up until they are taken
        direct.owe_settled(reservation.budgets, cost)
        listed.owe(budget_refunds(reservation, 100, cost))
    assert direct.take() == listed.take()
    assert not direct.owing and not listed.owing
