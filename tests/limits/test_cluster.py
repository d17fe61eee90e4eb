"""The limiter on a three-node Redis Cluster built for this module: every script stays in one slot."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.crc import key_slot

from gateway.limits.model import BucketSpec, Candidate
from gateway.limits.redis_limiter import RedisLimiter
from gateway.limits.redis_store import build_client
from gateway.limits.resilient import ResilientLimiter
from limits.redis_procs import RedisServer, free_cluster_port


@pytest.fixture(scope="module")
def cluster_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp: Path = tmp_path_factory.mktemp("cluster")
    ports: list[int] = []
    for _ in range(3):
        ports.append(free_cluster_port(after=max(ports, default=0)))
    nodes = [
        RedisServer(
            port,
            "--cluster-enabled", "yes",
            "--cluster-config-file", str(tmp / f"nodes-{port}.conf"),
            "--cluster-node-timeout", "2000",
            "--dir", str(tmp),
            cwd=tmp,
        )
        for port in ports
    ]  # fmt: skip
    try:
        for node in nodes:
            node.start()
        subprocess.run(
            ["redis-cli", "--cluster", "create", *(f"127.0.0.1:{p}" for p in ports)]
            + ["--cluster-replicas", "0", "--cluster-yes"],
            check=True,
            capture_output=True,
            timeout=20,
        )
        deadline = time.monotonic() + 10
        while not all(cluster_ok(p) for p in ports):
            assert time.monotonic() < deadline, "cluster did not reach cluster_state:ok"
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{ports[0]}/0?cluster=true"
    finally:
        for node in nodes:
            node.kill()


def cluster_ok(port: int) -> bool:
    info = subprocess.run(["redis-cli", "-p", str(port), "cluster", "info"], capture_output=True, text=True)
    return "cluster_state:ok" in info.stdout


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
