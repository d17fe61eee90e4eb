"""Fixtures for the limiter tests: both implementations, key cleanup, and private redis-servers.

Tests that only need Redis use the shared server at 127.0.0.1:6379 under a unique key prefix; tests
that kill, pause or cluster Redis start their own ``redis-server`` processes on free loopback ports.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
import redis.asyncio as aioredis

from gateway.limits.local import LocalLimiter
from gateway.limits.redis_limiter import RedisLimiter
from limits.redis_procs import SHARED_URL, RedisServer, free_port


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer(free_port()).start()
    yield server
    server.kill()


@pytest.fixture
def prefix() -> str:
    return f"test-{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def shared_client(prefix: str) -> AsyncIterator[aioredis.Redis]:
    """A client to the shared Redis; deletes every key under the test's prefix afterwards."""
    client = aioredis.Redis.from_url(SHARED_URL)
    yield client
    keys = [k async for k in client.scan_iter(match="{" + prefix + "}:*", count=1000)]
    if keys:
        await client.delete(*keys)
    await client.aclose()


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
