"""Disconnects cancel upstream work; SIGTERM drains; health and readiness."""

from __future__ import annotations

import asyncio
import signal
import threading
import time
from pathlib import Path

import httpx
import pytest
from harness import ADMIN_KEY, TEST_KEY, UPSTREAM_KEY, GatewayProcess, config_text, free_port, start_gateway

from gateway.fake.testing import FakeUpstream

pytestmark = pytest.mark.usefixtures("fresh_fakes")
HEADERS = {"authorization": f"Bearer {TEST_KEY}"}
BODY = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}


def wait_for(predicate: object, timeout: float) -> float:
    """Seconds until predicate() held, or raise."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if predicate():  # type: ignore[operator]
            return time.monotonic() - start
        time.sleep(0.02)
    raise AssertionError("condition not met in time")


def disconnects(fake: FakeUpstream) -> int:
    return int(fake.stats()["disconnects"])


def test_client_disconnect_while_waiting_closes_the_upstream_request(
    gateway: GatewayProcess, fake: FakeUpstream
) -> None:
    fake.configure(model="*", latency_ms=1800)  # under first_byte (2 s): only the client gives up
    before = disconnects(fake)
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{gateway.base_url}/chat/completions", json=BODY, headers=HEADERS, timeout=0.3)
    gave_up = time.monotonic()
    wait_for(lambda: disconnects(fake) > before, 1.5)
    assert time.monotonic() - gave_up < 1.0


def test_client_disconnect_mid_stream_closes_the_upstream_stream(gateway: GatewayProcess, fake: FakeUpstream) -> None:
    fake.configure(model="*", tokens_per_second=5)
    before = disconnects(fake)
    body = {**BODY, "stream": True, "max_tokens": 50}
    with httpx.stream(
        "POST", f"{gateway.base_url}/chat/completions", json=body, headers=HEADERS, timeout=5
    ) as response:
        for line in response.iter_lines():
            if line.startswith("data: "):
                break
    gone = time.monotonic()
    wait_for(lambda: disconnects(fake) > before, 1.5)
    assert time.monotonic() - gone < 1.0
    wait_for(lambda: '"status":499' in gateway.logs(), 2)  # the log is written by its own thread


def test_health_and_readiness(gateway: GatewayProcess) -> None:
    assert httpx.get(f"{gateway.url}/healthz").json() == {"status": "ok"}
    ready = httpx.get(f"{gateway.url}/readyz")
    assert ready.status_code == 200 and ready.json()["status"] == "ready"


def test_metrics_count_requests(gateway: GatewayProcess) -> None:
    httpx.post(f"{gateway.base_url}/chat/completions", json=BODY, headers=HEADERS, timeout=5)
    text = httpx.get(f"{gateway.url}/metrics").text
    assert 'gateway_requests_total{endpoint="/v1/chat/completions",model="gpt-4o",status="200"}' in text
    assert 'gateway_upstream_attempts_total{deployment="primary/gpt-4o",outcome="ok"}' in text


def test_one_json_log_line_per_request_without_prompt_text(gateway: GatewayProcess) -> None:
    secret_prompt = "my-very-private-prompt-text"
    httpx.post(
        f"{gateway.base_url}/chat/completions",
        headers={**HEADERS, "x-request-id": "log-check-1"},
        json={"model": "gpt-4o", "messages": [{"role": "user", "content": secret_prompt}]},
        timeout=5,
    )
    wait_for(lambda: "log-check-1" in gateway.logs(), 2)  # the log is written by its own thread
    lines = [line for line in gateway.logs().splitlines() if "log-check-1" in line]
    assert len(lines) == 1
    record = httpx.Response(200, content=lines[0]).json()
    assert record["key"] == "tester" and record["deployment"] == "primary/gpt-4o" and record["status"] == 200
    assert record["prompt_tokens"] > 0 and record["latency_ms"] > 0
    assert secret_prompt not in gateway.logs()


def test_readiness_with_redis_unreachable(tmp_path: Path, fake: FakeUpstream, fake2: FakeUpstream) -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"
    port = free_port()
    gw = start_gateway(tmp_path / "a", config_text(port, fake.url, fake2.url, state=dead), port)
    try:
        ready = httpx.get(f"{gw.url}/readyz")  # keeps serving on local shares, and says so
        assert ready.status_code == 200 and ready.json()["checks"]["limits"] == "degraded"
        assert "gateway_limiter_degraded 1.0" in httpx.get(f"{gw.url}/metrics").text
        ok = httpx.post(f"{gw.base_url}/chat/completions", json=BODY, headers=HEADERS, timeout=5)
        assert ok.status_code == 200
    finally:
        gw.stop()
    strict = config_text(port, fake.url, fake2.url, state=dead).replace(
        "state:\n", "state:\n  ready_requires_redis: true\n"
    )
    gw = start_gateway(tmp_path / "b", strict, port)
    try:
        ready = httpx.get(f"{gw.url}/readyz")
        assert ready.status_code == 503 and ready.json()["checks"]["limits"] == "degraded"
    finally:
        gw.stop()


DRAIN_DELAY = 1.5  # wide enough to see /readyz say "draining" on a busy machine
GRACE = 10.0  # config_text's shutdown_grace_seconds


def draining_gateway(directory: Path, fake: FakeUpstream, fake2: FakeUpstream) -> GatewayProcess:
    port = free_port()
    text = config_text(port, fake.url, fake2.url)
    text = text.replace("drain_delay_seconds: 0.5", f"drain_delay_seconds: {DRAIN_DELAY}")
    text = text.replace("first_byte: 2,", "first_byte: 6,")  # a slow provider must not time out first
    assert f"shutdown_grace_seconds: {GRACE:g}" in text and "first_byte: 6," in text
    return start_gateway(directory, text, port)


def says_draining(gw: GatewayProcess) -> bool:
    """/readyz, polled after SIGTERM: False until the signal is handled, then 503 "draining". A refused
    connection means the drain delay ended before we looked: that fails the test (the window is the contract)."""
    ready = httpx.get(f"{gw.url}/readyz", timeout=2)
    if ready.status_code == 200:
        return False
    assert ready.status_code == 503 and ready.json()["checks"]["shutdown"] == "draining", ready.text
    return True


def test_sigterm_drains_streams_then_exits(tmp_path: Path, fake: FakeUpstream, fake2: FakeUpstream) -> None:
    gw = draining_gateway(tmp_path, fake, fake2)
    fake.configure(model="*", tokens_per_second=10)
    received: list[str] = []
    first = threading.Event()

    def consume() -> None:
        body = {**BODY, "stream": True, "max_tokens": 20}
        with httpx.stream(
            "POST", f"{gw.base_url}/chat/completions", json=body, headers=HEADERS, timeout=10
        ) as response:
            for line in response.iter_lines():
                if line.startswith("data: "):
                    received.append(line[6:])
                    first.set()

    reader = threading.Thread(target=consume)
    reader.start()
    assert first.wait(5)
    gw.proc.send_signal(signal.SIGTERM)
    wait_for(lambda: says_draining(gw), DRAIN_DELAY)  # still listening during the drain delay
    reader.join(15)
    assert gw.proc.wait(15) == 0
    assert received[-1] == "[DONE]" and len(received) >= 20
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{gw.url}/healthz")


def test_sigterm_lets_a_json_request_in_flight_finish(tmp_path: Path, fake: FakeUpstream, fake2: FakeUpstream) -> None:
    """A non-streaming request still waiting for its provider when SIGTERM comes is answered, then the
    gateway exits 0 within shutdown_grace_seconds; /readyz says 503 meanwhile."""
    gw = draining_gateway(tmp_path, fake, fake2)
    latency = DRAIN_DELAY + 1.5  # still in flight when the drain delay ends and the listener closes
    fake.configure(model="*", latency_ms=latency * 1000)
    answered: list[httpx.Response] = []
    answered_at: list[float] = []

    def call() -> None:
        answered.append(httpx.post(f"{gw.base_url}/chat/completions", json=BODY, headers=HEADERS, timeout=15))
        answered_at.append(time.monotonic())

    caller = threading.Thread(target=call)
    caller.start()
    wait_for(lambda: fake.stats()["in_flight"] == 1, 5)  # the request is at the provider
    signalled = time.monotonic()
    gw.proc.send_signal(signal.SIGTERM)
    wait_for(lambda: says_draining(gw), DRAIN_DELAY)
    assert gw.proc.wait(DRAIN_DELAY + GRACE + 5) == 0
    exited = time.monotonic()
    caller.join(5)
    assert answered and answered[0].status_code == 200, answered
    assert answered[0].json()["choices"][0]["message"]["content"]
    assert answered[0].headers["x-gateway-deployment"] == "primary/gpt-4o"
    assert answered_at[0] <= exited  # answered before the gateway went away, not cut off by it
    assert exited - signalled < DRAIN_DELAY + GRACE  # within shutdown_grace, not after it
    assert '"status":200' in gw.logs()  # and logged as any other request
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{gw.url}/healthz")


def test_asyncio_sdk_concurrency(gateway: GatewayProcess) -> None:
    import openai

    async def main() -> list[str]:
        client = openai.AsyncOpenAI(base_url=gateway.base_url, api_key=TEST_KEY, max_retries=0)
        results = await asyncio.gather(
            *(
                client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": f"n{i}"}])
                for i in range(20)
            )
        )
        await client.close()
        return [r.id for r in results]

    assert len(set(asyncio.run(main()))) == 20


def test_admin_routes_need_the_admin_key(gateway: GatewayProcess) -> None:
    url = f"{gateway.url}/admin/config"
    assert httpx.get(url).status_code == 401
    assert httpx.get(url, headers=HEADERS).status_code == 403  # a virtual key is not the admin key
    response = httpx.get(url, headers={"authorization": f"Bearer {ADMIN_KEY}"})
    assert response.status_code == 200
    config = response.json()
    primary = next(p for p in config["providers"] if p["name"] == "primary")
    assert primary["credential"] == "set" and primary["deployments"][0]["id"] == "primary/gpt-4o-mini"
    assert UPSTREAM_KEY not in response.text and "key_sha256" not in response.text


def test_several_workers_share_one_port(tmp_path: Path, fake: FakeUpstream, fake2: FakeUpstream) -> None:
    port = free_port()
    gw = start_gateway(tmp_path, config_text(port, fake.url, fake2.url, extra_server="  workers: 2"), port)
    try:
        wait_for(lambda: httpx.get(f"{gw.url}/readyz").status_code == 200, 10)
        for _ in range(20):
            ok = httpx.post(f"{gw.base_url}/chat/completions", json=BODY, headers=HEADERS, timeout=5)
            assert ok.status_code == 200
        metrics = httpx.get(f"{gw.url}/metrics").text
        # Both workers' counters are aggregated, whichever worker answers the scrape.
        line = next(
            x
            for x in metrics.splitlines()
            if x.startswith('gateway_requests_total{endpoint="/v1/chat/completions",model="gpt-4o"')
        )
        assert float(line.rsplit(" ", 1)[1]) == 20
    finally:
        assert gw.stop() == 0


def inflight(gateway: GatewayProcess) -> float:
    text = httpx.get(f"{gateway.url}/metrics", timeout=5).text
    return float(next(x for x in text.splitlines() if x.startswith("gateway_inflight_requests ")).split()[1])


def test_inflight_gauge_returns_to_zero_after_every_kind_of_request(
    gateway: GatewayProcess, fake: FakeUpstream
) -> None:
    """Issue 8, finding 13: the gauge was incremented per request and never decremented."""
    url = f"{gateway.base_url}/chat/completions"
    assert httpx.post(url, json=BODY, headers=HEADERS, timeout=5).status_code == 200
    with httpx.stream("POST", url, json={**BODY, "stream": True}, headers=HEADERS, timeout=5) as streamed:
        assert streamed.status_code == 200 and "[DONE]" in streamed.read().decode()
    assert httpx.post(url, json=BODY, timeout=5).status_code == 401
    assert httpx.post(url, json={"model": "gpt-4o"}, headers=HEADERS, timeout=5).status_code == 400
    embedded = httpx.post(
        f"{gateway.base_url}/embeddings", json={"model": "text-embedding-3-small", "input": "x"}, headers=HEADERS
    )
    assert embedded.status_code == 200
    fake.configure(model="*", failure_rate=1.0, failure_kind="500")
    assert httpx.post(url, json={**BODY, "model": "gpt-4o"}, headers=HEADERS, timeout=5).status_code >= 500
    fake.configure(model="*", failure_rate=0.0, latency_ms=1500)
    with pytest.raises(httpx.ReadTimeout):  # gone while the upstream thinks
        httpx.post(url, json=BODY, headers=HEADERS, timeout=0.3)
    fake.configure(model="*", latency_ms=0, tokens_per_second=20)
    with httpx.stream("POST", url, json={**BODY, "stream": True}, headers=HEADERS, timeout=5) as cut:
        for line in cut.iter_lines():  # gone mid-stream
            if line.startswith("data: "):
                break
    wait_for(lambda: inflight(gateway) == 0, 5)
