"""The fake's Anthropic Messages mode, as the official ``anthropic`` SDK sees it: the SDK parses every answer
and event into its own types, so a shape the real API would not send fails here."""

from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import pytest

from gateway.fake import sdk_shapes
from gateway.fake.testing import FakeUpstream

from .conftest import KEY

HELLO: list[Any] = [{"role": "user", "content": "Hello"}]
WEATHER: Any = {
    "name": "get_weather",
    "description": "The weather in a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


@pytest.fixture
def claude(fake: FakeUpstream) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=fake.url, api_key=KEY, max_retries=0, timeout=5) as c:
        yield c


def test_the_sdk_types_check_requests() -> None:
    assert sdk_shapes.SDK_TYPES  # the suite has the SDK: the fake checks requests with its types


def test_a_message(claude: anthropic.Anthropic, fake: FakeUpstream) -> None:
    raw = claude.messages.with_raw_response.create(
        model="claude-haiku-4-5", max_tokens=5, messages=HELLO, system="Be brief.", stop_sequences=["zzz"]
    )
    message = raw.parse()
    assert message.role == "assistant" and message.stop_reason == "max_tokens"
    assert message.content[0].type == "text" and len(message.content[0].text.split()) == 5
    assert message.usage.output_tokens == 5 and message.usage.input_tokens > 0
    assert raw.headers["request-id"].startswith("req_")
    assert fake.stats()["last_requests"][-1]["headers"]["anthropic-version"] == "2026-10-21"


def test_a_tool_use_and_the_answer_after_its_result(claude: anthropic.Anthropic) -> None:
    first = claude.messages.create(
        model="claude-haiku-4-5",
        max_tokens=100,
        messages=[{"role": "user", "content": "Weather in Oslo?"}],
        tools=[WEATHER],
        tool_choice={"type": "any"},
    )
    use = first.content[0]
    assert first.stop_reason == "tool_use" and use.type == "tool_use" and use.id.startswith("toolu_")
    assert isinstance(use.input, dict) and isinstance(use.input["city"], str)
    second = claude.messages.create(
        model="claude-haiku-4-5",
        max_tokens=10,
        tools=[WEATHER],
        messages=[
            {"role": "user", "content": "Weather in Oslo?"},
            {
                "role": "assistant",
                "content": [{"type": "tool_use", "id": use.id, "name": use.name, "input": use.input}],
            },
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "4C"}]},
        ],
    )
    assert second.content[0].type == "text"


def test_a_stream_event_by_event(claude: anthropic.Anthropic) -> None:
    with claude.messages.stream(model="claude-haiku-4-5", max_tokens=6, messages=HELLO) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_message()
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
    assert {"content_block_start", "content_block_delta", "content_block_stop", "message_delta"} <= set(kinds)
    assert final.usage.output_tokens == 6 and final.content[0].type == "text"


def test_a_streamed_tool_use_arrives_in_pieces(claude: anthropic.Anthropic) -> None:
    with claude.messages.stream(
        model="claude-haiku-4-5", max_tokens=100, messages=HELLO, tools=[WEATHER], tool_choice={"type": "any"}
    ) as stream:
        deltas = [e for e in stream if e.type == "content_block_delta" and e.delta.type == "input_json_delta"]
        final = stream.get_final_message()
    assert len(deltas) > 1 and final.content[0].type == "tool_use" and "city" in final.content[0].input


def test_structured_output_follows_the_schema(claude: anthropic.Anthropic) -> None:
    schema = {"type": "object", "properties": {"age": {"type": "integer"}}, "required": ["age"]}
    message = claude.messages.create(
        model="claude-haiku-4-5",
        max_tokens=50,
        messages=HELLO,
        output_config={"format": {"type": "json_schema", "schema": schema}},
    )
    assert message.content[0].type == "text" and '"age"' in message.content[0].text


def test_shapes_outside_the_sdk_types_are_refused(fake: FakeUpstream) -> None:
    """As the real API refuses them: the request is checked against MessageCreateParams."""
    answer = httpx.post(
        fake.url + "/v1/messages",
        headers={"x-api-key": KEY, "anthropic-version": "2026-10-21"},
        json={"model": "claude-haiku-4-5", "max_tokens": 5, "messages": HELLO, "n": 2},
    )
    assert answer.status_code == 400 and answer.json()["error"]["type"] == "invalid_request_error"
    assert "n: not a field" in answer.json()["error"]["message"]


@pytest.mark.parametrize(("model", "status"), [("claude-haiku-4-5", 200), ("claude-opus-4-7", 400)])
def test_sampling_parameters_only_where_the_model_takes_them(fake: FakeUpstream, model: str, status: int) -> None:
    answer = httpx.post(
        fake.url + "/v1/messages",
        headers={"x-api-key": KEY, "anthropic-version": "2026-10-21"},
        json={"model": model, "max_tokens": 5, "messages": HELLO, "temperature": 0.2},
    )
    assert answer.status_code == status


def test_a_wrong_key_and_a_missing_version(fake: FakeUpstream) -> None:
    with (
        anthropic.Anthropic(base_url=fake.url, api_key="wrong", max_retries=0) as wrong,
        pytest.raises(anthropic.AuthenticationError),
    ):
        wrong.messages.create(model="claude-haiku-4-5", max_tokens=5, messages=HELLO)
    answer = httpx.post(fake.url + "/v1/messages", headers={"x-api-key": KEY}, json={})
    assert answer.status_code == 400 and "anthropic-version" in answer.json()["error"]["message"]


@pytest.mark.parametrize(
    ("kind", "error", "status"),
    [
        ("500", anthropic.InternalServerError, 500),
        ("529", anthropic.OverloadedError, 529),
        ("429", anthropic.RateLimitError, 429),
        ("context_length", anthropic.BadRequestError, 400),
    ],
)
def test_injected_failures_speak_anthropic(
    claude: anthropic.Anthropic, fake: FakeUpstream, kind: str, error: type[anthropic.APIStatusError], status: int
) -> None:
    fake.configure(failure_kind=kind, failure_rate=1.0, retry_after_ms=2000)
    with pytest.raises(error) as info:
        claude.messages.create(model="claude-haiku-4-5", max_tokens=5, messages=HELLO)
    assert info.value.status_code == status
    if kind == "429":
        assert info.value.response.headers["retry-after"] == "2"


@pytest.mark.parametrize("kind", ["stream_error", "mid_stream_error"])
def test_an_error_event_in_the_stream(claude: anthropic.Anthropic, fake: FakeUpstream, kind: str) -> None:
    fake.configure(failure_kind=kind, failure_rate=1.0)
    seen: list[str] = []
    with pytest.raises(anthropic.APIStatusError) as info:  # the SDK raises the error event it reads
        with claude.messages.stream(model="claude-haiku-4-5", max_tokens=8, messages=HELLO) as stream:
            for event in stream:
                seen.append(event.type)
    assert "Overloaded" in str(info.value)
    assert ("message_start" in seen) == (kind == "mid_stream_error")


def test_rate_limits_and_their_headers(claude: anthropic.Anthropic, fake: FakeUpstream) -> None:
    fake.set_limits(rpm=2)
    raw = claude.messages.with_raw_response.create(model="claude-haiku-4-5", max_tokens=5, messages=HELLO)
    assert raw.headers["anthropic-ratelimit-requests-limit"] == "2"
    assert raw.headers["anthropic-ratelimit-requests-remaining"] == "1"
    assert raw.headers["anthropic-ratelimit-requests-reset"].endswith("Z")
    claude.messages.create(model="claude-haiku-4-5", max_tokens=5, messages=HELLO)
    with pytest.raises(anthropic.RateLimitError) as info:
        claude.messages.create(model="claude-haiku-4-5", max_tokens=5, messages=HELLO)
    assert int(info.value.response.headers["retry-after"]) >= 1
    assert info.value.response.headers["anthropic-ratelimit-requests-remaining"] == "0"


def test_cached_tokens_are_reported_as_cache_reads(claude: anthropic.Anthropic, fake: FakeUpstream) -> None:
    fake.configure(cached_tokens=4)
    message = claude.messages.create(model="claude-haiku-4-5", max_tokens=5, messages=HELLO)
    assert message.usage.cache_read_input_tokens == 4
