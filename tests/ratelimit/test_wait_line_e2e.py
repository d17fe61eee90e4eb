"""Waiting in line for provider capacity, end to end: arrival order, no model held up by another, and a
quick 429 when the wait could not end within limits.queue_timeout_seconds."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from harness import TEST_KEY, GatewayProcess, free_port, start_gateway
from ratelimit.support import ACCOUNT, BACKUP, account, config, retry_after_seconds

from gateway.fake.testing import FakeUpstream

HEADERS = {"authorization": f"Bearer {TEST_KEY}"}
TPM = 6000  # 100 tokens a second


def ask(client: httpx.Client, model: str, max_tokens: int) -> tuple[httpx.Response, float]:
    body = {"model": model, "messages": [{"role": "user", "content": "line"}], "max_tokens": max_tokens}
    response = client.post("/v1/chat/completions", json=body, headers=HEADERS, timeout=30)
    return response, time.monotonic()


def _until_in_flight(client: httpx.Client, count: int) -> None:
    """Until the gateway serves ``count`` requests at once: the next is sent after this one is in line (a
    client thread can take longer to connect than any fixed pause on a loaded machine)."""
    deadline = time.monotonic() + 0.3  # the first waits ~1.1 s for its refill: all three are in line by then
    while True:
        found = re.search(r"^gateway_inflight_requests (\S+)$", client.get("/metrics").text, re.M)
        if found and float(found.group(1)) >= count:
            return
        assert time.monotonic() < deadline, f"{count} requests never in flight at once"
        time.sleep(0.005)


def test_the_wait_line(tmp_path: Path, make_fake: Callable[..., FakeUpstream], prefix: str) -> None:
    limited, other = make_fake(), make_fake()
    providers = {
        ACCOUNT: account(limited.url, {"gpt-4o-mini": {}}, {"tpm": TPM}),
        BACKUP: account(other.url, {"llama-3.1-8b-instant": {"context_window": 131072}}),
    }
    port = free_port()
    text = config(port, redis_url="", prefix=prefix, providers=providers, queue_timeout_seconds=5)
    gateway = start_gateway(tmp_path / "gw", text, port)
    try:
        _wait_line(gateway)
    finally:
        gateway.stop()


def _wait_line(gateway: GatewayProcess) -> None:
    with httpx.Client(base_url=gateway.url) as client:  # one client: a new one per call costs ~50 ms here
        _in_line(client)


def _in_line(client: httpx.Client) -> None:
    drained, _ = ask(client, "gpt-4o-mini", TPM - 100)  # leaves well under one more request's reservation
    assert drained.status_code == 200

    with ThreadPoolExecutor(4) as pool:
        started = time.monotonic()
        waiting = []
        for n in range(1, 4):  # each needs ~110 tokens: ~1.1 s of refill apiece, served one after another
            waiting.append(pool.submit(ask, client, "gpt-4o-mini", 100))
            _until_in_flight(client, n)
        other_sent = time.monotonic()
        other_model, other_done = pool.submit(ask, client, "llama-3.1-8b-instant", 100).result()
        served = [f.result() for f in waiting]
    assert other_model.status_code == 200 and other_done - other_sent < 0.8  # not behind gpt-4o-mini's line
    assert [r.status_code for r, _ in served] == [200, 200, 200]
    finished = [t for _, t in served]
    assert finished == sorted(finished)  # first come, first served
    assert finished[-1] - started > 1.5  # they really waited for the refill (about 2.3 s in all)

    # A request whose wait cannot end within the 5 s queue timeout is told at once, with the real wait.
    before = time.monotonic()
    refused, after = ask(client, "gpt-4o-mini", 2000)
    assert refused.status_code == 429 and refused.json()["error"]["code"] == "capacity_exhausted"
    assert after - before < 1.0
    _, wait = retry_after_seconds(refused.headers)
    assert 15 < wait < 25  # ~2,010 tokens at 100 a second
    metrics = client.get("/metrics").text
    assert "gateway_queue_wait_seconds_count 3.0" in metrics
