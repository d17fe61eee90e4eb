"""Client construction from URLs, the key layout, and the factory."""

from __future__ import annotations

import re

import pytest
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.connection import SSLConnection

from gateway.limits import build_limiter
from gateway.limits.local import LocalLimiter
from gateway.limits.resilient import ResilientLimiter
from gateway.state.store import SCRIPTS, KeyLayout, build_client, script_text, split_cluster_flag


@pytest.mark.parametrize(
    ("url", "plain", "cluster"),
    [
        ("redis://h:6379/0", "redis://h:6379/0", False),
        ("redis://h:6379?cluster=true", "redis://h:6379", True),
        (
            "rediss://u:p@h:6380/0?cluster=True&ssl_cert_reqs=none",
            "rediss://u:p@h:6380/0?ssl_cert_reqs=none",
            True,
        ),
        ("redis://h?cluster=false", "redis://h", False),
    ],
)
def test_cluster_flag_is_ours_and_removed(url: str, plain: str, cluster: bool) -> None:
    assert split_cluster_flag(url) == (plain, cluster)


async def test_clients_by_scheme() -> None:
    plain = build_client("redis://127.0.0.1:6379/0")
    tls = build_client("rediss://127.0.0.1:6380/0")
    cluster = build_client("rediss://127.0.0.1:7000?cluster=true")
    try:
        assert type(plain) is Redis and plain.connection_pool.connection_class is not SSLConnection
        assert type(tls) is Redis and tls.connection_pool.connection_class is SSLConnection
        assert isinstance(cluster, RedisCluster)
        assert list(cluster.nodes_manager.startup_nodes) == ["127.0.0.1:7000"]
        assert cluster.nodes_manager.connection_kwargs["connection_class"] is SSLConnection
    finally:
        await plain.aclose()
        await tls.aclose()
        await cluster.aclose()


def test_key_layout() -> None:
    keys = KeyLayout("llmgw")
    assert keys.bucket("user:team-a:u-17:tpm") == "{llmgw}:b2:user:team-a:u-17:tpm"
    assert keys.deployment_cooldown("openai-main/gpt-4o") == "{llmgw}:cd2:dep:openai-main/gpt-4o"
    assert keys.account_cooldown("openai-main") == "{llmgw}:cd2:acct:openai-main"
    assert keys.replicas == "{llmgw}:replicas"
    assert keys.budget("key:team-a:day:2026-12-01") == "{llmgw}:bud:key:team-a:day:2026-12-01"
    assert keys.spend("2026-12", "user:team-a:usd") == "{llmgw}:sp:2026-12:user:team-a:usd"
    assert keys.applied == "{llmgw}:applied"
    with pytest.raises(ValueError):
        KeyLayout("a}b")


def test_scripts_are_versioned_package_files() -> None:
    for name in SCRIPTS:
        assert re.fullmatch(r"[a-z_]+_v\d+", name), name
        assert script_text(name).startswith(f"-- {name}:")
    for name in ("admit_v7", "settle_v3", "cooldown_v2", "correct_v2", "levels_v2"):
        assert "redis.call('TIME')" in script_text(name)  # Redis TIME is the only clock


async def test_factory() -> None:
    local = build_limiter("", "r1")
    assert isinstance(local, LocalLimiter) and local.mode == "local"
    resilient = build_limiter("redis://127.0.0.1:6379/0", "r1", deadline=0.1, fail_mode="open", prefix="x")
    assert isinstance(resilient, ResilientLimiter)
    assert (resilient.deadline, resilient.fail_mode, resilient.redis.keys.prefix) == (0.1, "open", "x")
    await resilient.close()
    with pytest.raises(ValueError):
        build_limiter("redis://127.0.0.1:6379/0", "r1", fail_mode="sometimes")
