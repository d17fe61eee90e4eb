"""The aiohttp server: authenticate, limit, delay, fail on purpose, and answer in OpenAI's wire format, or,
on their paths, in Anthropic's Messages format (``anthropic``) and Bedrock's Converse format (``bedrock``).

Handlers run with ``handler_cancellation=True`` so that a client closing its connection cancels the
handler even while it sleeps (latency, ttft, stall); that cancellation is what ``disconnects`` counts.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hmac
import secrets
import time
from typing import Any

import orjson
from aiohttp import web

from gateway.fake import admin, anthropic, bedrock, errors
from gateway.fake.behaviour import Behaviour, FakeSettings
from gateway.fake.chat import (
    ChatRequest,
    Completion,
    completion_body,
    parse_chat_request,
    plan_completion,
    stream_events,
)
from gateway.fake.embeddings import embedding_body, parse_embedding_request
from gateway.fake.errors import RequestError
from gateway.fake.exchange import Exchange
from gateway.fake.paths import Route, match_route
from gateway.fake.ratelimit import format_duration, retry_headers
from gateway.fake.state import FakeState

STATE = web.AppKey("fake_state", FakeState)
FOREVER = 3600.0  # "stall" and "timeout" outlast any client timeout; a disconnect ends them
MODEL_CREATED = 1686935002
_INVALID = object()  # a body that is not JSON


async def _read_json(request: web.Request) -> Any:
    if request.method != "POST":
        return None
    raw = await request.read()
    try:
        return orjson.loads(raw) if raw else _INVALID
    except orjson.JSONDecodeError:
        return _INVALID


async def api(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    body = await _read_json(request)
    record: dict[str, Any] = {
        "method": request.method,
        "path": request.path,
        "query": dict(request.query),
        "headers": {name.lower(): value for name, value in request.headers.items()},
        "body": None if body is _INVALID else body,
        "model": None,
        "status": None,
    }
    exchange = Exchange(request, state, record)
    state.stats.begin(record)
    try:
        return await _serve(exchange, body)
    except RequestError as e:
        return exchange.json(e.status, e.body, e.headers)
    except asyncio.CancelledError:
        if not exchange.closed_by_us and not state.closing:
            state.stats.disconnects += 1
        raise
    except ConnectionResetError:  # the client left while we were writing
        if not exchange.closed_by_us:
            state.stats.disconnects += 1
        return exchange.response or web.Response()
    finally:
        state.stats.finish(record)


def _check_auth(exchange: Exchange, route: Route) -> None:
    key = exchange.state.settings.api_key
    if key is None:
        return
    headers = exchange.request.headers
    if route.azure:
        if not hmac.compare_digest(headers.get("api-key", ""), key):
            raise errors.azure_unauthorized()
        return
    scheme, _, given = headers.get("Authorization", "").partition(" ")
    given = given.strip() if scheme.lower() == "bearer" else ""
    if not hmac.compare_digest(given, key):
        raise errors.unauthorized(given or None)


async def _serve(exchange: Exchange, body: Any) -> web.StreamResponse:
    request, state = exchange.request, exchange.state
    route = match_route(request.path)
    if route is None or route.method != request.method:
        raise errors.invalid_url(request.method, request.path)
    if route.kind == "messages":
        return await anthropic.serve(exchange, None if body is _INVALID else body)
    if route.kind in ("converse", "converse-stream"):
        return await bedrock.serve(exchange, None if body is _INVALID else body, route)
    exchange.limit_headers = state.limiter.headers()
    _check_auth(exchange, route)
    if route.azure and "api-version" not in request.query:
        raise errors.azure_missing_api_version()
    if body is _INVALID:
        raise errors.bad_json()
    if route.kind == "models":
        data = [_model(m) for m in state.model_ids()]
        return exchange.json(200, {"object": "list", "data": data})
    if route.kind == "model":
        return exchange.json(200, _model(route.model or ""))
    if route.kind == "embeddings":
        return await _embeddings(exchange, body, route)
    return await _chat(exchange, body, route)


def _model(model_id: str) -> dict[str, Any]:
    return {"id": model_id, "object": "model", "created": MODEL_CREATED, "owned_by": "fake"}


def _admit(exchange: Exchange, model: str, tokens: int) -> None:
    """Take capacity from the rpm/tpm buckets, or answer 429 as OpenAI does."""
    limiter, stats = exchange.state.limiter, exchange.state.stats
    denial = limiter.admit(tokens)
    exchange.limit_headers = limiter.headers()
    if denial is None:
        return
    stats.limit_rejections += 1
    if denial.retry_after is None:
        raise RequestError(429, errors.request_too_large(model, denial.limit, denial.requested))
    wait = format_duration(denial.retry_after)
    body = errors.rate_limited(model, denial.unit, denial.limit, denial.used, denial.requested, wait)
    raise RequestError(429, body, retry_headers(denial.retry_after))


def _injected_429(exchange: Exchange, model: str, behaviour: Behaviour) -> RequestError:
    """A 429 on purpose: claims the request allowance is spent until retry_after_ms has passed."""
    seconds = behaviour.retry_after_ms / 1000
    requests = exchange.state.limiter.requests
    limit = requests.limit if requests is not None else 10_000
    headers = {
        "x-ratelimit-limit-requests": str(limit),
        "x-ratelimit-remaining-requests": "0",
        "x-ratelimit-reset-requests": format_duration(seconds),
        **retry_headers(seconds),
    }
    body = errors.rate_limited(model, "requests", limit, limit, 1, format_duration(seconds))
    return RequestError(429, body, headers)


async def _fail(
    exchange: Exchange, kind: str, model: str, behaviour: Behaviour, stream: bool, prompt: int, cap: int
) -> web.StreamResponse:
    """Answer with an injected failure other than ``cut`` (which needs the planned answer)."""
    if kind == "500":
        raise errors.server_error()
    if kind in ("503", "529"):
        raise errors.overloaded()
    if kind == "429":
        raise _injected_429(exchange, model, behaviour)
    if kind == "insufficient_quota":
        raise errors.insufficient_quota()
    if kind == "context_length":
        window = behaviour.context_window or 128_000
        raise errors.context_length(window, max(prompt, window + 1 - cap), cap)
    if kind in ("stream_error", "mid_stream_error"):
        if not stream:
            raise errors.server_error()
        response = await exchange.start_stream("text/event-stream")
        await response.write(errors.stream_error_event())
        await response.write_eof()  # the response ends, without [DONE]
        return response
    if kind == "reset":
        exchange.record["status"] = "reset"
        exchange.close_connection(reset=True)
        return web.Response()
    if kind == "stall":
        await exchange.start_stream("text/event-stream" if stream else "application/json")
    await asyncio.sleep(FOREVER)  # stall (after headers) or timeout (before them)
    exchange.close_connection(reset=True)
    return exchange.response or web.Response()


async def _embeddings(exchange: Exchange, body: Any, route: Route) -> web.StreamResponse:
    state = exchange.state
    request = parse_embedding_request(body, route.model)
    exchange.record["model"] = request.model
    behaviour = state.behaviours.for_model(request.model)
    prompt = sum(state.tokens.embedding_input(request.model, item) for item in request.inputs)
    _admit(exchange, request.model, prompt)
    await asyncio.sleep(behaviour.latency_ms / 1000)
    failure = state.pick_failure(request.model, behaviour)
    if failure is not None and failure != "cut":
        state.limiter.settle(prompt, 0)
        return await _fail(exchange, failure, request.model, behaviour, False, prompt, 0)
    response = embedding_body(request, lambda item: state.tokens.embedding_input(request.model, item))
    state.stats.prompt_tokens += prompt
    if failure == "cut":
        return await _cut_json(exchange, response)
    return exchange.json(200, response)


async def _chat(exchange: Exchange, body: Any, route: Route) -> web.StreamResponse:
    state = exchange.state
    request = parse_chat_request(body, route.model)
    exchange.record["model"] = request.model
    behaviour = state.behaviours.for_model(request.model)
    prompt = state.tokens.messages(request.model, request.messages, request.tools)
    window = behaviour.context_window
    if window is not None and prompt + (request.max_tokens or 0) > window:
        raise errors.context_length(window, prompt, request.max_tokens or 0)
    cap = request.max_tokens if request.max_tokens is not None else behaviour.default_completion_tokens
    estimate = prompt + cap * request.n
    _admit(exchange, request.model, estimate)
    await asyncio.sleep(behaviour.latency_ms / 1000)
    failure = state.pick_failure(request.model, behaviour)
    midway = failure in ("cut", "mid_stream_error") and (request.stream or failure == "cut")
    if failure is not None and not midway:
        state.limiter.settle(estimate, 0)  # a failed request costs no tokens
        return await _fail(exchange, failure, request.model, behaviour, request.stream, prompt, cap)
    completion_id = "chatcmpl-" + secrets.token_urlsafe(21).replace("-", "a").replace("_", "b")
    completion = plan_completion(request, prompt, behaviour.default_completion_tokens, completion_id, int(time.time()))
    completion = dataclasses.replace(completion, cached_tokens=min(prompt, behaviour.cached_tokens))
    state.limiter.settle(estimate, prompt + completion.completion_tokens)
    state.stats.prompt_tokens += prompt
    state.stats.completion_tokens += completion.completion_tokens
    if request.stream:
        frames = sse_frames(request, completion)
        if failure == "mid_stream_error":  # half the answer, then OpenAI's error object, and no [DONE]
            frames = frames[: len(frames) // 2] + [(False, errors.stream_error_event())]
            return await _stream(exchange, frames, behaviour, True, close=False)
        return await _stream(exchange, frames, behaviour, failure == "cut")
    if failure == "cut":
        return await _cut_json(exchange, completion_body(completion))
    return exchange.json(200, completion_body(completion))


def sse_frames(request: ChatRequest, completion: Completion) -> list[tuple[bool, bytes]]:
    """``data: {chunk}`` frames; the flag marks a frame that starts a token position (paced)."""
    events = stream_events(completion, request.include_usage)
    return [(paced, b"data: " + orjson.dumps(chunk) + b"\n\n") for paced, chunk in events]


async def _stream(
    exchange: Exchange, frames: list[tuple[bool, bytes]], behaviour: Behaviour, cut: bool, close: bool = True
) -> web.StreamResponse:
    """Send ``frames`` paced as ``behaviour`` says, then ``[DONE]``; ``cut``: only the first half (all of them
    when not ``close``), then the connection is closed (or the response ended), with no ``[DONE]``."""
    response = await exchange.start_stream("text/event-stream")
    await asyncio.sleep(behaviour.ttft_ms / 1000)
    interval = 1 / behaviour.tokens_per_second if behaviour.tokens_per_second > 0 else 0.0
    for paced, frame in frames[: len(frames) // 2] if cut and close else frames:
        if paced and interval:
            await asyncio.sleep(interval)
        await response.write(frame)
    if cut:
        if not close:
            await response.write_eof()
            return response
        exchange.close_connection(reset=False)  # no [DONE]: the client sees a truncated stream
        return response
    await response.write(b"data: [DONE]\n\n")
    await response.write_eof()
    return response


async def _cut_json(exchange: Exchange, body: dict[str, Any]) -> web.StreamResponse:
    payload = orjson.dumps(body)
    response = await exchange.start_stream("application/json", length=len(payload))
    await response.write(payload[: len(payload) // 2])
    exchange.close_connection(reset=False)
    return response


def build_app(settings: FakeSettings) -> web.Application:
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app[STATE] = FakeState(settings)
    admin.add_routes(app.router, STATE)
    app.router.add_route("*", "/{tail:.*}", api)
    return app
