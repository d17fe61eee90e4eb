"""The pure decision and settle arithmetic."""

from __future__ import annotations

import math

import pytest

from gateway.limits import decide
from gateway.limits.decide import COOLDOWN, Decision, refunds
from gateway.limits.model import BucketSpec, Candidate, Reservation

TOKENS = BucketSpec("acct:a:tpm", 100, 1, 40, "tokens")
REQUESTS = BucketSpec("acct:a:rpm", 10, 1, 1, "requests")


def test_cooldown_wait_includes_the_buckets_behind_it() -> None:
    only = [Candidate("a/m", "a", (REQUESTS,))]
    result = decide.decide(only, [], "first", level=lambda _: 0.0, cooldown=lambda _: 0.5)
    assert result == Decision(None, 1.0, False, ((0, COOLDOWN),))


def test_unlimited_candidate_has_the_most_headroom() -> None:
    candidates = [Candidate("a/m", "a", (REQUESTS,)), Candidate("b/m", "b", ())]
    result = decide.decide(candidates, [], "most_headroom", level=lambda b: b.capacity, cooldown=lambda _: 0)
    assert result.chosen == 1


def test_headroom_ties_go_to_the_earlier_candidate() -> None:
    candidates = [Candidate("a/m", "a", (REQUESTS,)), Candidate("b/m", "b", (REQUESTS,))]
    result = decide.decide(candidates, [], "most_headroom", level=lambda b: 5.0, cooldown=lambda _: 0)
    assert result.chosen == 0


@pytest.mark.parametrize(
    ("actual", "expected"),
    [
        (10, [(TOKENS, 30)]),  # reserved 40, used 10: give back 30; the request count stays taken
        (70, [(TOKENS, -30)]),  # used more than reserved: charge the excess
        (40, []),  # exactly as estimated: nothing to do, no round trip
        (None, [(TOKENS, 40), (REQUESTS, 1)]),  # never reached the provider: everything back
    ],
)
def test_refunds(actual: int | None, expected: list[tuple[BucketSpec, float]]) -> None:
    assert refunds(Reservation((TOKENS, REQUESTS)), actual) == expected


def test_state_reports_no_negative_remaining() -> None:
    state = decide.state(BucketSpec("x", 10, 2, 25, "tokens"), -15)
    assert (state.remaining, state.reset_seconds) == (0.0, 12.5)
    assert math.isclose(decide.idle_ttl(BucketSpec("x", 10, 2, 25, "tokens"), -15), 25 + 10)
