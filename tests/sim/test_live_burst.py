"""A burst larger than capacity: the simulator says what the live gateway does, request for request.

The same config serves twice. Live: the real gateway process in front of ``gateway fake-upstream`` enforcing
the same limit with real 429s, a burst of concurrent requests from a client. Simulated: ``gateway simulate``
with the same burst at one instant. With 30 requests a minute (one every 2 s) and a 4.5 s waiting line,
45 requests at once go: 30 at once, the 31st after ~2 s in line, the 32nd after ~4 s; the 13 behind them
could not be served within the line's time and get 429 ``capacity_exhausted``; the provider never says 429.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from harness import TEST_KEY, UPSTREAM_KEY, free_port, start_gateway
from sim.support import openai_account, simulate, write

from gateway.auth import digest

BURST = 45
RPM = 30
LINE = 4.5  # seconds a request may wait for capacity


def _fake_upstream(port: int) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "gateway", "fake-upstream", "--port", str(port), "--rpm", str(RPM)]
    proc = subprocess.Popen([*command, "--api-key", UPSTREAM_KEY], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()  # printed once it listens
    assert "listening" in line, line
    return proc


async def _burst(url: str) -> list[tuple[int, str | None, float]]:
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "burst"}], "max_tokens": 16}
    headers = {"authorization": f"Bearer {TEST_KEY}"}
    limits = httpx.Limits(max_connections=BURST)
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=30, limits=limits) as client:

        async def one() -> tuple[int, str | None, float]:
            started = time.monotonic()
            response = await client.post("/chat/completions", json=body)
            code = response.json()["error"]["code"] if response.status_code != 200 else None
            return response.status_code, code, time.monotonic() - started

        return await asyncio.gather(*(one() for _ in range(BURST)))


@pytest.fixture
def upstream_port() -> int:
    return free_port()


def test_a_burst_waits_then_is_refused_as_the_live_gateway_does(tmp_path: Path, upstream_port: int) -> None:
    port = free_port()
    config_doc = {
        "server": {"port": port, "drain_delay_seconds": 0, "shutdown_grace_seconds": 3},
        "limits": {"queue_timeout_seconds": LINE},
        "providers": {"acct": openai_account({"rpm": RPM}, f"http://127.0.0.1:{upstream_port}/v1")},
        "keys": [{"name": "tester", "key_sha256": digest(TEST_KEY), "models": ["*"]}],
    }
    config = write(tmp_path / "gateway.yaml", config_doc)

    fake = _fake_upstream(upstream_port)
    try:
        gateway = start_gateway(tmp_path / "live", config.read_text(), port)
        try:
            live = asyncio.run(_burst(gateway.base_url))
        finally:
            gateway.stop()
        stats = httpx.get(f"http://127.0.0.1:{upstream_port}/_fake/stats").json()
    finally:
        fake.terminate()
        fake.wait(10)

    workload = write(
        tmp_path / "burst.yaml",
        {
            "seed": 3,
            "duration_s": 10,
            "arrivals": {"rate": {"constant": 0}, "bursts": [{"at_s": 0, "count": BURST}]},
            "classes": {
                "burst": {"share": 1.0, "model": "gpt-4o-mini", "calls": 1, "prompt_tokens": 10, "output_tokens": 16}
            },
            "providers": {"*": {"ttft_ms": 1, "tokens_per_second": 100000}},
        },
    )
    env = {**os.environ, "FAKE_UPSTREAM_KEY": UPSTREAM_KEY}
    _, simulated = simulate(config, workload, tmp_path, "--no-search", env=env)

    served = [seconds for status, _, seconds in live if status == 200]
    refused = [(status, code) for status, code, _ in live if status != 200]
    assert len(served) == RPM + 2 and refused == [(429, "capacity_exhausted")] * (BURST - RPM - 2)
    assert stats["limit_rejections"] == 0  # the provider never had to refuse: the gateway kept under its limit

    assert simulated["requests"] == BURST
    assert simulated["client_errors"] == {"429 capacity_exhausted": len(refused)}
    assert simulated["upstream_429"] == stats["limit_rejections"] == 0
    # The two that waited were answered after ~2 s and ~4 s in line; the refused ones were told when the line
    # reached them, at ~4 s: live and simulated alike.
    live_waits = sorted(served)[-2:]
    assert live_waits == [pytest.approx(60 / RPM, abs=0.6), pytest.approx(2 * 60 / RPM, abs=0.6)]
    assert simulated["latency_ms"]["max"] / 1000 == pytest.approx(live_waits[1], abs=0.6)
    assert simulated["wait_ms"]["max"] / 1000 == pytest.approx(max(s for _, _, s in live), abs=0.6)
    assert simulated["wait_ms"]["share_waited"] == pytest.approx((BURST - RPM) / BURST, abs=1e-3)
