"""settle_v3 applies a replica's batch of budget spend once: a batch resent after a failed call (which may
still have run) is not counted twice, and a replica's earlier batch never lands after a later one."""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis
from redis_procs import SHARED_URL

from gateway.limits.model import BucketSpec, Budget
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
