"""Anthropic behind the gateway, end to end: the real gateway process, the fake speaking Anthropic's Messages
API on loopback, the official openai SDK as the client. What an agent sees: answers, a tools round trip,
streams with tool-call deltas and usage, errors in OpenAI's shape, and fallback from an overloaded Anthropic
to an OpenAI deployment before the first byte."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import openai
import pytest
from harness import NO_CIRCUIT, UPSTREAM_KEY, GatewayProcess, free_port, start_gateway

from gateway.auth import digest
from gateway.fake.testing import FakeUpstream

KEY = "anthropic-e2e-key"
HELLO: list[Any] = [{"role": "user", "content": "Hello"}]
WEATHER: Any = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


def config(port: int, upstream: str) -> str:
    return f"""
server: {{port: {port}, access_log: false, timeouts: {{connect: 1, first_byte: 3, total: 10, stream_idle: 2}}}}
{NO_CIRCUIT}
limits: {{queue_timeout_seconds: 0}}
providers:
  claude:
    kind: anthropic
    base_url: {upstream}
    api_key_env: FAKE_UPSTREAM_KEY
    models:
      claude-haiku-4-5: {{max_output_tokens: 512}}
      smart: {{upstream_model: claude-haiku-4-5, max_output_tokens: 512}}
      cooling: {{upstream_model: claude-haiku-4-5, max_output_tokens: 512}}
      limited-429: {{upstream_model: claude-haiku-4-5}}
  claude-limited:
    kind: anthropic
    base_url: {upstream}
    api_key_env: FAKE_UPSTREAM_KEY
    limits: {{rpm: 60}}
    models:
      limited: {{upstream_model: claude-opus-4-7}}
  claude-wrong-key:
    kind: anthropic
    base_url: {upstream}
    api_key_env: WRONG_KEY
    models:
      wrong-key: {{upstream_model: claude-haiku-4-5}}
  openai:
    kind: openai
    base_url: {upstream}/v1
    api_key_env: FAKE_UPSTREAM_KEY
    models:
      smart: {{upstream_model: gpt-4o-mini}}
      cooling: {{upstream_model: gpt-4o-mini}}
keys: [{{name: agent, key_sha256: {digest(KEY)}, models: ["*"]}}]
policies: {{dir: ""}}
"""


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream(api_key=UPSTREAM_KEY) as fake:
        yield fake


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory, upstream: FakeUpstream) -> Iterator[GatewayProcess]:
    port = free_port()
    process = start_gateway(
        tmp_path_factory.mktemp("anthropic"), config(port, upstream.url), port, {"WRONG_KEY": "sk-not-the-key-0000"}
    )
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


def last_anthropic_request(fake: FakeUpstream) -> dict[str, Any]:
    found: dict[str, Any] = next(r for r in reversed(fake.stats()["last_requests"]) if r["path"] == "/v1/messages")
    return found


def test_a_chat_answer(client: openai.OpenAI, fake: FakeUpstream) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="claude-haiku-4-5",
        messages=[{"role": "system", "content": "Be brief."}, *HELLO],
        max_tokens=7,
        stop=["zzz"],
        user="end-user-1",
    )
    answer = raw.parse()
    assert raw.headers["x-gateway-deployment"] == "claude/claude-haiku-4-5"
    assert answer.choices[0].finish_reason == "length" and len((answer.choices[0].message.content or "").split()) == 7
    assert answer.usage is not None and answer.usage.completion_tokens == 7 and answer.usage.prompt_tokens > 0
    sent = last_anthropic_request(fake)
    assert sent["headers"]["authorization"] == f"Bearer {UPSTREAM_KEY}"
    assert sent["headers"]["anthropic-version"] == "2026-10-21"
    body = sent["body"]
    assert body["system"] == [{"type": "text", "text": "Be brief."}] and body["messages"] == HELLO
    assert body["stop_sequences"] == ["zzz"] and body["metadata"] == {"user_id": "end-user-1"}


def test_max_tokens_defaults_to_the_models_output_limit(client: openai.OpenAI, fake: FakeUpstream) -> None:
    client.chat.completions.create(model="claude-haiku-4-5", messages=HELLO)
    assert last_anthropic_request(fake)["body"]["max_tokens"] == 512


def test_cached_tokens_reach_the_client(client: openai.OpenAI, fake: FakeUpstream) -> None:
    fake.configure(cached_tokens=5)
    answer = client.chat.completions.create(model="claude-haiku-4-5", messages=HELLO, max_tokens=3)
    assert answer.usage is not None and answer.usage.prompt_tokens_details is not None
    assert answer.usage.prompt_tokens_details.cached_tokens == 5


def test_a_tools_round_trip(client: openai.OpenAI, fake: FakeUpstream) -> None:
    ask: list[Any] = [{"role": "user", "content": "Weather in Oslo?"}]
    first = client.chat.completions.create(
        model="claude-haiku-4-5", messages=ask, tools=[WEATHER], tool_choice="required", parallel_tool_calls=False
    )
    call = (first.choices[0].message.tool_calls or [])[0]
    assert first.choices[0].finish_reason == "tool_calls" and call.id.startswith("toolu_")
    assert call.type == "function" and call.function.name == "get_weather" and "city" in call.function.arguments
    assert last_anthropic_request(fake)["body"]["tool_choice"] == {"type": "any", "disable_parallel_tool_use": True}
    history: list[Any] = [
        *ask,
        {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
        {"role": "tool", "tool_call_id": call.id, "content": "4C and windy"},
    ]
    second = client.chat.completions.create(model="claude-haiku-4-5", messages=history, tools=[WEATHER])
    assert second.choices[0].finish_reason in ("stop", "length") and second.choices[0].message.content
    turns = last_anthropic_request(fake)["body"]["messages"]
    use = {"type": "tool_use", "id": call.id, "name": "get_weather", "input": json.loads(call.function.arguments)}
    assert turns[1]["content"][0] == use
    assert turns[2]["content"][0] == {"type": "tool_result", "tool_use_id": call.id, "content": "4C and windy"}


def test_a_stream_with_tool_call_deltas_and_usage(client: openai.OpenAI, fake: FakeUpstream) -> None:
    chunks = list(
        client.chat.completions.create(
            model="claude-haiku-4-5",
            messages=HELLO,
            tools=[WEATHER],
            tool_choice={"type": "function", "function": {"name": "get_weather"}},
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    deltas = [tc for c in chunks if c.choices for tc in (c.choices[0].delta.tool_calls or [])]
    assert deltas[0].id and deltas[0].function is not None and deltas[0].function.name == "get_weather"
    assert len(deltas) > 2 and all(d.index == 0 for d in deltas)  # the arguments arrive in pieces
    arguments = "".join(d.function.arguments or "" for d in deltas if d.function is not None)
    assert '"city"' in arguments
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["tool_calls"]
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0 and not chunks[-1].choices


def test_a_stream_is_relayed_as_it_is_generated(client: openai.OpenAI, fake: FakeUpstream) -> None:
    """Translated event by event, never buffered to the end: the first words arrive long before the last."""
    fake.configure(tokens_per_second=20)
    started = time.monotonic()
    arrivals = []
    for chunk in client.chat.completions.create(model="claude-haiku-4-5", messages=HELLO, max_tokens=20, stream=True):
        if chunk.choices and chunk.choices[0].delta.content:
            arrivals.append(time.monotonic() - started)
    assert len(arrivals) == 20 and arrivals[-1] - arrivals[0] > 0.6  # 20 tokens at 20/s: about a second


def test_usage_is_the_clients_only_when_asked(client: openai.OpenAI, fake: FakeUpstream) -> None:
    chunks = list(client.chat.completions.create(model="claude-haiku-4-5", messages=HELLO, max_tokens=3, stream=True))
    assert all(c.usage is None for c in chunks) and chunks[-1].choices[0].finish_reason == "length"


def test_errors_have_the_statuses_the_sdk_expects(client: openai.OpenAI, fake: FakeUpstream) -> None:
    with pytest.raises(openai.BadRequestError) as bad:
        client.chat.completions.create(model="claude-haiku-4-5", messages=HELLO, logprobs=True)
    assert bad.value.code == "unsupported_parameter" and "logprobs" in str(bad.value)
    with pytest.raises(openai.BadRequestError) as sampling:  # a current model refuses temperature: never forwarded
        client.chat.completions.create(model="limited", messages=HELLO, temperature=0.3)
    assert sampling.value.body is not None and "temperature" in str(sampling.value)
    with pytest.raises(openai.InternalServerError) as refused:  # the gateway's key refused: not the client's fault
        client.chat.completions.create(model="wrong-key", messages=HELLO)
    assert refused.value.status_code == 502 and "sk-not-the-key" not in str(refused.value.body)
    fake.configure(model="claude-haiku-4-5", failure_kind="context_length", failure_rate=1.0)
    with pytest.raises(openai.BadRequestError) as long:
        client.chat.completions.create(model="claude-haiku-4-5", messages=HELLO)
    assert long.value.code == "context_length_exceeded"
    fake.configure(model="claude-haiku-4-5", failure_kind="429", failure_rate=1.0, retry_after_ms=7000)
    with pytest.raises(openai.RateLimitError) as limited:  # (its own deployment: the 429 cools it down)
        client.chat.completions.create(model="limited-429", messages=HELLO)
    assert limited.value.response.headers["retry-after"] == "7"
    with pytest.raises(openai.BadRequestError):  # Anthropic has no embeddings
        client.embeddings.create(model="claude-haiku-4-5", input="hello")


def test_overloaded_anthropic_falls_back_to_openai_before_the_first_byte(
    client: openai.OpenAI, fake: FakeUpstream
) -> None:
    fake.configure(model="claude-haiku-4-5", failure_kind="529", failure_rate=1.0)
    raw = client.chat.completions.with_raw_response.create(model="smart", messages=HELLO, max_tokens=5)
    assert raw.headers["x-gateway-deployment"] == "openai/smart" and raw.headers["x-gateway-attempts"] == "3"
    assert raw.parse().choices[0].message.content
    statuses = [r["status"] for r in fake.stats()["last_requests"]]
    assert statuses == [529, 529, 200]  # Anthropic tried twice (a 5xx is retried once), then OpenAI
    fake.configure(model="claude-haiku-4-5", failure_kind="stream_error", failure_rate=1.0)
    chunks = list(client.chat.completions.create(model="smart", messages=HELLO, max_tokens=4, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)  # the client saw one clean stream


def test_a_429_cools_anthropic_down_for_its_retry_after(client: openai.OpenAI, fake: FakeUpstream) -> None:
    fake.configure(model="claude-haiku-4-5", failure_kind="429", fail_next=1, retry_after_ms=30000)
    first = client.chat.completions.with_raw_response.create(model="cooling", messages=HELLO, max_tokens=3)
    assert first.headers["x-gateway-deployment"] == "openai/cooling"
    again = client.chat.completions.with_raw_response.create(model="cooling", messages=HELLO, max_tokens=3)
    assert again.headers["x-gateway-deployment"] == "openai/cooling" and again.headers["x-gateway-attempts"] == "1"
    assert [r["path"] for r in fake.stats()["last_requests"]] == [
        "/v1/messages",
        "/v1/chat/completions",
        "/v1/chat/completions",
    ]


def test_anthropics_remaining_capacity_lowers_the_shared_bucket(client: openai.OpenAI, fake: FakeUpstream) -> None:
    """The account is configured for 60 requests a minute, but Anthropic says 2 are left: the gateway
    believes Anthropic and refuses the fourth request itself, before Anthropic has to."""
    fake.set_limits(rpm=3)
    for _ in range(3):
        client.chat.completions.create(model="limited", messages=HELLO, max_tokens=2)
    with pytest.raises(openai.RateLimitError) as refused:
        client.chat.completions.create(model="limited", messages=HELLO, max_tokens=2)
    assert refused.value.code == "capacity_exhausted"
    assert fake.stats()["requests_total"] == 3 and fake.stats()["rate_limited"] == 0


def test_a_failure_mid_stream_ends_it_with_an_error_event(client: openai.OpenAI, fake: FakeUpstream) -> None:
    fake.configure(model="claude-haiku-4-5", failure_kind="mid_stream_error", failure_rate=1.0)
    received = []
    with pytest.raises(openai.APIError) as info:
        for chunk in client.chat.completions.create(
            model="claude-haiku-4-5", messages=HELLO, max_tokens=8, stream=True
        ):
            received.append(chunk)
    assert received and "Overloaded" in str(info.value)
