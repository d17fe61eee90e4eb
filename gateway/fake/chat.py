"""Chat completions: parse a request, plan a deterministic answer, render it as JSON or stream chunks.

All pure: ids, timestamps and token counts come in as arguments. One generated piece is one
completion token, so a stream sends one content chunk per token, as OpenAI does.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from gateway.fake import errors
from gateway.fake.generate import (
    json_object_pieces,
    rng_for,
    schema_pieces,
    split_pieces,
    token_logprob,
    tool_call_id,
    value_for_schema,
    words,
)


@dataclass(frozen=True)
class ChatRequest:
    model: str
    messages: tuple[Any, ...]
    n: int = 1
    max_tokens: int | None = None
    stop: tuple[str, ...] = ()
    logprobs: bool = False
    top_logprobs: int = 0
    response_format: Mapping[str, Any] | None = None
    seed: int | None = None
    tools: tuple[Mapping[str, Any], ...] = ()  # function tools only
    tool_choice: Any = None
    stream: bool = False
    include_usage: bool = False


def _int(body: Mapping[str, Any], name: str, minimum: int) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise errors.invalid_type(name, "an integer", value)
    if value < minimum:
        raise errors.below_minimum(name, minimum, value)
    return value


def _stop(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and all(isinstance(s, str) for s in value):
        return tuple(s for s in value if s)
    raise errors.invalid_type("stop", "a string or an array of strings", value)


def parse_chat_request(body: Any, deployment: str | None = None) -> ChatRequest:
    """Validate the fields the fake uses; ``deployment`` (Azure) names the model instead of the body."""
    model = errors.model_of(body, deployment)
    messages = body.get("messages")
    if messages is None:
        raise errors.missing_param("messages")
    if not isinstance(messages, list) or not messages:
        raise errors.invalid_request("Invalid 'messages': empty array or not an array.", "messages")
    tools = body.get("tools") or []
    if not isinstance(tools, list):
        raise errors.invalid_type("tools", "an array", tools)
    stream_options = body.get("stream_options") or {}
    response_format = body.get("response_format")
    completion_cap = _int(body, "max_completion_tokens", 1)
    return ChatRequest(
        model=model,
        messages=tuple(messages),
        n=_int(body, "n", 1) or 1,
        max_tokens=completion_cap if completion_cap is not None else _int(body, "max_tokens", 1),
        stop=_stop(body.get("stop")),
        logprobs=bool(body.get("logprobs")),
        top_logprobs=_int(body, "top_logprobs", 0) or 0,
        response_format=response_format if isinstance(response_format, dict) else None,
        seed=_int(body, "seed", -(2**63)),
        tools=tuple(t for t in tools if isinstance(t, dict) and t.get("type", "function") == "function"),
        tool_choice=body.get("tool_choice"),
        stream=bool(body.get("stream")),
        include_usage=bool(isinstance(stream_options, dict) and stream_options.get("include_usage")),
    )


def chosen_tool(request: ChatRequest) -> Mapping[str, Any] | None:
    """The function the model calls: the named one, else the first; none for tool_choice "none", nor when
    the model may choose ("auto") and has just been given a tool's result, as a model answers then."""
    if not request.tools or request.tool_choice == "none":
        return None
    choice = request.tool_choice
    last = request.messages[-1] if request.messages else None
    if choice in (None, "auto") and isinstance(last, dict) and last.get("role") == "tool":
        return None
    if isinstance(choice, dict) and isinstance(choice.get("function"), dict):
        name = choice["function"].get("name")
        for tool in request.tools:
            if tool.get("function", {}).get("name") == name:
                return tool
        raise errors.invalid_request(f"Invalid value for 'tool_choice': no function named '{name}'.", "tool_choice")
    return request.tools[0]


@dataclass(frozen=True)
class ToolCall:
    id: str
    name: str
    arguments: tuple[str, ...]  # the JSON arguments, one piece per token


@dataclass(frozen=True)
class Choice:
    index: int
    pieces: tuple[str, ...]
    finish_reason: str
    tool_call: ToolCall | None = None
    logprobs: tuple[dict[str, Any], ...] | None = None

    @property
    def tokens(self) -> int:
        return len(self.tool_call.arguments) + 1 if self.tool_call else len(self.pieces)

    @property
    def text(self) -> str:
        return "".join(self.pieces)


@dataclass(frozen=True)
class Completion:
    id: str
    created: int
    model: str
    fingerprint: str
    choices: tuple[Choice, ...]
    prompt_tokens: int
    cached_tokens: int = 0  # of prompt_tokens, read from the prompt cache

    @property
    def completion_tokens(self) -> int:
        return sum(choice.tokens for choice in self.choices)

    def usage(self) -> dict[str, Any]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
            "prompt_tokens_details": {"cached_tokens": self.cached_tokens, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": 0,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        }


def _truncate_at_stop(pieces: list[str], stops: tuple[str, ...]) -> list[str] | None:
    """The pieces before the earliest stop sequence, or None when no stop sequence occurs."""
    text = "".join(pieces)
    hits = [i for i in (text.find(s) for s in stops) if i >= 0]
    if not hits:
        return None
    cut, kept, position = min(hits), [], 0
    for piece in pieces:
        if position + len(piece) > cut:
            if cut > position:
                kept.append(piece[: cut - position])
            break
        kept.append(piece)
        position += len(piece)
    return kept


def _plan_choice(request: ChatRequest, index: int, default_tokens: int) -> Choice:
    rng = rng_for(request.model, request.messages, request.seed, index)
    tool = chosen_tool(request)
    if tool is not None:
        function = tool.get("function", {})
        arguments = value_for_schema(function.get("parameters") or {"type": "object"}, rng)
        call = ToolCall(
            tool_call_id(rng),
            str(function.get("name", "")),
            tuple(split_pieces(orjson.dumps(arguments).decode())),
        )
        return Choice(index, (), "tool_calls", call)
    budget = request.max_tokens if request.max_tokens is not None else default_tokens
    kind = (request.response_format or {}).get("type")
    if kind == "json_schema":
        schema = (request.response_format or {}).get("json_schema", {}).get("schema")
        pieces, finish = schema_pieces(schema, rng), "stop"
    elif kind == "json_object":
        pieces, finish = json_object_pieces(rng, budget), "stop"
    else:
        natural = request.max_tokens is None  # a set cap is what the answer runs into
        pieces, finish = words(rng, budget, sentence=natural), "stop" if natural else "length"
        stopped = _truncate_at_stop(pieces, request.stop)
        if stopped is not None:
            pieces, finish = stopped, "stop"
    logprobs = None
    if request.logprobs:
        lp_rng = rng_for("logprobs", request.model, request.messages, index)
        logprobs = tuple(token_logprob(p, lp_rng, request.top_logprobs) for p in pieces)
    return Choice(index, tuple(pieces), finish, None, logprobs)


def plan_completion(
    request: ChatRequest, prompt_tokens: int, default_tokens: int, completion_id: str, created: int
) -> Completion:
    fingerprint = "fp_fake" if request.seed is None else f"fp_fake_{request.seed}"  # echoes the seed
    choices = tuple(_plan_choice(request, i, default_tokens) for i in range(request.n))
    return Completion(completion_id, created, request.model, fingerprint, choices, prompt_tokens)


def _message(choice: Choice) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": None, "refusal": None, "annotations": []}
    if choice.tool_call is None:
        message["content"] = choice.text
        return message
    call = choice.tool_call
    function = {"name": call.name, "arguments": "".join(call.arguments)}
    message["tool_calls"] = [{"id": call.id, "type": "function", "function": function}]
    return message


def _choice_logprobs(entries: tuple[dict[str, Any], ...] | None) -> dict[str, Any] | None:
    return None if entries is None else {"content": list(entries), "refusal": None}


def completion_body(completion: Completion) -> dict[str, Any]:
    """A CreateChatCompletionResponse."""
    return {
        "id": completion.id,
        "object": "chat.completion",
        "created": completion.created,
        "model": completion.model,
        "choices": [
            {
                "index": c.index,
                "message": _message(c),
                "logprobs": _choice_logprobs(c.logprobs),
                "finish_reason": c.finish_reason,
            }
            for c in completion.choices
        ],
        "usage": completion.usage(),
        "service_tier": "default",
        "system_fingerprint": completion.fingerprint,
    }


# (paced, chunk): a paced chunk starts a new token position, so the server waits before sending it
StreamEvent = tuple[bool, dict[str, Any]]


def stream_events(completion: Completion, include_usage: bool) -> list[StreamEvent]:
    """The CreateChatCompletionStreamResponse chunks of a completion, in OpenAI's order."""

    def chunk(choices: list[dict[str, Any]], usage: dict[str, Any] | None = None) -> dict[str, Any]:
        body = {
            "id": completion.id,
            "object": "chat.completion.chunk",
            "created": completion.created,
            "model": completion.model,
            "service_tier": "default",
            "system_fingerprint": completion.fingerprint,
            "choices": choices,
        }
        if include_usage:
            body["usage"] = usage  # null on every chunk but the last
        return body

    def delta(index: int, content: dict[str, Any], logprobs: Any = None, finish: str | None = None) -> dict[str, Any]:
        return {"index": index, "delta": content, "logprobs": logprobs, "finish_reason": finish}

    events: list[StreamEvent] = []
    for c in completion.choices:
        first: dict[str, Any] = {"role": "assistant", "content": "", "refusal": None}
        if c.tool_call is not None:
            head = {"name": c.tool_call.name, "arguments": ""}
            first["content"] = None
            first["tool_calls"] = [{"index": 0, "id": c.tool_call.id, "type": "function", "function": head}]
        events.append((False, chunk([delta(c.index, first)])))
    longest = max((len(c.tool_call.arguments) if c.tool_call else len(c.pieces)) for c in completion.choices)
    for position in range(longest):
        paced = True
        for c in completion.choices:
            if c.tool_call is not None and position < len(c.tool_call.arguments):
                piece = {"index": 0, "function": {"arguments": c.tool_call.arguments[position]}}
                events.append((paced, chunk([delta(c.index, {"tool_calls": [piece]})])))
            elif c.tool_call is None and position < len(c.pieces):
                logprobs = None if c.logprobs is None else {"content": [c.logprobs[position]], "refusal": None}
                events.append((paced, chunk([delta(c.index, {"content": c.pieces[position]}, logprobs)])))
            else:
                continue
            paced = False
    for c in completion.choices:
        events.append((False, chunk([delta(c.index, {}, None, c.finish_reason)])))
    if include_usage:
        events.append((False, chunk([], completion.usage())))
    return events
