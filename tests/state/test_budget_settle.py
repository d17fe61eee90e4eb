"""settle_v3 applies a replica's batch of budget spend once: a batch resent after a failed call (which may
still have run) is not counted twice, and a replica's earlier batch never lands after a later one."""

from __future__ import annotations

import time

import pytest
import redis.asyncio as aioredis
from redis_procs import SHARED_URL

from gateway.limits.model import BucketSpec, Budget, Candidate
from gateway.limits.redis_limiter import RedisLimiter

DAY = Budget("key:k:day", "2026-12-01", 10.0, 4_102_444_800.0)
RPM = BucketSpec("acct:a:rpm", 10, 1, 1, "requests")


async def test_a_resent_batch_is_counted_once(prefix: str, shared_client: aioredis.Redis) -> None:
    limiter = RedisLimiter(aioredis.Redis.from_url(SHARED_URL), prefix)
    await limiter.start()
    await limiter.apply([], [(DAY, 1.0)], ("r1", 1))
    await limiter.apply([], [(DAY, 1.0)], ("r1", 1))  # the same batch again: its first call had run
    assert await limiter.budget_spend([DAY]) == [1.0]
    await limiter.apply([(RPM, -5.0)], [(DAY, 2.0)], ("r1", 2))
    await limiter.apply([(RPM, -5.0)], [(DAY, 9.0)], ("r1", 1))  # older than the last applied: skipped whole
    assert await limiter.budget_spend([DAY]) == [3.0]
    assert await limiter.levels([RPM]) == pytest.approx([5.0], abs=0.5)  # refilling at 1 a second
    await limiter.apply([], [(DAY, 0.5)], ("r2", 1))  # another replica's numbering is its own
    await limiter.apply([], [(DAY, 0.25)])  # reconciliations without a batch number always apply
    await limiter.apply([], [(DAY, -100.0)])  # and spend never goes below nothing
    assert await limiter.budget_spend([DAY]) == [0.0]
    await limiter.close()


async def test_a_counter_keeps_the_expiry_of_its_window(prefix: str, shared_client: aioredis.Redis) -> None:
    """admit_v7 gives a new counter its window's expiry and rewrites it with KEEPTTL; settle_v3 sets the same."""
    limiter = RedisLimiter(aioredis.Redis.from_url(SHARED_URL), prefix)
    await limiter.start()
    soon = Budget("key:k:day", "2026-12-01", 10.0, time.time() + 100.0)  # kept a day after its window ends
    key = limiter.keys.budget(soon.counter)
    cheap = [Candidate("a/m", "a", (), 0.5)]
    assert (await limiter.admit(cheap, [], "first", (soon,))).chosen == 0
    assert await shared_client.pexpiretime(key) == soon.expires_ms
    await shared_client.pexpireat(key, soon.expires_ms + 5000)  # moved: a rewrite that set it again would show
    assert (await limiter.admit(cheap, [], "first", (soon,))).chosen == 0
    assert await shared_client.pexpiretime(key) == soon.expires_ms + 5000
    await limiter.apply([], [(soon, 0.25)])
    assert await shared_client.pexpiretime(key) == soon.expires_ms
    assert await limiter.budget_spend([soon]) == [1.25]
    await limiter.close()


async def test_spend_is_kept_exactly(prefix: str, shared_client: aioredis.Redis) -> None:
    """A counter holds the double itself: what Redis adds up is what Python would, to the last bit."""
    limiter = RedisLimiter(aioredis.Redis.from_url(SHARED_URL), prefix)
    await limiter.start()
    admitted = await limiter.admit([Candidate("a/m", "a", (), 0.1)], [], "first", (DAY,))
    assert admitted.spent == (0.1,)
    second = await limiter.admit([Candidate("a/m", "a", (), 0.2)], [], "first", (DAY,))
    assert second.spent == (0.1 + 0.2,) and second.reservation is not None
    assert second.reservation.budgets == ((DAY, 0.2),)
    await limiter.apply([], [(DAY, 1 / 3)])
    assert await limiter.budget_spend([DAY]) == [0.1 + 0.2 + 1 / 3]
    await limiter.close()
