"""A provider gone wrong costs only its own request: bounded bodies, streams and headers, protocol errors that
fall back, and Retry-After values that cannot disable a deployment.

One gateway process serves three models: ``solo`` on hostile account ``a`` only, ``pair`` on ``a`` then on
hostile account ``b`` (a well-behaved reply there, so fallback shows), and ``normal`` on the well-behaved
fake, used to measure how the gateway serves everyone else while ``a`` misbehaves.
"""

from __future__ import annotations

import asyncio
import email.utils
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import yaml
from harness import ADMIN_KEY, TEST_KEY, GatewayProcess, free_port, start_gateway
from hostile import (
    HostileUpstream,
    Request,
    big_header,
    endless_event,
    filler,
    gzip_bomb,
    many_events,
    ok_json,
    ok_stream,
    raw,
    status,
)
from policy.support import chat, explain, metric

from gateway.auth import digest
from gateway.fake.testing import FakeUpstream

MB = 1 << 20
BOUNDS = {
    "max_response_bytes": 2 * MB,
    "max_stream_event_bytes": 256 * 1024,
    "max_stream_bytes": 8 * MB,
    "max_response_header_bytes": 16 * 1024,
}
RETRY_AFTER_CAP = 1.0


def gateway_config(port: int, a: str, b: str, normal: str, circuit: dict[str, Any] | None = None) -> str:
    def account(url: str, models: list[str]) -> dict[str, Any]:
        return {
            "kind": "openai",
            "base_url": f"{url}/v1",
            "api_key_env": "FAKE_UPSTREAM_KEY",
            "models": {m: {} for m in models},
        }

    doc = {
        "server": {
            "port": port,
            "timeouts": {"connect": 1, "first_byte": 5, "total": 20, "stream_idle": 5},
            "shutdown_grace_seconds": 2,
            "drain_delay_seconds": 0,
            **BOUNDS,
        },
        "limits": {"max_retry_after_seconds": RETRY_AFTER_CAP},
        "circuit": circuit or {"failure_threshold": 1_000_000, "min_requests": 1_000_000},
        "providers": {
            "a": account(a, ["solo", "pair"]),
            "b": account(b, ["pair"]),
            "ok": account(normal, ["normal"]),
        },
        "keys": [{"name": "tester", "key_sha256": digest(TEST_KEY), "tier": "premium", "models": ["*"]}],
        "admin": {"key_sha256": digest(ADMIN_KEY)},
    }
    return yaml.safe_dump(doc, sort_keys=False)


async def well_behaved(request: Request, writer: asyncio.StreamWriter) -> None:
    """A JSON answer, or a stream when one was asked for."""
    reply = ok_stream() if request.json().get("stream") else ok_json()
    await reply(request, writer)


@pytest.fixture(scope="module")
def hostiles() -> Iterator[tuple[HostileUpstream, HostileUpstream]]:
    with HostileUpstream() as a, HostileUpstream(reply=well_behaved) as b:
        yield a, b


@pytest.fixture(scope="module")
def gw(
    tmp_path_factory: pytest.TempPathFactory, hostiles: tuple[HostileUpstream, HostileUpstream], fake: FakeUpstream
) -> Iterator[GatewayProcess]:
    a, b = hostiles
    port = free_port()
    process = start_gateway(tmp_path_factory.mktemp("bounds"), gateway_config(port, a.url, b.url, fake.url), port)
    yield process
    process.stop()


@pytest.fixture
def a(hostiles: tuple[HostileUpstream, HostileUpstream]) -> Iterator[HostileUpstream]:
    upstream = hostiles[0]
    yield upstream
    upstream.reply = ok_json()


def error_of(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    assert set(body) == {"error"} and {"message", "type", "param", "code"} <= set(body["error"]), body
    return body["error"]  # type: ignore[no-any-return]


def stream_events(response: httpx.Response) -> list[bytes]:
    return [line[6:] for line in response.content.split(b"\n\n") if line.startswith(b"data: ")]


def memory_kb(gateway: GatewayProcess, field: str) -> int:
    for line in Path(f"/proc/{gateway.proc.pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} in /proc/{gateway.proc.pid}/status")


class Probe:
    """Normal requests to the well-behaved provider, one after another, while something hostile runs."""

    def __init__(self, gateway: GatewayProcess) -> None:
        self.gateway = gateway
        self.latencies: list[float] = []
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Probe:
        self._thread.start()
        while not self.latencies and not self.failures:  # the gateway serves before the hostile part starts
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        with httpx.Client(timeout=10) as client:
            while not self._stop.is_set():
                started = time.monotonic()
                response = client.post(
                    f"{self.gateway.base_url}/chat/completions",
                    json={"model": "normal", "messages": [{"role": "user", "content": "hi"}]},
                    headers={"authorization": f"Bearer {TEST_KEY}"},
                )
                self.latencies.append(time.monotonic() - started)
                if response.status_code != 200:
                    self.failures.append(response.text)
                time.sleep(0.02)


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_a_gzip_bomb_is_refused_without_stalling_the_gateway(
    gw: GatewayProcess, a: HostileUpstream, stream: bool
) -> None:
    """1 MB of gzip inflating to 1 GiB: the gateway reached 2.1 GB and froze 7 s (JSON) or ~120 s (stream)."""
    a.reply = gzip_bomb(1 << 30, stream=stream)  # built (and cached) before anything is timed
    before = memory_kb(gw, "VmRSS")
    with Probe(gw) as probe:
        started = time.monotonic()
        response = chat(gw, "solo", stream=stream, timeout=60)
        took = time.monotonic() - started
    grew = memory_kb(gw, "VmHWM") - before
    print(
        f"BOMB ({'stream' if stream else 'json'}): answered in {took:.2f}s, peak RSS +{grew / 1024:.1f} MB, "
        f"{len(probe.latencies)} normal requests meanwhile, slowest {max(probe.latencies) * 1000:.0f} ms"
    )
    assert response.status_code == 502, response.text
    assert error_of(response)["code"] in ("upstream_response_too_large", "upstream_event_too_large")
    assert took < 5, took
    assert not probe.failures and max(probe.latencies) < 0.5, (max(probe.latencies), probe.failures[:1])
    assert grew < 150 * 1024


def test_an_endless_event_is_refused_at_the_event_bound(gw: GatewayProcess, a: HostileUpstream) -> None:
    """An SSE event that never ends: parsing was quadratic and the buffer unbounded (RSS 131 -> 715 MB)."""
    a.reply = endless_event(256 * MB)
    before = memory_kb(gw, "VmRSS")
    with Probe(gw) as probe:
        started = time.monotonic()
        response = chat(gw, "solo", stream=True, timeout=60)
        took = time.monotonic() - started
    grew = memory_kb(gw, "VmHWM") - before
    print(
        f"ENDLESS EVENT: answered in {took:.2f}s, peak RSS +{grew / 1024:.1f} MB, "
        f"{len(probe.latencies)} normal requests meanwhile, slowest {max(probe.latencies) * 1000:.0f} ms"
    )
    assert response.status_code == 502 and error_of(response)["code"] == "upstream_event_too_large", response.text
    assert not probe.failures and max(probe.latencies) < 0.5, (max(probe.latencies), probe.failures[:1])
    assert grew < 150 * 1024


def test_an_endless_event_after_the_first_ends_the_stream_with_an_error_event(
    gw: GatewayProcess, a: HostileUpstream
) -> None:
    a.reply = endless_event(64 * MB, first=b'data: {"choices":[{"index":0,"delta":{"content":"hi"}}]}\n\n')
    response = chat(gw, "solo", stream=True, timeout=60)
    assert response.status_code == 200
    events = stream_events(response)
    assert b"[DONE]" not in events
    assert orjson.loads(events[-1])["error"]["code"] == "upstream_event_too_large"


def test_a_stream_over_its_total_bound_ends_with_an_error_event(gw: GatewayProcess, a: HostileUpstream) -> None:
    a.reply = many_events(64 * MB)
    response = chat(gw, "solo", stream=True, timeout=60)
    assert response.status_code == 200
    events = stream_events(response)
    assert len(events) > 1000 and b"[DONE]" not in events
    assert orjson.loads(events[-1])["error"]["code"] == "upstream_stream_too_large"
    assert len(response.content) < BOUNDS["max_stream_bytes"] * 1.1


def test_a_json_answer_over_its_bound_falls_back_or_is_a_502(gw: GatewayProcess, a: HostileUpstream) -> None:
    """Ten parallel 50 MB answers peaked at 979 MB: the body was read whole before anything looked at it."""
    a.reply = filler(3 * MB, length=False)
    fell_back = chat(gw, "pair")
    assert fell_back.status_code == 200 and fell_back.headers["x-gateway-deployment"] == "b/pair"
    alone = chat(gw, "solo")
    assert alone.status_code == 502 and error_of(alone)["code"] == "upstream_response_too_large"
    a.reply = filler(50 * MB)
    before = memory_kb(gw, "VmRSS")
    with ThreadPoolExecutor(10) as pool:
        statuses = list(pool.map(lambda _: chat(gw, "solo", timeout=60).status_code, range(10)))
    assert statuses == [502] * 10
    assert memory_kb(gw, "VmHWM") - before < 150 * 1024


BROKEN = {
    "header_over_the_bound": big_header(32 * 1024),
    "bad_status_line": raw(b"HTTP/1.1 abc\r\n\r\n"),
    "not_http": raw(b"SSH-2.0-OpenSSH_9.6\r\n\r\n"),
    "html_200": status(200, b"<html><body>Bad gateway</body></html>", {"content-type": "text/html"}, "OK"),
    "binary_200": status(200, bytes(range(256)) * 8, {"content-type": "application/json"}, "OK"),
    "cut_json_200": status(200, b'{"id": "chatcmpl-1", "choi', {"content-type": "application/json"}, "OK"),
    "redirect": status(302, b"", {"location": "http://127.0.0.1:1/elsewhere"}, "Found"),
}


@pytest.mark.parametrize("name", list(BROKEN))
def test_protocol_errors_fall_back_and_alone_are_a_502(gw: GatewayProcess, a: HostileUpstream, name: str) -> None:
    """A 16 KB header, a bad status line, a non-JSON 200: a 500 or a 200 with garbage, and no fallback."""
    a.reply = BROKEN[name]
    fell_back = chat(gw, "pair")
    assert fell_back.status_code == 200, fell_back.text
    assert fell_back.headers["x-gateway-deployment"] == "b/pair" and fell_back.json()["choices"]
    alone = chat(gw, "solo")
    assert alone.status_code == 502, alone.text
    assert error_of(alone)["type"] == "upstream_error"


@pytest.mark.parametrize(
    "reply",
    [
        status(200, b'{"id": "x", "object": "chat.completion", "choices": []}', {"content-type": "application/json"}),
        big_header(32 * 1024),
        raw(b"HTTP/1.1 abc\r\n\r\n"),
    ],
    ids=["json_to_a_stream", "header_over_the_bound", "bad_status_line"],
)
def test_a_broken_stream_falls_back_before_its_first_event(gw: GatewayProcess, a: HostileUpstream, reply: Any) -> None:
    a.reply = reply
    fell_back = chat(gw, "pair", stream=True)
    assert fell_back.status_code == 200 and fell_back.headers["x-gateway-deployment"] == "b/pair"
    assert stream_events(fell_back)[-1] == b"[DONE]"
    alone = chat(gw, "solo", stream=True)
    assert alone.status_code == 502 and error_of(alone)["type"] == "upstream_error", alone.text


def http_date(offset: float) -> str:
    return email.utils.formatdate(time.time() + offset, usegmt=True)


@pytest.mark.parametrize(
    "headers",
    [
        {"retry-after": "inf"},
        {"retry-after": "nan"},
        {"retry-after": "-5"},
        {"retry-after": "1e15"},
        {"retry-after-ms": "1e15"},
        {"retry-after": "Fri, 31 Dec 9999 23:59:59 GMT", "date": http_date(0)},
        {"retry-after": "soon"},
    ],
    ids=["inf", "nan", "negative", "1e15", "ms_1e15", "http_date", "garbage"],
)
def test_a_provider_retry_after_is_finite_and_capped(
    gw: GatewayProcess, a: HostileUpstream, headers: dict[str, str]
) -> None:
    """``Retry-After: inf`` was a 500 and cooled the deployment down forever; ``retry-after-ms: 1e15`` disabled it
    until restart."""
    body = b'{"error": {"message": "slow down", "type": "rate_limit_error", "code": "rate_limit_exceeded"}}'
    a.reply = status(429, body, headers, "Too Many Requests")
    limited = chat(gw, "solo")
    assert limited.status_code == 429, limited.text
    assert 1 <= int(limited.headers["retry-after"]) <= RETRY_AFTER_CAP
    assert 0 <= int(limited.headers["retry-after-ms"]) <= RETRY_AFTER_CAP * 1000
    a.reply = ok_json()
    time.sleep(RETRY_AFTER_CAP + 0.3)
    assert chat(gw, "solo").status_code == 200  # the cooldown ended with the cap


@pytest.fixture
def breaker_gateway(
    tmp_path: Path, hostiles: tuple[HostileUpstream, HostileUpstream], fake: FakeUpstream
) -> Iterator[GatewayProcess]:
    a, b = hostiles
    port = free_port()
    circuit = {"failure_threshold": 2, "open_seconds": 30, "min_requests": 1_000_000}
    process = start_gateway(tmp_path, gateway_config(port, a.url, b.url, fake.url, circuit), port)
    yield process
    process.stop()


def test_protocol_errors_count_against_the_circuit(breaker_gateway: GatewayProcess, a: HostileUpstream) -> None:
    """They counted as successes: a provider answering garbage kept its circuit closed."""
    a.reply = big_header(32 * 1024)
    for _ in range(2):
        assert chat(breaker_gateway, "solo").status_code == 502
    excluded = explain(breaker_gateway, "solo")["plan"]["excluded"]
    assert [x["kind"] for x in excluded if x["deployment"] == "a/solo"] == ["circuit_open"]
    outcomes = metric(breaker_gateway, "gateway_upstream_attempts_total", deployment="a/solo", outcome="ok")
    assert outcomes == 0


def test_the_normal_path_is_unchanged(gw: GatewayProcess, a: HostileUpstream) -> None:
    a.reply = ok_json()
    answered = chat(gw, "solo")
    assert answered.status_code == 200 and answered.json()["usage"]["completion_tokens"] == 1
    a.reply = ok_stream(pieces=5)
    streamed = chat(gw, "solo", stream=True, stream_options={"include_usage": True})
    events = stream_events(streamed)
    assert events[-1] == b"[DONE]" and len(events) == 7
