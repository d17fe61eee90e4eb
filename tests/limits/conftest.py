"""Fixtures for the limiter tests: both implementations, key cleanup, and private redis-servers.

Tests that only need Redis use the shared server at 127.0.0.1:6379 under a unique key prefix; tests
that kill, pause or cluster Redis start their own ``redis-server`` processes on free loopback ports.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis
from redis_procs import SHARED_URL

from gateway.limits.local import LocalLimiter
from gateway.limits.redis_limiter import RedisLimiter


@pytest.fixture(params=["redis", "local"])
async def limiter(
    request: pytest.FixtureRequest, prefix: str, shared_client: aioredis.Redis
) -> AsyncIterator[RedisLimiter | LocalLimiter]:
    """Each semantic test runs against both implementations."""
    impl: RedisLimiter | LocalLimiter
    if request.param == "redis":
        impl = RedisLimiter(aioredis.Redis.from_url(SHARED_URL), prefix)
    else:
        impl = LocalLimiter()
    await impl.start()
    yield impl
    await impl.close()
