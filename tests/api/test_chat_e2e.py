"""Chat completions end to end: the official OpenAI SDK -> the gateway process -> fake providers."""

from __future__ import annotations

import array
import base64
import json

import httpx
import openai
import pytest
from harness import ADMIN_KEY, GatewayProcess

from gateway.fake.testing import FakeUpstream

pytestmark = pytest.mark.usefixtures("fresh_fakes")
MESSAGES = [{"role": "user", "content": "Say hello"}]


def test_chat_returns_the_providers_answer_with_trace_headers(gateway: GatewayProcess) -> None:
    raw = gateway.client().chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=MESSAGES, max_tokens=5, extra_headers={"x-request-id": "trace-123"}
    )
    completion = raw.parse()
    assert completion.object == "chat.completion"
    assert completion.choices[0].message.content
    assert completion.usage is not None and completion.usage.completion_tokens == 5
    assert raw.headers["x-request-id"] == "trace-123"
    assert raw.headers["x-gateway-deployment"] == "primary/gpt-4o-mini"
    assert raw.headers["x-gateway-attempts"] == "1"


def test_parameters_pass_through_and_credentials_are_the_gateways(gateway: GatewayProcess, fake: FakeUpstream) -> None:
    client = gateway.client(default_headers={"cookie": "session=abc", "x-custom": "1"})
    completion = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=MESSAGES,
        n=2,
        stop=["\n"],
        seed=42,
        user="end-user-7",
        logprobs=True,
        top_logprobs=2,
        response_format={"type": "json_object"},
        temperature=0.1,
    )
    assert len(completion.choices) == 2
    assert completion.choices[0].logprobs is not None
    json.loads(completion.choices[0].message.content or "")
    seen = fake.stats()["last_requests"][-1]
    body, headers = seen["body"], {k.lower(): v for k, v in seen["headers"].items()}
    assert body["model"] == "gpt-4o-mini" and body["n"] == 2 and body["stop"] == ["\n"]
    assert body["seed"] == 42 and body["user"] == "end-user-7" and body["top_logprobs"] == 2
    assert body["response_format"] == {"type": "json_object"}
    assert headers["authorization"] == "Bearer sk-fake-upstream-secret-0123456789"
    assert "cookie" not in headers and "x-custom" not in headers


def test_stream_relays_chunks_and_usage_when_asked(gateway: GatewayProcess) -> None:
    stream = gateway.client().chat.completions.create(
        model="gpt-4o-mini",
        messages=MESSAGES,
        max_tokens=6,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text
    assert chunks[-1].choices == [] and chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 6
    assert sum(1 for c in chunks if c.choices and c.choices[0].delta.content) == 6


def test_stream_without_include_usage_gets_no_usage_chunk(gateway: GatewayProcess, fake: FakeUpstream) -> None:
    chunks = list(
        gateway.client().chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, max_tokens=3, stream=True)
    )
    assert all(c.choices for c in chunks)
    # The gateway still asked the provider for usage, to account for the tokens.
    assert fake.stats()["last_requests"][-1]["body"]["stream_options"] == {"include_usage": True}


def test_tools_non_streaming_and_streaming(gateway: GatewayProcess) -> None:
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "parameters": {
                    "type": "object",
                    "properties": {"city": {"type": "string"}},
                    "required": ["city"],
                },
            },
        }
    ]
    client = gateway.client()
    completion = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, tools=tools)
    call = completion.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert completion.choices[0].finish_reason == "tool_calls" and call.function.name == "get_weather"
    json.loads(call.function.arguments)
    chunks = list(client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, tools=tools, stream=True))
    deltas = [tc for c in chunks if c.choices for tc in (c.choices[0].delta.tool_calls or [])]
    assert deltas and deltas[0].function is not None and deltas[0].function.name == "get_weather"
    arguments = "".join(d.function.arguments or "" for d in deltas if d.function)
    json.loads(arguments)


@pytest.mark.parametrize(
    "model,deployment,path",
    [
        ("azure-gpt", "azure-eu/azure-gpt", "/openai/deployments/my-gpt-deployment/chat/completions"),
        ("llama-3.1-8b-instant", "groq/llama-3.1-8b-instant", "/openai/v1/chat/completions"),
        ("gemini-2.5-flash", "gemini/gemini-2.5-flash", "/v1beta/openai/chat/completions"),
        ("local-llama", "local/local-llama", "/v1/chat/completions"),
    ],
)
def test_each_compatible_adapter(
    gateway: GatewayProcess, fake: FakeUpstream, model: str, deployment: str, path: str
) -> None:
    raw = gateway.client().chat.completions.with_raw_response.create(model=model, messages=MESSAGES)
    assert raw.parse().choices[0].message.content
    assert raw.headers["x-gateway-deployment"] == deployment
    seen = fake.stats()["last_requests"][-1]
    assert seen["path"] == path
    headers = {k.lower(): v for k, v in seen["headers"].items()}
    if model == "azure-gpt":
        assert headers["api-key"] == "sk-fake-upstream-secret-0123456789" and "authorization" not in headers
        assert "api-version" in seen["query"]


def test_account_slash_model_addresses_one_deployment(gateway: GatewayProcess) -> None:
    raw = gateway.client().chat.completions.with_raw_response.create(model="secondary/gpt-4o-mini", messages=MESSAGES)
    assert raw.headers["x-gateway-deployment"] == "secondary/gpt-4o-mini"


def test_embeddings_float_and_base64(gateway: GatewayProcess) -> None:
    client = gateway.client()
    result = client.embeddings.create(model="text-embedding-3-small", input=["a", "b"], dimensions=8)
    assert len(result.data) == 2 and len(result.data[0].embedding) == 8
    again = client.embeddings.create(model="text-embedding-3-small", input="a", dimensions=8, encoding_format="base64")
    # Asked for explicitly, base64 reaches the caller as sent: little-endian float32.
    decoded = array.array("f", base64.b64decode(again.data[0].embedding))  # type: ignore[arg-type]
    assert list(decoded) == pytest.approx(result.data[0].embedding, rel=1e-6)


def test_models_lists_what_the_key_may_use(gateway: GatewayProcess) -> None:
    everything = {m.id for m in gateway.client().models.list()}
    assert {"gpt-4o-mini", "gpt-4o", "text-embedding-3-small", "azure-gpt"} <= everything
    assert [m.id for m in gateway.client("limited-key").models.list()] == ["gpt-4o-mini"]


def test_unsupported_parameter_is_refused_by_the_adapter(gateway: GatewayProcess) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        gateway.client().chat.completions.create(model="llama-3.1-8b-instant", messages=MESSAGES, logprobs=True)
    assert "logprobs" in str(info.value)


def test_cost_header_from_catalog_prices(gateway: GatewayProcess) -> None:
    raw = gateway.client().chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=MESSAGES, max_tokens=5
    )
    usage = raw.parse().usage
    assert usage is not None
    # gpt-4o-mini's catalog price: $0.15 / $0.60 per million tokens.
    expected = usage.prompt_tokens * 0.15e-6 + usage.completion_tokens * 0.60e-6
    assert float(raw.headers["x-gateway-cost-usd"]) == pytest.approx(expected, abs=1e-6)


def test_every_answer_names_the_policy_version(gateway: GatewayProcess) -> None:
    raw = gateway.client().chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MESSAGES)
    policies = httpx.get(f"{gateway.url}/admin/policies", headers={"authorization": f"Bearer {ADMIN_KEY}"}).json()
    assert raw.headers["x-gateway-policy-version"] == policies["version"]
    with pytest.raises(openai.NotFoundError) as info:
        gateway.client().chat.completions.create(model="nope", messages=MESSAGES)
    assert info.value.response.headers["x-gateway-policy-version"] == policies["version"]
