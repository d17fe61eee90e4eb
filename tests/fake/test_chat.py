import json
from typing import Any

import pytest

from gateway.fake.chat import (
    ChatRequest,
    completion_body,
    parse_chat_request,
    plan_completion,
    stream_events,
)
from gateway.fake.errors import RequestError

MESSAGES = [{"role": "user", "content": "Say something"}]
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string"},
                "unit": {"enum": ["c", "f"]},
                "days": {"type": "integer"},
            },
            "required": ["city"],
        },
    },
}


def plan(body: dict[str, Any], default_tokens: int = 16) -> dict[str, Any]:
    request = parse_chat_request({"model": "gpt-4o-mini", "messages": MESSAGES, **body})
    return completion_body(plan_completion(request, 10, default_tokens, "chatcmpl-1", 1700000000))


def test_the_cap_is_reached_exactly() -> None:
    body = plan({"max_tokens": 7})
    choice = body["choices"][0]
    assert choice["finish_reason"] == "length"
    assert body["usage"]["completion_tokens"] == 7
    assert body["usage"]["total_tokens"] == 17
    assert plan({"max_completion_tokens": 3, "max_tokens": 50})["usage"]["completion_tokens"] == 3


def test_without_a_cap_the_answer_ends_naturally() -> None:
    body = plan({}, default_tokens=5)
    assert body["choices"][0]["finish_reason"] == "stop"
    assert body["choices"][0]["message"]["content"].endswith(".")
    assert body["usage"]["completion_tokens"] == 5


def test_answers_are_deterministic_per_request_and_choice() -> None:
    first, again = plan({"n": 2}), plan({"n": 2})
    assert [c["message"] for c in first["choices"]] == [c["message"] for c in again["choices"]]
    assert first["choices"][0]["message"] != first["choices"][1]["message"]
    assert first["usage"]["completion_tokens"] == 32


def test_stop_sequences_truncate() -> None:
    text = plan({"max_tokens": 10})["choices"][0]["message"]["content"]
    word = text.split()[3]
    stopped = plan({"max_tokens": 10, "stop": [" " + word, "zzz"]})["choices"][0]
    assert stopped["finish_reason"] == "stop"
    assert stopped["message"]["content"] == text[: text.index(" " + word)]


def test_seed_is_echoed_in_the_fingerprint() -> None:
    assert plan({"seed": 42})["system_fingerprint"] == "fp_fake_42"
    assert plan({})["system_fingerprint"] == "fp_fake"


@pytest.mark.parametrize("cap", [1, 2, 3, 4, 5, 12])
def test_json_object_is_valid_json_of_the_asked_length(cap: int) -> None:
    body = plan({"max_tokens": cap, "response_format": {"type": "json_object"}})
    assert isinstance(json.loads(body["choices"][0]["message"]["content"]), dict)
    assert body["usage"]["completion_tokens"] == cap


def test_json_schema_content_follows_the_schema() -> None:
    schema = {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "age": {"type": "integer", "minimum": 1, "maximum": 9},
            "tags": {"type": "array", "items": {"type": "string"}},
            "kind": {"anyOf": [{"const": "x"}, {"type": "null"}]},
            "ok": {"type": ["boolean", "null"]},
        },
    }
    response_format = {"type": "json_schema", "json_schema": {"name": "p", "schema": schema}}
    value = json.loads(plan({"response_format": response_format})["choices"][0]["message"]["content"])
    assert isinstance(value["name"], str) and 1 <= value["age"] <= 9
    assert isinstance(value["tags"][0], str) and value["kind"] == "x" and isinstance(value["ok"], bool)


def test_tools_produce_a_tool_call() -> None:
    choice = plan({"tools": [WEATHER]})["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] is None
    call = choice["message"]["tool_calls"][0]
    assert call["id"].startswith("call_") and len(call["id"]) == 29
    assert call["function"]["name"] == "get_weather"
    arguments = json.loads(call["function"]["arguments"])
    assert isinstance(arguments["city"], str) and arguments["unit"] == "c"


def test_tool_choice() -> None:
    other = {"type": "function", "function": {"name": "other"}}
    assert plan({"tools": [WEATHER], "tool_choice": "none"})["choices"][0]["finish_reason"] == "stop"
    call = plan({"tools": [WEATHER, other], "tool_choice": {"type": "function", "function": {"name": "other"}}})[
        "choices"
    ][0]["message"]["tool_calls"][0]
    assert call["function"] == {"name": "other", "arguments": "{}"}
    with pytest.raises(RequestError):
        plan({"tools": [WEATHER], "tool_choice": {"type": "function", "function": {"name": "missing"}}})


def test_after_a_tool_result_the_model_answers_unless_made_to_call() -> None:
    turn = [
        *MESSAGES,
        {"role": "assistant", "content": None, "tool_calls": [{"id": "call_1", "type": "function"}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "21C"},
    ]

    def finish(**extra: Any) -> str:
        request = parse_chat_request({"model": "gpt-4o-mini", "messages": turn, "tools": [WEATHER], **extra})
        body = completion_body(plan_completion(request, 10, 16, "chatcmpl-1", 1700000000))
        return str(body["choices"][0]["finish_reason"])

    assert finish() == "stop" and finish(tool_choice="auto") == "stop"
    assert finish(tool_choice="required") == "tool_calls"


def test_logprobs() -> None:
    choice = plan({"max_tokens": 3, "logprobs": True, "top_logprobs": 2})["choices"][0]
    entries = choice["logprobs"]["content"]
    assert "".join(e["token"] for e in entries) == choice["message"]["content"]
    assert all(len(e["top_logprobs"]) == 2 and e["top_logprobs"][0]["token"] == e["token"] for e in entries)
    assert plan({})["choices"][0]["logprobs"] is None


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"model": "m"}, "missing_required_parameter"),
        ({"messages": MESSAGES}, "missing_required_parameter"),
        ({"model": "m", "messages": MESSAGES, "n": "2"}, "invalid_type"),
        ({"model": "m", "messages": MESSAGES, "n": 0}, "integer_below_min_value"),
        ({"model": "m", "messages": MESSAGES, "stop": 5}, "invalid_type"),
    ],
)
def test_invalid_requests(body: dict[str, Any], code: str) -> None:
    with pytest.raises(RequestError) as caught:
        parse_chat_request(body)
    assert caught.value.status == 400
    assert caught.value.body["error"]["code"] == code


def events(body: dict[str, Any], include_usage: bool) -> list[tuple[bool, dict[str, Any]]]:
    request = parse_chat_request({"model": "m", "messages": MESSAGES, **body})
    return stream_events(plan_completion(request, 10, 16, "chatcmpl-1", 1700000000), include_usage)


def test_stream_chunks_in_openai_order() -> None:
    chunks = [chunk for _, chunk in events({"max_tokens": 4}, include_usage=True)]
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": "", "refusal": None}
    assert [len(c["choices"]) for c in chunks] == [1, 1, 1, 1, 1, 1, 0]
    assert chunks[-2]["choices"][0] == {"index": 0, "delta": {}, "logprobs": None, "finish_reason": "length"}
    assert chunks[-1]["usage"]["completion_tokens"] == 4
    assert all(c["usage"] is None for c in chunks[:-1])
    assert all(c["object"] == "chat.completion.chunk" and c["id"] == "chatcmpl-1" for c in chunks)
    assert "usage" not in events({}, include_usage=False)[0][1]


def test_stream_paces_per_token_position_across_choices() -> None:
    flags = [paced for paced, _ in events({"max_tokens": 2, "n": 2}, include_usage=False)]
    assert flags == [False, False, True, False, True, False, False, False]


def test_streamed_tool_call_deltas() -> None:
    chunks = [chunk for _, chunk in events({"tools": [WEATHER]}, include_usage=False)]
    head = chunks[0]["choices"][0]["delta"]["tool_calls"][0]
    assert head["index"] == 0 and head["id"].startswith("call_") and head["type"] == "function"
    assert head["function"] == {"name": "get_weather", "arguments": ""}
    pieces = [c["choices"][0]["delta"]["tool_calls"][0] for c in chunks[1:-1]]
    assert all(set(p) == {"index", "function"} for p in pieces)
    assert json.loads("".join(p["function"]["arguments"] for p in pieces))["city"]
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"


def test_chat_request_defaults() -> None:
    assert parse_chat_request({"messages": MESSAGES}, deployment="dep") == ChatRequest("dep", tuple(MESSAGES))
