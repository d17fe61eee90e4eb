"""Redis fixtures every directory of the suite may use (loaded by the root conftest).

Tests that only need Redis use the shared server at 127.0.0.1:6379 under a key prefix of their own;
tests that kill, pause or cluster Redis start their own ``redis-server`` processes on free loopback
ports (``redis_procs``). One three-node Cluster serves the whole run.
"""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from redis_procs import SHARED_URL, RedisServer, free_cluster_port, free_port


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


@pytest.fixture(scope="session")
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
