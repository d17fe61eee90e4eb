"""Budgets while Redis is unreachable: local shares, fail_mode, and the spend added back on return.

Redis is paused (SIGSTOP), not killed, so what it held before is still there when it resumes: the test can
then see that what was spent meanwhile was added to it, not lost, and not counted twice, and that the
admission that found Redis stalled, still queued in it, charged nothing when Redis finally ran it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from redis_procs import RedisServer

from gateway.errors import ServiceUnavailable
from gateway.limits.model import Budget, Candidate
from gateway.limits.resilient import ResilientLimiter

DEADLINE = 0.05
DAY = Budget("key:k:day", "2026-12-01", 10.0, 4_102_444_800.0)


def costing(usd: float) -> list[Candidate]:
    return [Candidate("a/m", "a", (), usd)]


async def eventually(check: Callable[[], bool], timeout: float = 5.0) -> None:
    start = time.monotonic()
    while not check():
        assert time.monotonic() - start < timeout, "condition not reached in time"
        await asyncio.sleep(0.02)


@pytest.fixture
async def make() -> AsyncIterator[Callable[..., ResilientLimiter]]:
    made: list[ResilientLimiter] = []

    def factory(url: str, replica: str, **options: Any) -> ResilientLimiter:
        limiter = ResilientLimiter(url, replica, deadline=DEADLINE, prefix="budgets", probe_interval=0.1, **options)
        made.append(limiter)
        return limiter

    yield factory
    for limiter in made:
        await limiter.close()


async def on_redis(*limiters: ResilientLimiter) -> None:
    for limiter in limiters:
        await limiter.start()
    await eventually(lambda: all(limiter.mode == "redis" for limiter in limiters))
    # The heartbeat has measured how far Redis's clock is from ours (a quick one does; retried every 2 s).
    await eventually(lambda: all(limiter.redis.offset is not None for limiter in limiters))
    for limiter in limiters:
        await limiter.replicas.beat()


async def spent_in_redis(limiter: ResilientLimiter) -> float:
    (usd,) = await limiter.redis.budget_spend([DAY])
    return usd


@pytest.mark.parametrize("fail_mode", ["closed", "open"])
async def test_a_paused_redis_leaves_each_replica_its_share_and_gets_the_spend_back(
    redis_server: RedisServer, make: Callable[..., ResilientLimiter], fail_mode: str
) -> None:
    first, second = make(redis_server.url, "r1", fail_mode=fail_mode), make(redis_server.url, "r2")
    await on_redis(first, second)
    assert first.replicas.live == 2
    on_shared = await first.admit(costing(2.0), [], "first", [DAY])  # seen: 2 of 10 spent
    assert on_shared.reservation is not None and on_shared.spent == (2.0,)

    redis_server.pause()
    # Degraded: 10 - 2 = 8 left, 4 for each of the two live replicas; a request reserves 1. The first call
    # times out on Redis (which runs it, stale, when it resumes) and is admitted locally.
    local = [await first.admit(costing(1.0), [], "first", [DAY]) for _ in range(4)]
    assert first.mode == "degraded"
    assert all(a.chosen == 0 and a.reservation is not None and a.reservation.local for a in local)
    if fail_mode == "closed":  # the share is spent: whether the budget has room cannot be known
        with pytest.raises(ServiceUnavailable):
            await first.admit(costing(1.0), [], "first", [DAY])
    else:
        assert (await first.admit(costing(1.0), [], "first", [DAY])).chosen == 0
    for admission in local:  # each cost 0.5 in the end
        assert admission.reservation is not None
        await first.settle(admission.reservation, 100, 0.5)
    await first.settle(on_shared.reservation, 100, 1.5)  # admitted on Redis, settled while it is away

    await asyncio.sleep(0.3)  # a stall longer than a caller waits: Redis then runs the first admission stale
    redis_server.resume()
    await eventually(lambda: first.mode == "redis")
    # 1.5 for the request admitted on Redis, 4 x 0.5 spent on the local share; none lost. (In "open" mode the
    # fifth request was admitted beyond the share and never settled: its cost is not known, so it was never
    # reserved anywhere either; a real request settles.)
    await eventually(lambda: not first.budgets.owing)
    assert await spent_in_redis(first) == pytest.approx(3.5)


async def test_a_budget_spent_before_redis_went_away_stays_refused(
    redis_server: RedisServer, make: Callable[..., ResilientLimiter]
) -> None:
    limiter = make(redis_server.url, "r1", fail_mode="open")
    await on_redis(limiter)
    full = await limiter.admit(costing(20.0), [], "first", [DAY])  # takes all 10
    assert full.spent == (10.0,)
    redis_server.pause()
    refused = await limiter.admit(costing(0.5), [], "first", [DAY])  # times out, then refused locally
    assert (limiter.mode, refused.chosen, refused.over_budget) == ("degraded", None, 0)
    redis_server.resume()


async def test_spend_owed_to_redis_waits_as_long_as_redis_is_away(
    redis_server: RedisServer, make: Callable[..., ResilientLimiter]
) -> None:
    limiter = make(redis_server.url, "r1")
    await on_redis(limiter)
    admitted = await limiter.admit(costing(1.0), [], "first", [DAY])
    assert admitted.reservation is not None
    redis_server.pause()
    await limiter.settle(admitted.reservation, 10, 0.25)
    await limiter.flush()  # fails: Redis is paused
    await limiter.flush()
    assert limiter.budgets.owing
    redis_server.resume()
    await eventually(lambda: limiter.mode == "redis" and not limiter.budgets.owing)
    assert await spent_in_redis(limiter) == pytest.approx(0.25)


async def test_an_admission_redis_runs_after_its_caller_gave_up_charges_nothing(
    redis_server: RedisServer, make: Callable[..., ResilientLimiter]
) -> None:
    limiter = make(redis_server.url, "r1")
    await on_redis(limiter)
    assert limiter.redis.offset is not None and limiter.redis.patience > 0
    limiter.redis.patience = -1.0  # as if it reached Redis a second after its caller stopped waiting
    with pytest.raises(TimeoutError):
        await limiter.redis.admit(costing(1.0), [], "first", [DAY])
    assert await spent_in_redis(limiter) == 0.0
