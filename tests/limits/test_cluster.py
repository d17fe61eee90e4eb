"""The limiter on a three-node Redis Cluster built for this module: every script stays in one slot."""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.crc import key_slot

from gateway.limits.model import BucketSpec, Candidate
from gateway.limits.redis_limiter import RedisLimiter
from gateway.limits.resilient import ResilientLimiter
from gateway.state.store import build_client


async def test_admit_settle_cooldown_on_a_cluster(cluster_url: str) -> None:
    limiter = RedisLimiter(build_client(cluster_url), "cl")
    try:
        await limiter.start()
        tokens = BucketSpec("acct:a:tpm", 100, 0.001, 40, "tokens")
        quota = BucketSpec("key:k:rpm", 10, 0.001, 1, "requests")
        candidates = [Candidate("a/m", "a", (tokens,)), Candidate("b/m", "b", ())]
        await limiter.cooldown("a/m", "a", 5, drain=[BucketSpec("acct:a:rpm", 10, 1, 1, "requests")])
        assert (await limiter.cooldowns(["a/m", "b/m"])) == pytest.approx({"a/m": 5, "b/m": 0}, abs=0.1)
        skipped = await limiter.admit(candidates, [quota])
        assert (skipped.chosen, skipped.skipped) == (1, (("a/m", "cooldown"),))

        admission = await limiter.admit(candidates[:1] + [Candidate("c/m", "c", (tokens,))], [quota])
        assert admission.chosen == 1 and admission.reservation is not None
        await limiter.settle(admission.reservation, 10)
        await limiter.correct(quota, 3)
        assert await limiter.levels([tokens, quota]) == pytest.approx([90, 3], abs=0.01)

        # Every key lives on the one node that owns the tag's slot.
        assert isinstance(limiter.client, RedisCluster)
        node = limiter.client.get_node_from_key("{cl}")
        assert node is not None
        owner = aioredis.Redis(host=node.host, port=node.port)
        keys = [k async for k in owner.scan_iter(match="{cl}:*")]
        await owner.aclose()
        assert len(keys) == 5 and len({key_slot(k) for k in keys}) == 1
    finally:
        await limiter.close()


async def test_resilient_limiter_on_a_cluster(cluster_url: str) -> None:
    limiter = ResilientLimiter(cluster_url, "r1", prefix="clr", deadline=0.2)
    try:
        await limiter.start()
        assert limiter.mode == "redis"
        assert await limiter.replicas.beat() == 1
        spec = BucketSpec("dep:a/m:rpm", 2, 0.001, 1, "requests")
        results = [await limiter.admit([Candidate("a/m", "a", (spec,))], []) for _ in range(3)]
        assert [r.chosen for r in results] == [0, 0, None] and limiter.mode == "redis"
    finally:
        await limiter.close()
