"""The Anthropic adapter beyond the recorded fixtures: every fixture checked against the official SDKs' types
(``anthropic`` for what goes upstream and comes back, ``openai`` for what the client gets), and the rules a
fixture cannot show: refusals that name the parameter, per-model decisions, mid-stream errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anthropic.types
import openai.types.chat
import orjson
import pytest
from anthropic.types.message_create_params import MessageCreateParamsNonStreaming
from pydantic import TypeAdapter

from gateway import failures
from gateway.config.model import CAPABILITIES, Deployment, Limits
from gateway.errors import InvalidRequest, UpstreamStatus
from gateway.fake.sdk_shapes import anthropic_request_problems
from gateway.fake.shapes import problems
from gateway.providers import REGISTRY
from gateway.providers.anthropic.models import CURRENT, from_entry
from gateway.providers.anthropic.request import to_body
from gateway.providers.anthropic.stream import Translator
from gateway.providers.base import UnsupportedParameter, UnsupportedValue
from gateway.sse import SSEDecoder

ANTHROPIC = REGISTRY["anthropic"]
CASES = sorted(p for p in (Path(__file__).parent.parent / "fixtures" / "anthropic").iterdir() if p.is_dir())
HELLO: list[Any] = [{"role": "user", "content": "Hello"}]
EVENTS: TypeAdapter[Any] = TypeAdapter(anthropic.types.RawMessageStreamEvent)


def deployment(
    model: str = "claude-haiku-4-5", max_output: int | None = None, caps: frozenset[str] = CAPABILITIES
) -> Deployment:
    return Deployment("acct", "claude", model, "chat", Limits(), None, None, max_output, caps)


def translate(body: dict[str, Any], d: Deployment | None = None) -> dict[str, Any]:
    return ANTHROPIC.to_request({"model": "claude", "messages": HELLO, **body}, d or deployment(), ANTHROPIC, "chat")


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_every_fixture_has_the_sdk_shapes(case: Path) -> None:
    """Upstream sides against the anthropic SDK's types, translated sides (as the adapter makes them) against
    the openai SDK's."""
    request = json.loads((case / "upstream_request.json").read_text())
    assert anthropic_request_problems(request) == []
    d = deployment(request["model"])
    if (case / "upstream_response.json").exists():
        raw = (case / "upstream_response.json").read_bytes()
        anthropic.types.Message.model_validate_json(raw, strict=True)
        assert ANTHROPIC.from_response is not None
        openai.types.chat.ChatCompletion.model_validate_json(ANTHROPIC.from_response(raw, d))
    if (case / "upstream.sse").exists():
        translator = Translator(d)
        for event in SSEDecoder().feed((case / "upstream.sse").read_bytes()):
            if orjson.loads(event)["type"] != "ping":
                EVENTS.validate_json(event)
            for chunk in translator.feed(event):
                if chunk != b"[DONE]":
                    openai.types.chat.ChatCompletionChunk.model_validate_json(chunk)


def test_the_sampling_rule_is_the_catalogs() -> None:
    """Older models take temperature and top_p, current ones (and models the catalog does not know) do not."""
    out = translate({"temperature": 0.3, "top_p": 0.8})
    assert (out["temperature"], out["top_p"]) == (0.3, 0.8)
    for model in ("claude-opus-4-7", "claude-sonnet-5-5", "claude-unreleased-9"):
        with pytest.raises(UnsupportedParameter) as info:
            translate({"temperature": 0.3}, deployment(model))
        assert info.value.param == "temperature" and info.value.status == 400
        assert "temperature" not in translate({"temperature": 1}, deployment(model))  # asks for nothing
    with pytest.raises(UnsupportedValue, match="range is 0 to 1"):
        translate({"temperature": 1.5})


def test_the_sampling_rule_matches_what_the_sdk_types_allow() -> None:
    """Today's MessageCreateParams have no temperature at all: only catalog-approved models get one."""
    assert problems(
        {"model": "m", "max_tokens": 1, "messages": [], "temperature": 0.5}, MessageCreateParamsNonStreaming
    )
    assert (
        anthropic_request_problems(
            {"model": "claude-haiku-4-5", "max_tokens": 1, "messages": HELLO, "temperature": 0.5}
        )
        == []
    )
    assert anthropic_request_problems(
        {"model": "claude-opus-4-7", "max_tokens": 1, "messages": HELLO, "temperature": 0.5}
    )


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"logprobs": True}, "logprobs"),
        ({"n": 2}, "n"),
        ({"seed": 7}, "seed"),
        ({"response_format": {"type": "json_object"}}, "response_format"),
        ({"tools": [{"type": "custom", "custom": {"name": "x"}}]}, "tools[0]"),
        (
            {
                "tool_choice": {"type": "allowed_tools", "allowed_tools": {}},
                "tools": [{"type": "function", "function": {"name": "f"}}],
            },
            "tool_choice",
        ),
        (
            {
                "messages": [
                    {"role": "user", "content": [{"type": "input_audio", "input_audio": {"data": "", "format": "wav"}}]}
                ]
            },
            "messages[0].content[0]",
        ),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [{"type": "image_url", "image_url": {"url": "data:image/bmp;base64,AA"}}],
                    }
                ]
            },
            "messages[0].content[0]",
        ),
        ({"messages": [{"role": "function", "name": "f", "content": "x"}]}, "messages[0].role"),
        ({"top_k": 5}, "top_k"),
    ],
)
def test_what_anthropic_cannot_express_is_refused_by_name(body: dict[str, Any], param: str) -> None:
    with pytest.raises(UnsupportedParameter) as info:
        translate(body)
    assert info.value.param == param and info.value.status == 400 and info.value.code == "unsupported_parameter"


def test_structured_output_needs_the_capability() -> None:
    schema = {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}}
    assert translate({"response_format": schema})["output_config"] == {
        "format": {"type": "json_schema", "schema": {"type": "object"}}
    }
    with pytest.raises(UnsupportedValue):
        translate({"response_format": schema}, deployment(caps=frozenset({"tools"})))


def test_max_tokens_defaults_to_the_deployments_output_limit() -> None:
    assert translate({})["max_tokens"] == 4096
    assert translate({}, deployment(max_output=64000))["max_tokens"] == 64000
    assert translate({"max_tokens": 10, "max_completion_tokens": 20})["max_tokens"] == 20


def test_reasoning_effort_per_model() -> None:
    assert translate({"reasoning_effort": "high", "max_tokens": 8000})["thinking"] == {
        "type": "enabled",
        "budget_tokens": 7999,
    }
    adaptive = translate({"reasoning_effort": "minimal"}, deployment("claude-opus-4-7"))
    assert adaptive["thinking"] == {"type": "adaptive"} and adaptive["output_config"] == {"effort": "low"}
    assert translate({"reasoning_effort": "none"})["thinking"] == {"type": "disabled"}
    with pytest.raises(UnsupportedValue):  # this model always thinks
        translate({"reasoning_effort": "none"}, deployment("claude-sonnet-5-5"))
    with pytest.raises(InvalidRequest) as info:  # a budget needs room under max_tokens
        translate({"reasoning_effort": "low", "max_tokens": 500})
    assert info.value.param == "max_tokens"
    no_thinking = from_entry({"supports_reasoning": False})
    with pytest.raises(UnsupportedParameter):
        to_body({"model": "m", "messages": HELLO, "reasoning_effort": "low"}, deployment(), no_thinking)
    assert not CURRENT.xhigh
    with pytest.raises(UnsupportedValue):
        to_body({"model": "m", "messages": HELLO, "reasoning_effort": "xhigh"}, deployment(), CURRENT)


def test_tools_without_a_choice_and_parallel_calls_off() -> None:
    tools = [{"type": "function", "function": {"name": "f"}}]
    out = translate({"tools": tools, "parallel_tool_calls": False})
    assert out["tool_choice"] == {"type": "auto", "disable_parallel_tool_use": True}
    assert "tool_choice" not in translate({"tools": tools, "tool_choice": "auto"})
    assert translate({"tools": tools, "tool_choice": "none"})["tool_choice"] == {"type": "none"}
    with pytest.raises(InvalidRequest):
        translate({"tool_choice": "required"})
    with pytest.raises(InvalidRequest) as info:
        translate(
            {
                "messages": [
                    {
                        "role": "assistant",
                        "tool_calls": [
                            {"id": "1", "type": "function", "function": {"name": "f", "arguments": "{oops"}}
                        ],
                    }
                ]
            }
        )
    assert info.value.param == "messages[0].tool_calls[0].function.arguments"


def test_embeddings_are_refused_with_the_reason() -> None:
    with pytest.raises(UnsupportedParameter, match="no embeddings API"):
        ANTHROPIC.to_request({"model": "claude", "input": "x"}, deployment(), ANTHROPIC, "embeddings")


def test_auth_is_todays_sdks() -> None:
    from gateway.config.model import Secret

    assert ANTHROPIC.auth(Secret("sk-ant-x")) == {"authorization": "Bearer sk-ant-x", "anthropic-version": "2026-10-21"}


def _events(*events: dict[str, Any]) -> list[bytes]:
    translator = Translator(deployment())
    return [chunk for e in events for chunk in translator.feed(orjson.dumps(e))]


START = {"type": "message_start", "message": {"id": "msg_1", "model": "claude-haiku-4-5", "usage": {"input_tokens": 3}}}


def test_an_error_event_raises_its_failure() -> None:
    error = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    with pytest.raises(UpstreamStatus) as info:
        _events(
            START, {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hi"}}, error
        )
    assert info.value.code == "overloaded_error" and info.value.status == 502
    assert failures.triggers(info.value) == {"529", "5xx"}
    with pytest.raises(UpstreamStatus) as limited:
        _events({"type": "error", "error": {"type": "rate_limit_error", "message": "slow"}})
    assert limited.value.status == 429


def test_unknown_events_are_skipped_and_a_cut_stream_has_no_done() -> None:
    chunks = _events(
        START,
        {"type": "future_event", "x": 1},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "citations_delta"}},
    )
    assert len(chunks) == 1 and b"[DONE]" not in chunks
    assert Translator(deployment()).finish() == []
