"""The connection to the shared Redis, when one is configured; readiness asks it for a ping."""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis
from redis.exceptions import RedisError


class SharedState:
    def __init__(self, url: str) -> None:
        self.url = url
        self._client: aioredis.Redis | None = (
            aioredis.Redis.from_url(url, socket_connect_timeout=0.2, socket_timeout=0.2) if url else None
        )

    @property
    def configured(self) -> bool:
        return self._client is not None

    async def ping(self, timeout: float = 0.25) -> bool:
        if self._client is None:
            return True
        try:
            async with asyncio.timeout(timeout):
                return bool(await self._client.ping())
        except (RedisError, OSError, TimeoutError):
            return False

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
