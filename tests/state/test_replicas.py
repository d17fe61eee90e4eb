"""The replica heartbeat that sizes each replica's share while Redis is down."""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis
from redis_procs import SHARED_URL

from gateway.state.replicas import ReplicaRegistry
from gateway.state.store import KeyLayout, Scripts


async def test_live_replicas_are_counted_and_stale_ones_dropped(prefix: str, shared_client: aioredis.Redis) -> None:
    client = aioredis.Redis.from_url(SHARED_URL)
    try:
        scripts = Scripts(client)
        keys = KeyLayout(prefix)
        first = ReplicaRegistry(client, scripts, keys, "r1", interval=0.05)
        second = ReplicaRegistry(client, scripts, keys, "r2", interval=0.05)
        assert first.live == 1  # before any heartbeat
        assert await first.beat() == 1
        assert await second.beat() == 2
        assert first.offset is not None and abs(first.offset) < 1  # one host: the clocks agree
        # twice the live window (3 x 0.05 s), rounded up to whole ms: 0.15 * 2000 is 300.00000000000006 in floats
        assert 0 < await shared_client.pttl(keys.replicas) <= 301
        await asyncio.sleep(0.2)  # more than three heartbeats without first
        assert await second.beat() == 1
        await first.beat()
        await first.leave()
        assert await second.beat() == 1
        assert first.live == 2  # the last count it saw is kept
    finally:
        await client.aclose()
