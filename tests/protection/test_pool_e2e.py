"""Waiting for a connection from an account's pool is the gateway's own queue, not the provider's failure.

Account ``slow`` (a hostile provider that never answers) has a pool of three connections; account ``fast``
(the well-behaved fake) has its own. Three hung requests fill ``slow``'s pool; what comes next for it waits
``timeouts.pool`` and then falls back to ``fast`` or, with nowhere to go, gets a 503 of its own: it was
reported as an upstream timeout (504) and opened the circuit of a provider that had done nothing wrong.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from harness import ADMIN_KEY, TEST_KEY, GatewayProcess, free_port, start_gateway
from hostile import HostileUpstream, hang
from policy.support import explain, metric

from gateway.auth import digest
from gateway.fake.testing import FakeUpstream

POOL = 3
POOL_WAIT = 0.5


def gateway_config(port: int, slow: str, fast: str) -> str:
    def account(url: str, models: list[str]) -> dict[str, Any]:
        models_ = {m: {} for m in models}
        return {"kind": "openai", "base_url": f"{url}/v1", "api_key_env": "FAKE_UPSTREAM_KEY", "models": models_}

    doc = {
        "server": {
            "port": port,
            "max_connections_per_account": POOL,
            "timeouts": {"connect": 1, "first_byte": 30, "total": 60, "stream_idle": 30, "pool": POOL_WAIT},
            "shutdown_grace_seconds": 1,
            "drain_delay_seconds": 0,
        },
        # Three failures would open a circuit: the pool's queue must not count as any.
        "circuit": {"failure_threshold": 3, "min_requests": 1_000_000, "open_seconds": 60},
        "providers": {"slow": account(slow, ["stuck", "shared"]), "fast": account(fast, ["shared", "quick"])},
        "keys": [{"name": "tester", "key_sha256": digest(TEST_KEY), "tier": "premium", "models": ["*"]}],
        "admin": {"key_sha256": digest(ADMIN_KEY)},
    }
    return yaml.safe_dump(doc, sort_keys=False)


@pytest.fixture
def slow() -> Iterator[HostileUpstream]:
    with HostileUpstream(reply=hang(120)) as upstream:
        yield upstream


@pytest.fixture
def gw(tmp_path: Path, slow: HostileUpstream, fake: FakeUpstream) -> Iterator[GatewayProcess]:
    port = free_port()
    process = start_gateway(tmp_path, gateway_config(port, slow.url, fake.url), port)
    yield process
    process.stop()


async def chat(client: httpx.AsyncClient, model: str) -> httpx.Response:
    return await client.post(
        "/chat/completions",
        json={"model": model, "messages": [{"role": "user", "content": "hi"}]},
        headers={"authorization": f"Bearer {TEST_KEY}"},
    )


async def test_a_full_pool_is_its_own_bounded_wait(gw: GatewayProcess, slow: HostileUpstream) -> None:
    async with httpx.AsyncClient(base_url=gw.base_url, timeout=30) as client:
        hung = [asyncio.create_task(chat(client, "stuck")) for _ in range(POOL)]
        while len(slow.requests) < POOL:  # the pool is full once the provider holds all three
            await asyncio.sleep(0.02)

        loop = asyncio.get_running_loop()
        started = loop.time()
        refused = await asyncio.gather(*(chat(client, "stuck") for _ in range(4)))
        waited = loop.time() - started
        for response in refused:
            assert response.status_code == 503, response.text
            assert response.json()["error"]["code"] == "upstream_pool_exhausted"
            assert int(response.headers["retry-after"]) >= 1
        assert POOL_WAIT <= waited < POOL_WAIT + 2.5, waited

        fell_back = await chat(client, "shared")  # another account has its own pool
        assert fell_back.status_code == 200 and fell_back.headers["x-gateway-deployment"] == "fast/shared"
        quick = await asyncio.gather(*(chat(client, "quick") for _ in range(10)))
        assert [r.status_code for r in quick] == [200] * 10

        assert len(slow.requests) == POOL  # the refused requests never reached the provider
        assert not any(task.done() for task in hung)
        assert metric(gw, "gateway_upstream_pool_timeouts_total", account="slow") == 5
        assert metric(gw, "gateway_upstream_pool_wait_seconds_count", account="slow") >= 5
        for outcome in ("upstream_timeout", "upstream_pool_exhausted", "ok"):
            assert metric(gw, "gateway_upstream_attempts_total", deployment="slow/stuck", outcome=outcome) == 0
        excluded = explain(gw, "stuck")["plan"]["excluded"]
        assert not [x for x in excluded if x["deployment"] == "slow/stuck"], excluded  # its circuit stays closed
        for task in hung:
            task.cancel()
        await asyncio.gather(*hung, return_exceptions=True)
