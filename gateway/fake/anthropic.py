"""Anthropic's Messages API, as the fake speaks it: ``POST /v1/messages``, JSON and SSE.

Requests are checked as Anthropic checks them: the key, as ``Authorization: Bearer`` (today's SDK) or
``x-api-key`` (401 ``authentication_error``),
``anthropic-version`` (400), and the body against the official SDK's ``MessageCreateParams`` when the
``anthropic`` package is installed (the test suite's, not the demo's; ``shapes``), with ``temperature``
and ``top_p`` accepted only for a model the catalog does not mark ``supports_sampling_params: false``, as
the real API refuses them for current models. Answers are planned by ``chat`` (the same deterministic
words, tool calls from the tool's schema, structured output from ``output_config.format``) and rendered as a
``Message`` or as Anthropic's event stream: ``message_start``, ``content_block_start``, ``ping``,
``content_block_delta`` (``text_delta``, ``input_json_delta``), ``content_block_stop``, ``message_delta``
with the stop reason and usage, ``message_stop``.

Limits answer 429 ``rate_limit_error`` with ``retry-after``; every answer carries
``anthropic-ratelimit-{requests,tokens,input-tokens,output-tokens}-{limit,remaining,reset}`` (resets as
RFC 3339 times). Injected failures speak Anthropic: ``500`` api_error, ``503``/``529`` overloaded_error
(529), ``429``, ``insufficient_quota`` (400 billing: the credit balance is too low), ``context_length``
(400 "prompt is too long"), ``stream_error`` (an ``error`` event first), ``mid_stream_error`` (an ``error``
event after half the answer); ``reset``, ``stall``, ``cut`` and ``timeout`` break HTTP as on every path.
"""

from __future__ import annotations

import asyncio
import hmac
import secrets
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from aiohttp import web

from gateway.fake.behaviour import Behaviour
from gateway.fake.chat import ChatRequest, Choice, Completion, plan_completion
from gateway.fake.errors import RequestError
from gateway.fake.exchange import Exchange
from gateway.fake.ratelimit import RateLimiter
from gateway.fake.sdk_shapes import anthropic_request_problems

FOREVER = 3600.0
_STOP = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use"}


def error(status: int, kind: str, message: str, headers: dict[str, str] | None = None) -> RequestError:
    body = {"type": "error", "error": {"type": kind, "message": message}, "request_id": "req_" + secrets.token_hex(12)}
    return RequestError(status, body, headers)


def limit_headers(limiter: RateLimiter) -> dict[str, str]:
    """``anthropic-ratelimit-*`` for the fake's limits; its one token bucket stands for input and output."""
    out: dict[str, str] = {}
    headers = limiter.headers()
    now = datetime.now(UTC)
    for unit, names in (("requests", ("requests",)), ("tokens", ("tokens", "input-tokens", "output-tokens"))):
        if f"x-ratelimit-limit-{unit}" not in headers:
            continue
        bucket = limiter.requests if unit == "requests" else limiter.tokens
        reset = now + timedelta(seconds=bucket.reset_in() if bucket is not None else 0.0)
        for name in names:
            out[f"anthropic-ratelimit-{name}-limit"] = headers[f"x-ratelimit-limit-{unit}"]
            out[f"anthropic-ratelimit-{name}-remaining"] = headers[f"x-ratelimit-remaining-{unit}"]
            out[f"anthropic-ratelimit-{name}-reset"] = reset.isoformat(timespec="seconds").replace("+00:00", "Z")
    return out


def check(exchange: Exchange, body: Any) -> None:
    headers, key = exchange.request.headers, exchange.state.settings.api_key
    scheme, _, bearer = headers.get("authorization", "").partition(" ")
    given = bearer.strip() if scheme.lower() == "bearer" else headers.get("x-api-key", "")
    if key is not None and not hmac.compare_digest(given, key):
        raise error(401, "authentication_error", "invalid x-api-key")
    if not headers.get("anthropic-version"):
        raise error(400, "invalid_request_error", "anthropic-version: header is required")
    if not isinstance(body, dict):
        raise error(400, "invalid_request_error", "The request body is not valid JSON.")
    wrong = anthropic_request_problems(body)
    if wrong:
        raise error(400, "invalid_request_error", "; ".join(wrong[:5]))


def as_chat(body: dict[str, Any]) -> ChatRequest:
    """The request in the terms ``chat`` plans answers in (an answer after a tool result is text)."""
    turns = [dict(t) for t in body.get("messages") or []]
    last = turns[-1] if turns else {}
    if last.get("role") == "user" and any(
        isinstance(b, dict) and b.get("type") == "tool_result" for b in last.get("content") or []
    ):
        turns[-1] = {"role": "tool", "content": last.get("content")}
    tools = tuple(
        {"type": "function", "function": {"name": t.get("name"), "parameters": t.get("input_schema")}}
        for t in body.get("tools") or []
        if isinstance(t, dict)
    )
    choice = body.get("tool_choice") or {}
    tool_choice: Any = {"auto": "auto", "any": "required", "none": "none"}.get(str(choice.get("type")))
    if choice.get("type") == "tool":
        tool_choice = {"type": "function", "function": {"name": choice.get("name")}}
    output = (body.get("output_config") or {}).get("format")
    response_format = {"type": "json_schema", "json_schema": {"schema": output["schema"]}} if output else None
    system = body.get("system")
    return ChatRequest(
        model=str(body.get("model")),
        messages=tuple(([{"role": "system", "content": system}] if system else []) + turns),
        max_tokens=body.get("max_tokens"),
        stop=tuple(body.get("stop_sequences") or ()),
        response_format=response_format,
        tools=tools,
        tool_choice=tool_choice,
        stream=bool(body.get("stream")),
    )


def usage(completion: Completion) -> dict[str, Any]:
    cached = completion.cached_tokens
    return {
        "input_tokens": completion.prompt_tokens - cached,
        "output_tokens": completion.completion_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": cached,
        "service_tier": "standard",
    }


def _blocks(choice: Choice) -> list[dict[str, Any]]:
    call = choice.tool_call
    if call is None:
        return [{"type": "text", "text": choice.text}]
    tool_id = "toolu_" + call.id.removeprefix("call_")
    return [{"type": "tool_use", "id": tool_id, "name": call.name, "input": orjson.loads("".join(call.arguments))}]


def message(completion: Completion) -> dict[str, Any]:
    """The ``Message`` for a planned completion (one choice: Anthropic has no ``n``)."""
    choice = completion.choices[0]
    return {
        "id": completion.id,
        "type": "message",
        "role": "assistant",
        "model": completion.model,
        "content": _blocks(choice),
        "stop_reason": _STOP.get(choice.finish_reason, "end_turn"),
        "stop_sequence": None,
        "usage": usage(completion),
    }


def _frame(event: dict[str, Any]) -> bytes:
    return b"event: " + str(event["type"]).encode() + b"\ndata: " + orjson.dumps(event) + b"\n\n"


def stream_frames(completion: Completion) -> list[tuple[bool, bytes]]:
    """(paced, frame) in Anthropic's order; a paced frame starts a new token."""
    head = {
        **message(completion),
        "content": [],
        "stop_reason": None,
        "usage": {**usage(completion), "output_tokens": 1},
    }
    choice = completion.choices[0]
    block = _blocks(choice)[0]
    frames = [(False, _frame({"type": "message_start", "message": head}))]
    if choice.tool_call is not None:
        start = {**block, "input": {}}
        pieces = [{"type": "input_json_delta", "partial_json": p} for p in choice.tool_call.arguments]
    else:
        start = {"type": "text", "text": ""}
        pieces = [{"type": "text_delta", "text": p} for p in choice.pieces]
    frames.append((False, _frame({"type": "content_block_start", "index": 0, "content_block": start})))
    frames.append((False, _frame({"type": "ping"})))
    frames += [(True, _frame({"type": "content_block_delta", "index": 0, "delta": d})) for d in pieces]
    frames.append((False, _frame({"type": "content_block_stop", "index": 0})))
    delta = {"stop_reason": _STOP.get(choice.finish_reason, "end_turn"), "stop_sequence": None}
    final = {"output_tokens": completion.completion_tokens}
    frames.append((False, _frame({"type": "message_delta", "delta": delta, "usage": final})))
    frames.append((False, _frame({"type": "message_stop"})))
    return frames


def error_frame(kind: str, text: str) -> bytes:
    return _frame({"type": "error", "error": {"type": kind, "message": text}})


def _limits(exchange: Exchange, tokens: int) -> None:
    limiter, stats = exchange.state.limiter, exchange.state.stats
    denial = limiter.admit(tokens)
    exchange.limit_headers = limit_headers(limiter)
    if denial is None:
        return
    stats.limit_rejections += 1
    if denial.retry_after is None:
        raise error(429, "rate_limit_error", f"This request ({tokens} tokens) exceeds your per-minute token limit")
    wait = {"retry-after": str(max(1, int(denial.retry_after + 0.999)))}
    unit = "requests" if denial.unit == "requests" else "input tokens"
    raise error(429, "rate_limit_error", f"This request would exceed your organization's rate limit of {unit}", wait)


def _injected(kind: str, behaviour: Behaviour, prompt: int) -> RequestError:
    if kind == "429":
        wait = {"retry-after": str(max(1, -(-behaviour.retry_after_ms // 1000)))}
        return error(429, "rate_limit_error", "Number of requests has exceeded your rate limit", wait)
    if kind in ("503", "529"):
        return error(529, "overloaded_error", "Overloaded")
    if kind == "insufficient_quota":
        return error(400, "invalid_request_error", "Your credit balance is too low to access the Anthropic API.")
    if kind == "context_length":
        window = behaviour.context_window or 200_000
        return error(
            400, "invalid_request_error", f"prompt is too long: {max(prompt, window + 1)} tokens > {window} maximum"
        )
    return error(500, "api_error", "Internal server error")


async def serve(exchange: Exchange, body: Any) -> web.StreamResponse:
    exchange.style = "anthropic"
    exchange.limit_headers = limit_headers(exchange.state.limiter)
    check(exchange, body)
    state, request = exchange.state, as_chat(body)
    exchange.record["model"] = request.model
    behaviour = state.behaviours.for_model(request.model)
    prompt = state.tokens.messages(request.model, request.messages, request.tools)
    cap = request.max_tokens if request.max_tokens is not None else behaviour.default_completion_tokens
    _limits(exchange, prompt + cap)
    await asyncio.sleep(behaviour.latency_ms / 1000)
    failure = state.pick_failure(request.model, behaviour)
    if failure in ("reset", "stall", "timeout"):
        state.limiter.settle(prompt + cap, 0)
        return await broken(exchange, failure, request.stream)
    midway = failure == "cut" or (failure == "mid_stream_error" and request.stream)
    if failure is not None and not midway and not (failure == "stream_error" and request.stream):
        state.limiter.settle(prompt + cap, 0)
        raise _injected(failure, behaviour, prompt)
    completion = plan_completion(
        request, prompt, behaviour.default_completion_tokens, "msg_" + secrets.token_hex(12), int(time.time())
    )
    completion = Completion(
        completion.id,
        completion.created,
        completion.model,
        completion.fingerprint,
        completion.choices[:1],
        prompt,
        min(prompt, behaviour.cached_tokens),
    )
    state.limiter.settle(prompt + cap, prompt + completion.completion_tokens)
    state.stats.prompt_tokens += prompt
    state.stats.completion_tokens += completion.completion_tokens
    if not request.stream:
        payload = orjson.dumps(message(completion))
        if failure == "cut":
            response = await exchange.start_stream("application/json", length=len(payload))
            await response.write(payload[: len(payload) // 2])
            exchange.close_connection(reset=False)
            return response
        return exchange.json(200, message(completion))
    frames = stream_frames(completion)
    if failure == "stream_error":
        frames = [(False, error_frame("overloaded_error", "Overloaded"))]
    elif failure == "mid_stream_error":
        frames = frames[: len(frames) // 2] + [(False, error_frame("overloaded_error", "Overloaded"))]
    return await send(exchange, frames, behaviour, "text/event-stream", cut=failure == "cut")


async def send(
    exchange: Exchange, frames: list[tuple[bool, bytes]], behaviour: Behaviour, content_type: str, cut: bool
) -> web.StreamResponse:
    """Stream ``frames`` paced as ``behaviour`` says; ``cut``: half of them, then close the connection."""
    response = await exchange.start_stream(content_type)
    await asyncio.sleep(behaviour.ttft_ms / 1000)
    interval = 1 / behaviour.tokens_per_second if behaviour.tokens_per_second > 0 else 0.0
    for paced, frame in frames[: len(frames) // 2] if cut else frames:
        if paced and interval:
            await asyncio.sleep(interval)
        await response.write(frame)
    if cut:
        exchange.close_connection(reset=False)
        return response
    await response.write_eof()
    return response


async def broken(exchange: Exchange, kind: str, stream: bool) -> web.StreamResponse:
    """``reset``, ``stall`` and ``timeout``: HTTP broken the same way on every provider's path."""
    if kind == "reset":
        exchange.record["status"] = "reset"
        exchange.close_connection(reset=True)
        return web.Response()
    if kind == "stall":
        await exchange.start_stream("text/event-stream" if stream else "application/json")
    await asyncio.sleep(FOREVER)
    exchange.close_connection(reset=True)
    return exchange.response or web.Response()
