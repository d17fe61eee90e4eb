"""The toy provider (tests/providers/toy.py) served through the real gateway, over real HTTP both ways.

The gateway runs in this process (its registry is the built-in one plus the toy, which only tests
know) on a loopback port; a toy upstream speaks the toy wire format and checks every request's
signature. The official SDK sees an ordinary OpenAI endpoint: answers, streams with usage, fallback,
cooldowns from the toy's own Retry-After header, and a mid-stream failure.
"""

from __future__ import annotations

import asyncio
import gc
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import openai
import orjson
import pytest
import uvicorn
from aiohttp import web
from harness import free_port

from gateway.app import build_app
from gateway.auth import digest
from gateway.config import load_settings
from gateway.http_bounds import BoundedHttpTools
from gateway.providers import REGISTRY
from providers import toy

KINDS = {**REGISTRY, "toy": toy.PROVIDER}
SECRET = "toy-secret-0123456789"
HELLO = [{"role": "user", "content": "Hello"}]


@dataclass
class ToyUpstream:
    """The toy API on loopback: per account path, a queue of scripted failures, else a normal answer."""

    failures: dict[str, list[str]] = field(default_factory=dict)
    seen: list[dict[str, Any]] = field(default_factory=list)
    url: str = ""

    async def generate(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        account = request.match_info["account"]
        self.seen.append({"account": account, "body": orjson.loads(body), "headers": dict(request.headers)})
        if request.headers.get("toy-signature") != toy.signature(request.headers.get("toy-key", ""), body):
            return web.json_response({"problem": {"what": "bad signature", "kind": "auth"}}, status=401)
        script = self.failures.get(account) or []
        failure = script.pop(0) if script else None
        if failure == "503":
            return web.json_response({"problem": {"what": "overloaded", "kind": "overloaded"}}, status=503)
        if failure == "429":
            problem = {"problem": {"what": "too fast", "kind": "busy"}}
            return web.json_response(problem, status=429, headers={"toy-retry-in": "30"})
        asked = orjson.loads(body)
        if not asked["live"]:
            answer = {"outputs": [{"text": f"Hello from {account}", "end": "done"}], "counts": {"in": 9, "out": 3}}
            return web.json_response(answer, headers={"toy-requests-left": "999"})
        stream = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await stream.prepare(request)
        for piece in ("Hel", "lo"):
            await stream.write(b"data: " + orjson.dumps({"piece": piece}) + b"\n\n")
        if failure == "problem":
            await stream.write(b'data: {"problem": {"what": "lost the thread", "kind": "crash"}}\n\n')
        else:
            await stream.write(b'data: {"end": "done", "counts": {"in": 4, "out": 2}}\n\n')
        await stream.write_eof()
        return stream


def _serve(toy_upstream: ToyUpstream, ready: threading.Event, stop: threading.Event, port: int) -> None:
    async def main() -> None:
        app = web.Application()
        app.router.add_post("/{account}/generate", toy_upstream.generate)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        ready.set()
        while not stop.is_set():
            await asyncio.sleep(0.05)
        await runner.cleanup()

    asyncio.run(main())


@pytest.fixture(scope="module")
def upstream() -> Iterator[ToyUpstream]:
    port = free_port()
    served = ToyUpstream(url=f"http://127.0.0.1:{port}")
    ready, stop = threading.Event(), threading.Event()
    thread = threading.Thread(target=_serve, args=(served, ready, stop, port), daemon=True)
    thread.start()
    assert ready.wait(10)
    yield served
    stop.set()
    thread.join(10)


@pytest.fixture(scope="module")
def gateway(upstream: ToyUpstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    model = "{toy-model: {price: {input_per_mtok: 1, output_per_mtok: 2}, context_window: 8000}}"
    config = Path(tmp_path_factory.mktemp("toy")) / "gateway.yaml"
    config.write_text(
        f"server: {{port: {port}, access_log: false}}\n"
        "providers:\n"
        f"  toy-a: {{kind: toy, base_url: '{upstream.url}/a', api_key_env: TOY_KEY, models: {model}}}\n"
        f"  toy-b: {{kind: toy, base_url: '{upstream.url}/b', api_key_env: TOY_KEY, models: {model}}}\n"
        f"keys: [{{name: t, key_sha256: {digest('toy-client')}}}]\n"
        "policies: {dir: ''}\n"
    )
    settings = load_settings(str(config), {"TOY_KEY": SECRET}, kinds=KINDS)
    server = uvicorn.Server(
        uvicorn.Config(build_app(settings, KINDS), port=port, http=BoundedHttpTools, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    threshold = gc.get_threshold()
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the gateway did not start"
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}/v1"
    server.should_exit = True
    thread.join(15)
    gc.unfreeze()  # the app tuned the collector for the whole (test) process: undo it
    gc.set_threshold(*threshold)


def client(gateway: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway, api_key="toy-client", max_retries=0)


def test_an_answer_translated_both_ways(gateway: str, upstream: ToyUpstream) -> None:
    raw = client(gateway).chat.completions.with_raw_response.create(model="toy-model", messages=HELLO, max_tokens=20)
    answer = raw.parse()
    assert answer.choices[0].message.content == "Hello from a" and answer.choices[0].finish_reason == "stop"
    assert answer.usage is not None and (answer.usage.prompt_tokens, answer.usage.completion_tokens) == (9, 3)
    assert raw.headers["x-gateway-deployment"] == "toy-a/toy-model"
    assert raw.headers["x-gateway-cost-usd"] == f"{(9 * 1 + 3 * 2) / 1e6:.6f}"  # from the translated usage
    sent = upstream.seen[-1]
    assert sent["body"] == {
        "engine": "toy-model",
        "turns": [{"speaker": "user", "text": "Hello"}],
        "live": False,
        "limit": 20,
    }
    assert sent["headers"]["toy-key"] == SECRET and "x-client-request-id" in {k.lower() for k in sent["headers"]}


def test_a_stream_translated_event_by_event(gateway: str) -> None:
    chunks = list(
        client(gateway).chat.completions.create(
            model="toy-model", messages=HELLO, stream=True, stream_options={"include_usage": True}
        )
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Hello"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 2
    without = list(client(gateway).chat.completions.create(model="toy-model", messages=HELLO, stream=True))
    assert all(c.usage is None for c in without)  # the usage chunk is the client's only when it asked


def test_the_toys_failures_fall_back_and_cool_down(gateway: str, upstream: ToyUpstream) -> None:
    upstream.failures["a"] = ["503", "503"]
    raw = client(gateway).chat.completions.with_raw_response.create(model="toy-model", messages=HELLO)
    assert raw.headers["x-gateway-deployment"] == "toy-b/toy-model" and raw.headers["x-gateway-attempts"] == "3"
    upstream.failures["a"] = ["429"]
    first = client(gateway).chat.completions.with_raw_response.create(model="toy-model", messages=HELLO)
    assert first.headers["x-gateway-deployment"] == "toy-b/toy-model"
    before = len(upstream.seen)
    again = client(gateway).chat.completions.with_raw_response.create(model="toy-model", messages=HELLO)
    assert again.headers["x-gateway-attempts"] == "1"  # toy-a cools down for its own toy-retry-in
    assert [s["account"] for s in upstream.seen[before:]] == ["b"]


def test_a_failure_after_the_first_byte_ends_the_stream_with_an_error(gateway: str, upstream: ToyUpstream) -> None:
    upstream.failures["b"] = ["problem"]
    upstream.failures["a"] = ["problem"]
    stream = client(gateway).chat.completions.create(model="toy-model", messages=HELLO, stream=True)
    with pytest.raises(openai.APIError) as info:
        for _ in stream:
            pass
    assert "lost the thread" in str(info.value)


def test_metrics_see_the_toy_like_any_provider(gateway: str) -> None:
    metrics = httpx.get(gateway.removesuffix("/v1") + "/metrics").text
    assert 'gateway_upstream_attempts_total{deployment="toy-a/toy-model",outcome="503"}' in metrics
