"""The in-process limiter with a controlled clock: exact arithmetic and eviction of idle state."""

from __future__ import annotations

import pytest

from gateway.limits.base import Immediate
from gateway.limits.local import LocalLimiter
from gateway.limits.model import BucketSpec, Candidate


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


async def test_exact_refill_and_retry_after(clock: Clock) -> None:
    limiter = LocalLimiter(clock)
    spec = BucketSpec("dep:a/m:tpm", capacity=10, refill_per_sec=2, cost=6, kind="tokens")
    only = [Candidate("a/m", "a", (spec,))]
    assert (await limiter.admit(only, [])).chosen == 0  # level 4
    bigger = [Candidate("a/m", "a", (BucketSpec("dep:a/m:tpm", 10, 2, 10, "tokens"),))]
    assert (await limiter.admit(bigger, [])).retry_after == 3.0
    clock.now += 2.5
    assert await limiter.levels([spec]) == [9.0]
    clock.now += 100
    assert await limiter.levels([spec]) == [10.0]


async def test_idle_buckets_and_ended_cooldowns_are_evicted(clock: Clock) -> None:
    limiter = LocalLimiter(clock, sweep_every=1.0)
    spec = BucketSpec("dep:a/m:rpm", capacity=10, refill_per_sec=1, cost=4, kind="requests")
    await limiter.admit([Candidate("a/m", "a", (spec,))], [])
    await limiter.cooldown("b/m", "b", 5)
    assert len(limiter) == 3
    clock.now += 2 * 4 / 1 + 10 + 1  # past the bucket's idle TTL and the cooldown
    await limiter.admit([], [])
    assert len(limiter) == 0
    assert await limiter.cooldowns(["b/m"]) == {"b/m": 0.0}


async def test_a_bucket_back_to_full_is_forgotten_at_once(clock: Clock) -> None:
    limiter = LocalLimiter(clock)
    spec = BucketSpec("dep:a/m:rpm", capacity=10, refill_per_sec=1, cost=4, kind="requests")
    admission = await limiter.admit([Candidate("a/m", "a", (spec,))], [])
    assert admission.reservation is not None
    await limiter.settle(admission.reservation, None)
    assert len(limiter) == 0


def test_invalid_buckets_are_rejected() -> None:
    with pytest.raises(ValueError):
        BucketSpec("x", capacity=10, refill_per_sec=0, cost=1, kind="requests")
    with pytest.raises(ValueError):
        BucketSpec("x", capacity=0, refill_per_sec=1, cost=1, kind="requests")


def test_plain_calls_decide_and_settle_as_the_coroutines_do(clock: Clock) -> None:
    """``base.Immediate``: what the admission step calls without a coroutine; settling says what it gave back."""
    limiter = LocalLimiter(clock)
    assert isinstance(limiter, Immediate)
    spec = BucketSpec("dep:a/m:tpm", capacity=10, refill_per_sec=2, cost=6, kind="tokens")
    admission = limiter.admit_now([Candidate("a/m", "a", (spec,))], [])
    assert admission.chosen == 0 and admission.reservation is not None
    assert limiter.level(spec) == 4.0
    assert limiter.settle_now(admission.reservation, 2) == [(spec, 4.0)]
    assert limiter.level(spec) == 8.0
