"""The long tail through litellm, end to end: the real gateway process with ``kind: litellm`` accounts, litellm
calling the fake (its OpenAI route, and its own Anthropic translation against the fake Anthropic), the
official openai SDK as the client. Usage, errors (as the gateway's classes: a 429 falls back and cools
down), streams and cancellation behave as for a native adapter."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from harness import NO_CIRCUIT, UPSTREAM_KEY, GatewayProcess, free_port

from gateway.auth import digest
from gateway.fake.testing import FakeUpstream

KEY = "litellm-e2e-key"
HELLO: list[Any] = [{"role": "user", "content": "Hello"}]


def config(port: int, upstream: str) -> str:
    return f"""
server: {{port: {port}, access_log: false, timeouts: {{connect: 1, first_byte: 5, total: 15, stream_idle: 3}}}}
{NO_CIRCUIT}
providers:
  tail:
    kind: litellm
    base_url: {upstream}/v1
    api_key_env: FAKE_UPSTREAM_KEY
    models:
      tail-gpt: {{upstream_model: openai/gpt-4o-mini}}
      shared: {{upstream_model: openai/gpt-4o-mini}}
      tail-embed: {{upstream_model: openai/text-embedding-3-small}}
  tail-claude:
    kind: litellm
    base_url: {upstream}
    api_key_env: FAKE_UPSTREAM_KEY
    models:
      tail-claude: {{upstream_model: anthropic/claude-haiku-4-5}}
  native:
    kind: openai
    base_url: {upstream}/v1
    api_key_env: FAKE_UPSTREAM_KEY
    models:
      shared: {{upstream_model: gpt-4o}}
keys: [{{name: agent, key_sha256: {digest(KEY)}, models: ["*"]}}]
policies: {{dir: ""}}
"""


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream(api_key=UPSTREAM_KEY) as fake:
        yield fake


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory, upstream: FakeUpstream) -> Iterator[GatewayProcess]:
    """Started by hand: importing litellm makes this gateway take seconds to start, more than the harness waits."""
    directory, port = tmp_path_factory.mktemp("litellm"), free_port()
    (directory / "gateway.yaml").write_text(config(port, upstream.url))
    log = directory / "gateway.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gateway", "serve", "--config", str(directory / "gateway.yaml")],
            env={**os.environ, "FAKE_UPSTREAM_KEY": UPSTREAM_KEY},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    process = GatewayProcess(f"http://127.0.0.1:{port}", proc, log)
    deadline = time.monotonic() + 90
    while True:
        assert proc.poll() is None and time.monotonic() < deadline, process.logs()[-3000:]
        try:
            if httpx.get(process.url + "/readyz", timeout=0.5).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.1)
    yield process
    process.stop()


@pytest.fixture
def fake(upstream: FakeUpstream) -> Iterator[FakeUpstream]:
    upstream.reset()
    yield upstream
    upstream.reset()


@pytest.fixture
def client(gateway: GatewayProcess) -> openai.OpenAI:
    return gateway.client(KEY)


@pytest.mark.parametrize(("model", "path"), [("tail-gpt", "/v1/chat/completions"), ("tail-claude", "/v1/messages")])
def test_an_answer_with_usage_and_cost(client: openai.OpenAI, fake: FakeUpstream, model: str, path: str) -> None:
    raw = client.chat.completions.with_raw_response.create(model=model, messages=HELLO, max_tokens=4)
    answer = raw.parse()
    assert len((answer.choices[0].message.content or "").split()) == 4 and answer.choices[0].finish_reason == "length"
    assert answer.usage is not None and answer.usage.completion_tokens == 4
    assert raw.headers["x-gateway-cost-usd"]  # priced from the catalog entry of litellm's model name
    assert fake.stats()["last_requests"][-1]["path"] == path


def test_embeddings_through_litellm(client: openai.OpenAI, fake: FakeUpstream) -> None:
    vectors = client.embeddings.create(model="tail-embed", input=["a", "b"])
    assert len(vectors.data) == 2 and len(vectors.data[0].embedding) > 0 and vectors.usage.prompt_tokens > 0
    assert fake.stats()["last_requests"][-1]["path"] == "/v1/embeddings"


def test_a_stream_with_usage(client: openai.OpenAI) -> None:
    chunks = list(
        client.chat.completions.create(
            model="tail-claude", messages=HELLO, max_tokens=5, stream=True, stream_options={"include_usage": True}
        )
    )
    assert len("".join(c.choices[0].delta.content or "" for c in chunks if c.choices).split()) == 5
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 5
    bare = list(client.chat.completions.create(model="tail-gpt", messages=HELLO, max_tokens=2, stream=True))
    assert all(c.usage is None for c in bare)


def test_errors_are_the_gateways_classes(client: openai.OpenAI, fake: FakeUpstream) -> None:
    fake.configure(model="gpt-4o-mini", failure_kind="429", fail_next=1, retry_after_ms=20000)
    raw = client.chat.completions.with_raw_response.create(model="shared", messages=HELLO, max_tokens=2)
    assert raw.headers["x-gateway-deployment"] == "native/shared"  # the 429 fell back
    again = client.chat.completions.with_raw_response.create(model="shared", messages=HELLO, max_tokens=2)
    assert again.headers["x-gateway-deployment"] == "native/shared" and again.headers["x-gateway-attempts"] == "1"
    fake.configure(model="claude-haiku-4-5", failure_kind="context_length", failure_rate=1.0)
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="tail-claude", messages=HELLO)
    assert info.value.code == "context_length_exceeded" and UPSTREAM_KEY not in str(info.value.body)


def test_a_client_that_leaves_cancels_the_call(client: openai.OpenAI, fake: FakeUpstream) -> None:
    fake.configure(tokens_per_second=5)
    stream = client.chat.completions.create(model="tail-gpt", messages=HELLO, max_tokens=50, stream=True)
    next(iter(stream))
    stream.close()
    deadline = time.monotonic() + 3
    while fake.stats()["disconnects"] < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert fake.stats()["disconnects"] == 1
