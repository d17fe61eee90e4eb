"""The official openai SDK parses everything the fake sends."""

import json
from typing import Any

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletionMessageFunctionToolCall

from gateway.fake.testing import FakeUpstream

from .conftest import KEY

MESSAGES: list[Any] = [{"role": "user", "content": "What is the weather in Paris?"}]
WEATHER: Any = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


def test_chat_completion(client: openai.OpenAI, fake: FakeUpstream) -> None:
    raw = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MESSAGES, seed=7)
    assert raw.headers["x-request-id"].startswith("req_")
    assert int(raw.headers["openai-processing-ms"]) >= 0
    assert "x-ratelimit-limit-requests" not in raw.headers  # no limits configured
    completion = raw.parse()
    assert completion.object == "chat.completion" and completion.id.startswith("chatcmpl-")
    assert completion.model == "gpt-4o-mini" and completion.system_fingerprint == "fp_fake_7"
    choice = completion.choices[0]
    assert choice.finish_reason == "stop" and choice.message.role == "assistant" and choice.message.content
    assert completion.usage is not None
    assert completion.usage.completion_tokens == 16
    assert completion.usage.total_tokens == completion.usage.prompt_tokens + 16
    stats = fake.stats()
    assert stats["requests_total"] == 1 and stats["requests_by_status"] == {"200": 1}
    assert stats["prompt_tokens"] == completion.usage.prompt_tokens and stats["completion_tokens"] == 16
    last = stats["last_requests"][-1]
    assert last["path"] == "/v1/chat/completions" and last["body"]["seed"] == 7
    assert last["headers"]["authorization"] == f"Bearer {KEY}" and last["status"] == 200


def test_n_choices_with_logprobs(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(
        model="gpt-4o", messages=MESSAGES, n=3, max_tokens=5, logprobs=True, top_logprobs=3
    )
    assert [c.index for c in completion.choices] == [0, 1, 2]
    for choice in completion.choices:
        assert choice.finish_reason == "length"
        assert choice.logprobs is not None and choice.logprobs.content is not None
        assert "".join(t.token for t in choice.logprobs.content) == choice.message.content
        assert len(choice.logprobs.content[0].top_logprobs) == 3
    assert completion.usage is not None and completion.usage.completion_tokens == 15


def test_stream_with_usage_matches_the_json_answer(client: openai.OpenAI) -> None:
    whole = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, max_tokens=6)
    stream = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=MESSAGES,
        max_tokens=6,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    assert [c.choices[0].finish_reason for c in chunks[1:-1]] == [None] * 6 + ["length"]
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 6
    assert all(c.usage is None for c in chunks[:-1])


def test_stream_wire_format(fake: FakeUpstream) -> None:
    body = {"model": "m", "messages": MESSAGES, "max_tokens": 2, "stream": True}
    response = httpx.post(fake.base_url + "/chat/completions", json=body, headers={"Authorization": f"Bearer {KEY}"})
    assert response.headers["content-type"].startswith("text/event-stream")
    frames = response.text.split("\n\n")
    assert frames[-2:] == ["data: [DONE]", ""]
    assert all(f.startswith("data: {") for f in frames[:-2]) and len(frames) == 2 + 4
    assert "usage" not in json.loads(frames[0][6:])


def test_tool_call(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(model="gpt-4o", messages=MESSAGES, tools=[WEATHER])
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.tool_calls
    call = choice.message.tool_calls[0]
    assert isinstance(call, ChatCompletionMessageFunctionToolCall) and call.id.startswith("call_")
    assert call.function.name == "get_weather" and "city" in json.loads(call.function.arguments)


def test_streamed_tool_call(client: openai.OpenAI) -> None:
    expected = client.chat.completions.create(model="gpt-4o", messages=MESSAGES, tools=[WEATHER])
    arguments, ids, finish = "", set(), None
    stream = client.chat.completions.create(model="gpt-4o", messages=MESSAGES, tools=[WEATHER], stream=True)
    for chunk in stream:
        for delta in chunk.choices[0].delta.tool_calls or []:
            assert delta.index == 0
            if delta.id:
                ids.add(delta.id)
            arguments += delta.function.arguments if delta.function and delta.function.arguments else ""
        finish = chunk.choices[0].finish_reason or finish
    assert finish == "tool_calls"
    assert expected.choices[0].message.tool_calls is not None
    call = expected.choices[0].message.tool_calls[0]
    assert isinstance(call, ChatCompletionMessageFunctionToolCall)
    assert call.function.arguments == arguments and ids == {call.id}


def test_structured_output(client: openai.OpenAI) -> None:
    schema: dict[str, Any] = {
        "type": "object",
        "properties": {"city": {"type": "string"}, "temp": {"type": "number"}},
    }
    completion = client.chat.completions.create(
        model="gpt-4o",
        messages=MESSAGES,
        response_format={"type": "json_schema", "json_schema": {"name": "w", "schema": schema}},
    )
    value = json.loads(completion.choices[0].message.content or "")
    assert set(value) == {"city", "temp"}
    json_mode = client.chat.completions.create(
        model="gpt-4o", messages=MESSAGES, response_format={"type": "json_object"}
    )
    assert isinstance(json.loads(json_mode.choices[0].message.content or ""), dict)


def test_stop(client: openai.OpenAI) -> None:
    text = client.chat.completions.create(model="m", messages=MESSAGES, max_tokens=8).choices[0].message.content
    assert text is not None
    stop = " " + text.split()[2]
    choice = client.chat.completions.create(model="m", messages=MESSAGES, max_tokens=8, stop=stop).choices[0]
    assert choice.finish_reason == "stop" and choice.message.content == text[: text.index(stop)]


def test_embeddings_float_and_base64(client: openai.OpenAI) -> None:
    floats = client.embeddings.create(
        model="text-embedding-3-small", input=["a", "b"], encoding_format="float", dimensions=16
    )
    decoded = client.embeddings.create(model="text-embedding-3-small", input=["a", "b"], dimensions=16)
    assert [len(d.embedding) for d in floats.data] == [16, 16]
    assert decoded.data[1].embedding == pytest.approx(floats.data[1].embedding, abs=1e-6)
    assert floats.usage.prompt_tokens == floats.usage.total_tokens == 2
    tokens = client.embeddings.create(model="text-embedding-3-large", input=[[1, 2, 3]])
    assert len(tokens.data[0].embedding) == 3072 and tokens.usage.prompt_tokens == 3


def test_models(client: openai.OpenAI, fake: FakeUpstream) -> None:
    fake.configure(model="my-model", latency_ms=1)
    ids = [m.id for m in client.models.list()]
    assert "gpt-4o-mini" in ids and "my-model" in ids
    assert client.models.retrieve("anything").id == "anything"


def test_wrong_key(fake: FakeUpstream) -> None:
    with openai.OpenAI(base_url=fake.base_url, api_key="sk-wrong-key-123456", max_retries=0) as bad:
        with pytest.raises(openai.AuthenticationError) as caught:
            bad.chat.completions.create(model="m", messages=MESSAGES)
    error = caught.value.body
    assert isinstance(error, dict) and error["code"] == "invalid_api_key" and error["param"] is None
    assert "sk-wrong-key-123456" not in error["message"]
    missing = httpx.post(fake.base_url + "/chat/completions", json={"model": "m", "messages": MESSAGES})
    assert missing.status_code == 401 and missing.json()["error"]["type"] == "invalid_request_error"


def test_bad_requests(fake: FakeUpstream) -> None:
    headers = {"Authorization": f"Bearer {KEY}"}
    broken = httpx.post(fake.base_url + "/chat/completions", content=b"{nope", headers=headers)
    assert broken.status_code == 400 and broken.json()["error"]["type"] == "invalid_request_error"
    unknown = httpx.post(fake.base_url + "/completions", json={}, headers=headers)
    assert unknown.status_code == 404 and unknown.json()["error"]["message"] == "Invalid URL (POST /v1/completions)"
    assert fake.stats()["requests_by_status"] == {"400": 1, "404": 1}


@pytest.mark.parametrize("prefix", ["/openai/v1", "/v1beta/openai", "/anything/v1"])
def test_other_provider_prefixes(fake: FakeUpstream, prefix: str) -> None:
    with openai.OpenAI(base_url=fake.url + prefix, api_key=KEY, max_retries=0) as c:
        assert c.chat.completions.create(model="llama", messages=MESSAGES).choices[0].message.content
    assert fake.stats()["last_requests"][-1]["path"] == prefix + "/chat/completions"


def test_azure(fake: FakeUpstream) -> None:
    azure = openai.AzureOpenAI(azure_endpoint=fake.url, api_key=KEY, api_version="2024-10-21", max_retries=0)
    with azure:
        completion = azure.chat.completions.create(model="my-deployment", messages=MESSAGES)
        assert completion.model == "my-deployment"
        embedding = azure.embeddings.create(model="ada", input="x", encoding_format="float")
        assert len(embedding.data[0].embedding) == 1536
    last = fake.stats()["last_requests"]
    assert last[-2]["path"] == "/openai/deployments/my-deployment/chat/completions"
    assert last[-2]["query"] == {"api-version": "2024-10-21"} and last[-2]["headers"]["api-key"] == KEY
    assert last[-1]["model"] == "ada"


def test_azure_errors(fake: FakeUpstream) -> None:
    url = fake.url + "/openai/deployments/d/chat/completions"
    body = {"messages": MESSAGES}
    no_version = httpx.post(url, json=body, headers={"api-key": KEY})
    assert no_version.status_code == 400 and no_version.json()["error"]["code"] == "BadRequest"
    bearer_only = httpx.post(url, params={"api-version": "2024-10-21"}, json=body, headers={"Authorization": KEY})
    assert bearer_only.status_code == 401 and bearer_only.json()["error"]["code"] == "401"
