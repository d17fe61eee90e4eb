"""What only the Redis implementation has: key layout and TTLs, round trips, scripts, replicas sharing."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis
from redis.crc import key_slot
from redis_procs import SHARED_URL, RedisServer

from gateway.limits.model import BucketSpec, Budget, Candidate
from gateway.limits.redis_limiter import RedisLimiter, encode_admit
from gateway.state.store import KeyLayout


def rpm(name: str, capacity: float = 10, cost: float = 1, refill: float = 1.0) -> BucketSpec:
    return BucketSpec(name, capacity, refill, cost, "requests")


@pytest.fixture
async def limiter(prefix: str, shared_client: aioredis.Redis) -> AsyncIterator[RedisLimiter]:
    """``shared_client`` is requested for its cleanup: it deletes the prefix's keys afterwards."""
    impl = RedisLimiter(aioredis.Redis.from_url(SHARED_URL), prefix)
    await impl.start()
    yield impl
    await impl.close()


async def test_keys_carry_one_hash_tag_and_a_ttl(
    limiter: RedisLimiter, shared_client: aioredis.Redis, prefix: str
) -> None:
    dep = rpm("dep:a/m:rpm", capacity=10, cost=4)
    quota = rpm("key:k:rpm", capacity=100, cost=4, refill=10)
    started = time.monotonic()
    await limiter.admit([Candidate("a/m", "a", (dep,))], [quota])
    await limiter.cooldown("a/m", "a", 5)
    keys = sorted([k.decode() async for k in shared_client.scan_iter(match="{" + prefix + "}:*")])
    tag = "{" + prefix + "}"
    assert keys == sorted([f"{tag}:b2:dep:a/m:rpm", f"{tag}:b2:key:k:rpm", f"{tag}:cd2:dep:a/m", f"{tag}:cd2:acct:a"])
    assert len({key_slot(k.encode()) for k in keys}) == 1
    ttls = [await shared_client.pttl(f"{tag}:{key}") for key in ("b2:dep:a/m:rpm", "b2:key:k:rpm", "cd2:acct:a")]
    # The TTLs count down from when they were set; a loaded machine may take a while to get here.
    elapsed_ms = (time.monotonic() - started) * 1000
    # Bucket TTL: twice the time to refill fully, plus a 10 s margin; the cooldown its own length.
    for ttl, expected in zip(ttls, [(2 * 4 / 1 + 10) * 1000, (2 * 4 / 10 + 10) * 1000, 5000], strict=True):
        assert expected - elapsed_ms - 5 <= ttl <= expected


async def test_a_bucket_refilled_by_settling_is_deleted(
    limiter: RedisLimiter, shared_client: aioredis.Redis, prefix: str
) -> None:
    dep = rpm("dep:a/m:rpm", refill=0.001)
    admission = await limiter.admit([Candidate("a/m", "a", (dep,))], [])
    assert admission.reservation is not None
    assert await shared_client.exists("{" + prefix + "}:b2:dep:a/m:rpm")
    await limiter.settle(admission.reservation, None)
    assert not await shared_client.exists("{" + prefix + "}:b2:dep:a/m:rpm")


async def test_admit_and_settle_are_one_round_trip_each(redis_server: RedisServer) -> None:
    sent: list[bytes] = []

    class Counting(aioredis.Connection):
        async def send_packed_command(self, command: Any, check_health: bool = True) -> None:
            sent.append(command if isinstance(command, bytes) else b"".join(command))
            await super().send_packed_command(command, check_health)

    limiter = RedisLimiter(aioredis.Redis.from_url(redis_server.url, connection_class=Counting), "rt")
    observer = aioredis.Redis.from_url(redis_server.url)
    try:
        await limiter.start()
        tokens = BucketSpec("acct:a:tpm", 1000, 10, 50, "tokens")
        candidates = [Candidate("a/m", "a", (rpm("dep:a/m:rpm"), tokens)), Candidate("b/m", "b", ())]
        quotas = [rpm("key:k:rpm"), BucketSpec("key:k:tpm", 1000, 10, 50, "tokens")]
        await limiter.admit(candidates, quotas)  # opens the connection (HELLO, CLIENT SETINFO)
        await observer.config_resetstat()
        sent.clear()
        before = limiter.round_trips

        admission = await limiter.admit(candidates, quotas)
        assert len(sent) == 1 and b"EVALSHA" in sent[0]
        assert admission.reservation is not None
        await limiter.settle(admission.reservation, 20)
        assert len(sent) == 2 and b"EVALSHA" in sent[1]

        assert limiter.round_trips - before == 2
        stats = await observer.info("commandstats")
        assert stats["cmdstat_evalsha"]["calls"] == 2
        assert "cmdstat_eval" not in stats and "cmdstat_script|load" not in stats
    finally:
        await observer.aclose()
        await limiter.close()


async def test_scripts_are_reloaded_after_a_flush(redis_server: RedisServer) -> None:
    limiter = RedisLimiter(aioredis.Redis.from_url(redis_server.url), "flush")
    try:
        await limiter.start()
        await limiter.client.script_flush()
        assert (await limiter.admit([Candidate("a/m", "a", (rpm("dep:a/m:rpm"),))], [])).chosen == 0
    finally:
        await limiter.close()


@pytest.mark.usefixtures("shared_client")
async def test_two_replicas_share_one_bucket(prefix: str) -> None:
    replicas = [RedisLimiter(aioredis.Redis.from_url(SHARED_URL), prefix) for _ in range(2)]
    try:
        for replica in replicas:
            await replica.start()
        five = [Candidate("a/m", "a", (rpm("dep:a/m:rpm", capacity=5, refill=0.001),))]
        results = await asyncio.gather(*(replicas[n % 2].admit(five, []) for n in range(50)))
        assert sum(r.chosen == 0 for r in results) == 5
        assert {r.retry_after > 100 for r in results if r.chosen is None} == {True}
    finally:
        for replica in replicas:
            await replica.close()


def test_encode_admit_names_each_bucket_where_it_is_used() -> None:
    """admit_v7 takes a request as it is, in one pass: a bucket two candidates share (their account's) is
    named by each, and the script gives it one level (tests/limits/test_semantics.py: charged once)."""
    shared = BucketSpec("acct:a:tpm", 100, 1, 10, "tokens")
    daily = Budget("key:k:day", "2026-12-01", 5.0, 1796169600.0)
    keys, args = encode_admit(
        KeyLayout("p"),
        [Candidate("a/m", "a", (rpm("dep:a/m:rpm"), shared), 0.25), Candidate("a/n", "a", (shared,), 0.5)],
        [rpm("key:k:rpm")],
        "first",
        [daily],
    )
    assert keys == [
        "{p}:b2:key:k:rpm",  # the quotas' buckets
        "{p}:cd2:dep:a/m",  # then each candidate's cooldowns and buckets
        "{p}:cd2:acct:a",
        "{p}:b2:dep:a/m:rpm",
        "{p}:b2:acct:a:tpm",
        "{p}:cd2:dep:a/n",
        "{p}:cd2:acct:a",
        "{p}:b2:acct:a:tpm",
        "{p}:bud:key:k:day:2026-12-01",  # budgets last
    ]
    quotas = [1, 10, 1.0, 1]  # one quota: capacity, refill, cost
    first = [0.25, 2, 10, 1.0, 1, 100, 1, 10]  # its USD, two buckets: (capacity, refill, cost) each
    second = [0.5, 1, 100, 1, 10]  # its USD, the shared bucket
    budgets = [1, 5.0, "1796256000000"]  # one budget: its cap, its expiry (a day after its window, in ms)
    alerts = [3, 0.5, 0.8, 1.0]
    stale = [0.0]  # no Redis time after which the call must do nothing
    assert args == ["first", *quotas, 2, *first, *second, *budgets, *alerts, *stale]
