"""Refill, settling, cooldowns, corrections and concurrency, against both implementations."""

from __future__ import annotations

import asyncio

import pytest

from gateway.limits.local import LocalLimiter
from gateway.limits.model import BucketSpec, Candidate
from gateway.limits.redis_limiter import RedisLimiter

Impl = RedisLimiter | LocalLimiter


def bucket(name: str, capacity: float, refill: float, cost: float, kind: str = "requests") -> BucketSpec:
    return BucketSpec(name, capacity, refill, cost, "tokens" if kind == "tokens" else "requests")


async def test_refill_over_time(limiter: Impl) -> None:
    fast = bucket("dep:a/m:rpm", capacity=5, refill=50, cost=5)
    only = [Candidate("a/m", "a", (fast,))]
    assert (await limiter.admit(only, [])).chosen == 0
    refused = await limiter.admit(only, [])
    assert refused.chosen is None
    assert 0 < refused.retry_after <= 0.1  # 5 at 50/s
    await asyncio.sleep(refused.retry_after + 0.02)
    assert (await limiter.admit(only, [])).chosen == 0


async def test_refill_stops_at_capacity(limiter: Impl) -> None:
    fast = bucket("dep:a/m:rpm", capacity=5, refill=100, cost=1)
    await limiter.admit([Candidate("a/m", "a", (fast,))], [])
    await asyncio.sleep(0.1)
    assert await limiter.levels([fast]) == [5]


async def test_a_request_larger_than_the_bucket_drains_it_without_debt(limiter: Impl) -> None:
    big = bucket("dep:a/m:tpm", capacity=10, refill=100, cost=25, kind="tokens")
    only = [Candidate("a/m", "a", (big,))]
    admitted = await limiter.admit(only, [])
    assert admitted.chosen == 0
    assert admitted.reservation is not None and admitted.reservation.buckets[0].cost == 10  # what it took
    refused = await limiter.admit(only, [])
    assert refused.retry_after == pytest.approx(0.1, abs=0.02)  # from 0 (not -15) back to full at 100/s


@pytest.mark.parametrize(("used", "level"), [(15, -5), (25, -10), (10**18, -10), (4, 6)])
async def test_usage_beyond_a_drained_bucket_is_debt_of_at_most_one_capacity(
    limiter: Impl, used: int, level: float
) -> None:
    big = bucket("dep:a/m:tpm", capacity=10, refill=0.001, cost=25, kind="tokens")
    admitted = await limiter.admit([Candidate("a/m", "a", (big,))], [])
    assert admitted.reservation is not None
    await limiter.settle(admitted.reservation, used)  # the provider really used it: that may be debt
    assert await limiter.levels([big]) == [pytest.approx(level, abs=0.01)]


async def test_settle_gives_back_unused_tokens(limiter: Impl) -> None:
    tokens = bucket("acct:a:tpm", capacity=100, refill=0.001, cost=40, kind="tokens")
    requests = bucket("acct:a:rpm", capacity=10, refill=0.001, cost=1)
    admission = await limiter.admit([Candidate("a/m", "a", (tokens, requests))], [])
    assert admission.reservation is not None
    await limiter.settle(admission.reservation, 10)
    assert await limiter.levels([tokens, requests]) == pytest.approx([90, 9], abs=0.01)


async def test_settle_charges_the_excess(limiter: Impl) -> None:
    tokens = bucket("acct:a:tpm", capacity=100, refill=0.001, cost=40, kind="tokens")
    quota = bucket("key:k:tpm", capacity=50, refill=0.001, cost=40, kind="tokens")
    admission = await limiter.admit([Candidate("a/m", "a", (tokens,))], [quota])
    assert admission.reservation is not None
    await limiter.settle(admission.reservation, 70)
    assert await limiter.levels([tokens, quota]) == pytest.approx([30, -20], abs=0.01)


async def test_settle_none_gives_back_everything(limiter: Impl) -> None:
    tokens = bucket("acct:a:tpm", capacity=100, refill=0.001, cost=40, kind="tokens")
    requests = bucket("acct:a:rpm", capacity=10, refill=0.001, cost=1)
    admission = await limiter.admit([Candidate("a/m", "a", (tokens, requests))], [])
    assert admission.reservation is not None
    await limiter.settle(admission.reservation, None)
    assert await limiter.levels([tokens, requests]) == pytest.approx([100, 10], abs=0.01)


async def test_settle_never_overfills(limiter: Impl) -> None:
    tokens = bucket("acct:a:tpm", capacity=100, refill=0.001, cost=40, kind="tokens")
    admission = await limiter.admit([Candidate("a/m", "a", (tokens,))], [])
    assert admission.reservation is not None
    await limiter.settle(admission.reservation, None)
    await limiter.settle(admission.reservation, None)
    assert await limiter.levels([tokens]) == [100]


async def test_cooldown_extends_and_never_shortens(limiter: Impl) -> None:
    await limiter.cooldown("a/m", None, 5)
    await limiter.cooldown("a/m", None, 1)
    assert (await limiter.cooldowns(["a/m"]))["a/m"] == pytest.approx(5, abs=0.1)
    await limiter.cooldown("a/m", None, 8)
    left = await limiter.cooldowns(["a/m", "a/n", "b/m"])
    assert left == pytest.approx({"a/m": 8, "a/n": 0, "b/m": 0}, abs=0.1)


async def test_account_cooldown_covers_its_deployments(limiter: Impl) -> None:
    await limiter.cooldown("a/m", "a", 3)
    assert await limiter.cooldowns(["a/n", "b/m"]) == pytest.approx({"a/n": 3, "b/m": 0}, abs=0.1)


async def test_cooldown_expires(limiter: Impl) -> None:
    await limiter.cooldown("a/m", None, 0.1)
    only = [Candidate("a/m", "a", ())]
    refused = await limiter.admit(only, [])
    assert refused.skipped == (("a/m", "cooldown"),)
    assert refused.retry_after == pytest.approx(0.1, abs=0.02)
    await asyncio.sleep(0.12)
    assert (await limiter.admit(only, [])).chosen == 0


async def test_cooldown_drains_buckets_without_repaying_debt(limiter: Impl) -> None:
    full = bucket("acct:a:tpm", capacity=100, refill=0.001, cost=10, kind="tokens")
    owed = bucket("dep:a/m:tpm", capacity=10, refill=0.001, cost=25, kind="tokens")
    admitted = await limiter.admit([Candidate("a/m", "a", (owed,))], [])
    assert admitted.reservation is not None
    await limiter.settle(admitted.reservation, 15)  # took the 10 it held, used 15: 5 in debt
    await limiter.cooldown("a/m", "a", 1, drain=[full, owed])
    assert await limiter.levels([full, owed]) == pytest.approx([0, -5], abs=0.01)


async def test_correct_lowers_but_never_raises(limiter: Impl) -> None:
    tokens = bucket("acct:a:tpm", capacity=100, refill=0.001, cost=10, kind="tokens")
    await limiter.correct(tokens, 30)
    assert await limiter.levels([tokens]) == pytest.approx([30], abs=0.01)
    await limiter.correct(tokens, 80)
    assert await limiter.levels([tokens]) == pytest.approx([30], abs=0.01)


async def test_concurrent_admits_never_oversubscribe(limiter: Impl) -> None:
    five = bucket("dep:a/m:rpm", capacity=5, refill=0.001, cost=1)
    only = [Candidate("a/m", "a", (five,))]
    results = await asyncio.gather(*(limiter.admit(only, []) for _ in range(50)))
    assert sum(r.chosen == 0 for r in results) == 5
