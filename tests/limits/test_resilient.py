"""Redis failures: kill, pause and absence at start, against private redis-server processes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import replace
from functools import partial
from typing import Any

import pytest
from redis_procs import RedisServer, free_port

from gateway.errors import ServiceUnavailable
from gateway.limits.model import BucketSpec, Candidate
from gateway.limits.resilient import ResilientLimiter, scaled

DEADLINE = 0.05
DEP = BucketSpec("dep:a/m:rpm", capacity=10, refill_per_sec=0.001, cost=1, kind="requests")
ONLY = [Candidate("a/m", "a", (DEP,))]
QUOTA = BucketSpec("key:k:rpm", capacity=100, refill_per_sec=1, cost=1, kind="requests")


async def eventually(check: Callable[[], bool], timeout: float = 2.0) -> float:
    """Seconds until ``check()`` held; fails after ``timeout``."""
    start = time.monotonic()
    while not check():
        assert time.monotonic() - start < timeout, "condition not reached in time"
        await asyncio.sleep(0.02)
    return time.monotonic() - start


async def quickest(calls: Iterable[Callable[[], Awaitable[Any]]]) -> tuple[float, list[Any]]:
    """The shortest of several timed calls made one after the other, and what each returned. A bound on how long
    a code path waits (no Redis call, one deadline) holds for the quickest of a few tries even on a loaded
    machine, where any single try may lose the CPU for tens of milliseconds; a path that waits is slow every time.
    """
    times, results = [], []
    for call in calls:
        start = time.monotonic()
        results.append(await call())
        times.append(time.monotonic() - start)
    return min(times), results


def admitted(results: list[Any]) -> bool:
    return all(a.chosen == 0 for a in results)


@pytest.fixture
async def make() -> AsyncIterator[Callable[..., ResilientLimiter]]:
    made: list[ResilientLimiter] = []

    def factory(url: str, replica: str = "r1", **options: Any) -> ResilientLimiter:
        limiter = ResilientLimiter(url, replica, deadline=DEADLINE, prefix="resilient", **options)
        made.append(limiter)
        return limiter

    yield factory
    for limiter in made:
        await limiter.close()


async def test_kill_degrades_to_a_local_share_and_restart_recovers(
    redis_server: RedisServer, make: Callable[..., ResilientLimiter]
) -> None:
    modes: list[str] = []
    first, second = make(redis_server.url, "r1", on_mode_change=modes.append), make(redis_server.url, "r2")
    await first.start()
    await second.start()
    # On a busy machine a start may miss its deadline and begin degraded: its first probe then finishes it.
    await eventually(lambda: first.mode == second.mode == "redis")
    modes.clear()
    assert await first.replicas.beat() == 2
    assert (first.mode, (await first.admit(ONLY, [QUOTA])).chosen, first.redis.round_trips) == ("redis", 0, 1)

    redis_server.kill()
    # A dead Redis refuses at once: no deadline, and nowhere near the 1 s socket timeout.
    refused_at_once, results = await quickest([lambda: first.admit(ONLY, []), lambda: second.admit(ONLY, [])])
    assert refused_at_once < DEADLINE and admitted(results)
    assert first.mode == second.mode == "degraded" and modes == ["degraded"]
    # Each replica's share is what it last saw of the bucket in Redis over the 2 live replicas: the first saw 9
    # left (4.5 each), of which the admit above took 1; the second never used the bucket, so its share is full.
    results = [await first.admit(ONLY, []) for _ in range(9)]
    assert sum(r.chosen == 0 for r in results) == 3
    assert results[-1].skipped == (("a/m", "full: dep:a/m:rpm"),)
    assert sum([(await second.admit(ONLY, [])).chosen == 0 for _ in range(9)]) == 4  # 5, less the admit above
    with pytest.raises(ServiceUnavailable) as refused:
        await first.admit(ONLY, [QUOTA])  # fail closed: quotas cannot be enforced without Redis
    assert refused.value.retry_after == 1.0

    # Settles and cooldowns made while degraded go to the local buckets.
    other = BucketSpec("dep:b/m:rpm", capacity=10, refill_per_sec=0.001, cost=1, kind="requests")
    reservation = (await first.admit([Candidate("b/m", "b", (other,))], [])).reservation
    assert reservation is not None and reservation.buckets == (other,)  # the real bucket, not the share
    assert await first.local.levels([scaled(other, 2)]) == [pytest.approx(4, abs=0.01)]
    await first.settle(reservation, None)
    assert await first.local.levels([scaled(other, 2)]) == [pytest.approx(5, abs=0.01)]
    await first.cooldown("b/m", None, 5)
    assert (await first.cooldowns(["b/m"]))["b/m"] == pytest.approx(5, abs=0.1)

    redis_server.start()
    await eventually(lambda: first.mode == "redis")
    assert modes == ["degraded", "redis"]
    before = first.redis.round_trips
    fresh = [Candidate("c/m", "c", (replace(other, name="dep:c/m:rpm"),))]
    assert (await first.admit(fresh, [QUOTA])).chosen == 0
    assert first.redis.round_trips == before + 1
    # The restarted Redis has room on the spent bucket, but the second replica may still be admitting on its
    # share: this one keeps within its own for two probe intervals.
    assert (await first.admit(ONLY, [])).skipped == (("a/m", "full: dep:a/m:rpm"),)
    await asyncio.sleep(2 * first.probe_interval)
    assert (await first.admit(ONLY, [])).chosen == 0


async def test_shares_start_from_the_level_last_seen_and_what_they_admit_is_charged_to_redis(
    redis_server: RedisServer, make: Callable[..., ResilientLimiter]
) -> None:
    """A Redis blip while a provider account is nearly spent must not hand the replica a full share (the
    fleet would admit up to another minute of the account), and what it admits meanwhile reaches Redis."""
    tokens = BucketSpec("acct:a:tpm", capacity=1000, refill_per_sec=0.001, cost=100, kind="tokens")
    only = [Candidate("a/m", "a", (tokens,))]
    limiter = make(redis_server.url)
    await limiter.start()
    await eventually(lambda: limiter.mode == "redis")
    assert [(await limiter.admit(only, [])).chosen for _ in range(8)] == [0] * 8  # 200 left
    redis_server.pause()
    degraded = [await limiter.admit(only, []) for _ in range(4)]
    assert limiter.mode == "degraded"
    assert [a.chosen for a in degraded] == [0, 0, None, None]  # the 200 Redis had left, as it would have
    first, second = degraded[0].reservation, degraded[1].reservation
    assert first is not None and second is not None
    await limiter.settle(first, 150)  # while Redis is away: owed to it
    # The admission that found Redis paused waits in its buffer; past its patience Redis runs it as a no-op.
    await asyncio.sleep(limiter.redis.patience)
    redis_server.resume()
    await eventually(lambda: limiter.mode == "redis")
    await limiter.settle(second, 60)  # after: its usage, not a refund of a reservation Redis never held
    await limiter.flush()
    assert await limiter.redis.levels([tokens]) == [pytest.approx(200 - 150 - 60, abs=0.1)]


async def test_reservations_running_at_the_switch_back_are_charged_to_redis_and_settle_as_its_own(
    redis_server: RedisServer, make: Callable[..., ResilientLimiter]
) -> None:
    """The provider counted a running request's reservation when it was sent: Redis must hold it from the
    switch back on, not only once the request ends (a minute later, for a long stream)."""
    tokens = BucketSpec("acct:a:tpm", capacity=1000, refill_per_sec=0.001, cost=100, kind="tokens")
    only = [Candidate("a/m", "a", (tokens,))]
    limiter = make(redis_server.url, probe_interval=0.1)
    await limiter.start()
    await eventually(lambda: limiter.mode == "redis")
    assert [(await limiter.admit(only, [])).chosen for _ in range(6)] == [0] * 6  # 400 left
    redis_server.pause()
    running = [(await limiter.admit(only, [])).reservation for _ in range(3)]
    assert limiter.mode == "degraded"
    await asyncio.sleep(limiter.redis.patience)
    redis_server.resume()
    await eventually(lambda: limiter.mode == "redis")
    assert await limiter.redis.levels([tokens]) == [pytest.approx(100, abs=0.1)]  # the three are held
    first, second, third = running
    assert first is not None and second is not None and third is not None
    await limiter.settle(first, 30)  # a refund of what its reservation took beyond its use
    await limiter.settle(second, None)  # never reached the provider: all of it back
    await limiter.flush()
    assert await limiter.redis.levels([tokens]) == [pytest.approx(100 + 70 + 100, abs=0.1)]
    await limiter.settle(third, 100)  # exactly its reservation: nothing changes
    await limiter.flush()
    assert await limiter.redis.levels([tokens]) == [pytest.approx(270, abs=0.1)]


async def test_a_replica_back_on_redis_keeps_within_its_shares_while_others_may_not_be(
    redis_server: RedisServer, make: Callable[..., ResilientLimiter]
) -> None:
    """Replicas find Redis again up to a probe interval apart; until the last one has charged what its share
    admitted, Redis holds refill that replica spends, so the first one back must not take it."""
    tokens = BucketSpec("acct:a:tpm", capacity=1000, refill_per_sec=0.001, cost=100, kind="tokens")
    spare = BucketSpec("acct:b:tpm", capacity=1000, refill_per_sec=0.001, cost=100, kind="tokens")
    both = [Candidate("a/m", "a", (tokens,)), Candidate("b/m", "b", (spare,))]
    back, late = make(redis_server.url, "r1", probe_interval=0.1), make(redis_server.url, "r2")
    for limiter in (back, late):
        await limiter.start()
    await eventually(lambda: back.mode == late.mode == "redis")
    assert await back.replicas.beat() == 2
    assert [(await back.admit(both[:1], [])).chosen for _ in range(5)] == [0] * 5  # it saw 500 left
    assert (await late.admit(both[:1], [])).chosen == 0  # it saw 400 left
    redis_server.pause()
    assert [(await late.admit(both[:1], [])).chosen for _ in range(3)] == [0, 0, None]  # its share: 200
    await late.close()  # still away when the other returns (here for good): Redis does not know what it spent
    assert (await back.admit(both[:1], [])).chosen == 0  # degrades too; 150 of its 250 left
    await asyncio.sleep(back.redis.patience)
    redis_server.resume()
    await eventually(lambda: back.mode == "redis")
    # Redis says 300 (400 less this replica's 100); its share says 150, and the other candidate's is full.
    answers = [await back.admit(both, []) for _ in range(3)]
    assert [a.chosen for a in answers] == [0, 1, 1]
    assert answers[1].reservation is not None and answers[1].reservation.buckets == (spare,)
    assert (await back.admit(both[:1], [])).skipped == (("a/m", "full: acct:a:tpm"),)
    await back.flush()  # the refused admission's charge is given back to Redis
    assert await back.redis.levels([tokens]) == [pytest.approx(200, abs=0.1)]
    await asyncio.sleep(2 * back.probe_interval)  # every replica that degraded with it has probed by now
    assert (await back.admit(both[:1], [])).chosen == 0


async def test_paused_redis_never_holds_a_request_past_the_deadline(
    redis_server: RedisServer, make: Callable[..., ResilientLimiter]
) -> None:
    limiters = [make(redis_server.url, f"r{i}") for i in range(3)]
    for limiter in limiters:
        await limiter.start()
    await eventually(lambda: all(limiter.mode == "redis" for limiter in limiters))  # a busy start may take a probe
    redis_server.pause()
    # A missed deadline is tried once more before degrading (the loop, not Redis, may have been late).
    waited, results = await quickest([partial(limiter.admit, ONLY, []) for limiter in limiters])
    assert waited < 2 * DEADLINE + 0.04 and admitted(results)
    assert all(limiter.mode == "degraded" for limiter in limiters)
    limiter = limiters[0]
    before = limiter.round_trips
    at_once, results = await quickest([partial(limiter.admit, ONLY, [])] * 3)
    assert at_once < 0.02 and admitted(results)
    assert limiter.round_trips == before  # degraded: no Redis call until a probe succeeds
    redis_server.resume()
    await eventually(lambda: all(limiter.mode == "redis" for limiter in limiters))


async def test_start_with_redis_down_works_degraded_then_recovers(
    make: Callable[..., ResilientLimiter],
) -> None:
    port = free_port()
    modes: list[str] = []
    limiter = make(f"redis://127.0.0.1:{port}/0", on_mode_change=modes.append, fail_mode="open")
    others = [make(f"redis://127.0.0.1:{port}/0", f"r{i}", fail_mode="open") for i in (2, 3)]
    assert (await quickest([limiter.start, *(other.start for other in others)]))[0] < DEADLINE + 0.04
    assert limiter.mode == "degraded"
    before = limiter.round_trips
    at_once, results = await quickest([partial(limiter.admit, ONLY, [QUOTA])] * 3)
    assert at_once < 0.02 and admitted(results)  # fail open: the quota is ignored
    assert limiter.round_trips == before

    server = RedisServer(port).start()
    try:
        await eventually(lambda: limiter.mode == "redis")
        assert modes == ["degraded", "redis"]
        assert (await limiter.admit(ONLY, [QUOTA])).quota[0].name == "key:k:rpm"
    finally:
        await limiter.close()
        server.kill()


async def test_start_with_redis_paused_returns_within_the_deadline(
    redis_server: RedisServer, make: Callable[..., ResilientLimiter]
) -> None:
    limiters = [make(redis_server.url, f"r{i}") for i in range(3)]
    redis_server.pause()
    assert (await quickest([limiter.start for limiter in limiters]))[0] < DEADLINE + 0.04
    assert all(limiter.mode == "degraded" for limiter in limiters)
    redis_server.resume()
    await eventually(lambda: all(limiter.mode == "redis" for limiter in limiters))


async def test_divisor_source_and_a_failing_hook(make: Callable[..., ResilientLimiter]) -> None:
    def broken(mode: str) -> None:
        raise RuntimeError(mode)

    limiter = make(f"redis://127.0.0.1:{free_port()}/0", on_mode_change=broken)
    limiter_quarter = make(f"redis://127.0.0.1:{free_port()}/0", local_fallback_divisor_source=lambda: 4)
    await limiter.start()
    await limiter_quarter.start()
    assert limiter.mode == "degraded"  # the hook raised, admission goes on
    results = [await limiter_quarter.admit(ONLY, []) for _ in range(5)]
    assert [r.chosen for r in results] == [0, 0, None, None, None]  # 10 / 4 = 2.5 requests
    with pytest.raises(ServiceUnavailable):
        await limiter.admit(ONLY, [QUOTA])
