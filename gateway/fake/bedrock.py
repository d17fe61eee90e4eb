"""AWS Bedrock's Converse and ConverseStream, as the fake speaks them: ``POST /model/{modelId}/converse`` and
``/converse-stream`` (JSON, and the binary ``application/vnd.amazon.eventstream``).

With an API key set, the fake authenticates as AWS does: it recomputes the request's SigV4 signature with
botocore, over the path and body it received, with the key as the secret access key (any access key id),
and answers 403 ``InvalidSignatureException`` on a mismatch (``MissingAuthenticationTokenException``
without one); a Bedrock API key (``Authorization: Bearer <key>``) is accepted too. The body is checked
against botocore's service model (``sdk_shapes``): a 400 ``ValidationException`` otherwise.

Answers are planned by ``chat`` and rendered as a ``ConverseResponse``, or as ConverseStream events
(``messageStart``, ``contentBlockStart`` for a tool use, ``contentBlockDelta``, ``contentBlockStop``,
``messageStop``, ``metadata`` with usage). Errors name their exception in ``x-amzn-ErrorType``: limits and
``429`` are ``ThrottlingException``, ``503``/``529`` ``ServiceUnavailableException``, ``500``
``InternalServerException``, ``context_length`` a ``ValidationException``; ``stream_error`` sends a
``throttlingException`` as the stream's first message, ``mid_stream_error`` a ``serviceUnavailableException``
after half the answer.
"""

from __future__ import annotations

import asyncio
import hmac
import re
import secrets
import time
from datetime import UTC, datetime
from typing import Any

import orjson
from aiohttp import web

from gateway.fake import anthropic
from gateway.fake.chat import ChatRequest, Completion, plan_completion
from gateway.fake.errors import RequestError
from gateway.fake.eventstream import event, exception
from gateway.fake.exchange import Exchange
from gateway.fake.paths import Route
from gateway.fake.sdk_shapes import bedrock_request_problems

_STOP = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use"}
_AUTH = re.compile(
    r"AWS4-HMAC-SHA256 Credential=(?P<key>[^/]+)/(?P<date>\d{8})/(?P<region>[^/]+)/(?P<service>[^/]+)/aws4_request,"
    r"\s*SignedHeaders=(?P<signed>[^,]+),\s*Signature=(?P<signature>[0-9a-f]{64})"
)
MAX_SKEW_S = 900  # AWS refuses a signature more than 15 minutes off


def error(status: int, name: str, message: str) -> RequestError:
    return RequestError(status, {"message": message}, {"x-amzn-ErrorType": f"{name}:http://internal.amazon.com/coral/"})


def signature_problem(request: web.Request, body: bytes, secret: str) -> str | None:
    """Why the request's SigV4 signature is not one made with ``secret``; None when it is."""
    from botocore.auth import SigV4Auth  # type: ignore[import-untyped]
    from botocore.awsrequest import AWSRequest  # type: ignore[import-untyped]
    from botocore.credentials import Credentials  # type: ignore[import-untyped]

    found = _AUTH.fullmatch(request.headers.get("authorization", ""))
    stamp = request.headers.get("x-amz-date", "")
    if found is None or not stamp:
        return "missing"
    if found["service"] != "bedrock" or not stamp.startswith(found["date"]):
        return "scope"
    try:
        when = datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    except ValueError:
        return "date"
    if abs((datetime.now(UTC) - when).total_seconds()) > MAX_SKEW_S:
        return "expired"
    signed = found["signed"].split(";")
    headers = {name: request.headers.get(name, "") for name in signed}
    url = f"{request.scheme}://{request.host}{request.raw_path}"
    rebuilt = AWSRequest(method=request.method, url=url, data=body, headers=headers)
    rebuilt.context["timestamp"] = stamp
    token = request.headers.get("x-amz-security-token")
    auth = SigV4Auth(Credentials(found["key"], secret, token), "bedrock", found["region"])
    expected = str(auth.signature(auth.string_to_sign(rebuilt, auth.canonical_request(rebuilt)), rebuilt))
    return None if hmac.compare_digest(expected, found["signature"]) else "mismatch"


async def check(exchange: Exchange, body: Any, route: Route) -> None:
    key = exchange.state.settings.api_key
    if key is not None:
        scheme, _, bearer = exchange.request.headers.get("authorization", "").partition(" ")
        if not (scheme == "Bearer" and hmac.compare_digest(bearer.strip(), key)):
            problem = signature_problem(exchange.request, await exchange.request.read(), key)
            exchange.record["signature"] = problem or "valid"
            if problem == "missing":
                raise error(403, "MissingAuthenticationTokenException", "Missing Authentication Token")
            if problem is not None:
                raise error(
                    403,
                    "InvalidSignatureException",
                    "The request signature we calculated does not match the signature you provided. Check your "
                    "AWS Secret Access Key and signing method. Consult the service documentation for details.",
                )
    if not isinstance(body, dict):
        raise error(400, "SerializationException", "Unable to parse the request body as JSON")
    wrong = bedrock_request_problems(route.model or "", body, route.kind == "converse-stream")
    if wrong:
        raise error(400, "ValidationException", "; ".join(wrong[:5]))


def as_chat(model: str, body: dict[str, Any], stream: bool) -> ChatRequest:
    turns = [dict(t) for t in body.get("messages") or []]
    if turns and any("toolResult" in block for block in turns[-1].get("content") or []):
        turns[-1] = {"role": "tool", "content": turns[-1].get("content")}
    tool_config = body.get("toolConfig") or {}
    tools = tuple(
        {
            "type": "function",
            "function": {"name": s.get("name"), "parameters": (s.get("inputSchema") or {}).get("json")},
        }
        for s in (t.get("toolSpec") for t in tool_config.get("tools") or [])
        if isinstance(s, dict)
    )
    choice = tool_config.get("toolChoice") or {}
    tool_choice: Any = "required" if "any" in choice else None
    if "tool" in choice:
        tool_choice = {"type": "function", "function": {"name": choice["tool"].get("name")}}
    text_format = (body.get("outputConfig") or {}).get("textFormat") or {}
    schema = ((text_format.get("structure") or {}).get("jsonSchema") or {}).get("schema")
    inference = body.get("inferenceConfig") or {}
    system = body.get("system")
    return ChatRequest(
        model=model,
        messages=tuple(([{"role": "system", "content": system}] if system else []) + turns),
        max_tokens=inference.get("maxTokens"),
        stop=tuple(inference.get("stopSequences") or ()),
        response_format={"type": "json_schema", "json_schema": {"schema": orjson.loads(schema)}} if schema else None,
        tools=tools,
        tool_choice=tool_choice,
        stream=stream,
    )


def usage(completion: Completion) -> dict[str, Any]:
    cached, total = completion.cached_tokens, completion.prompt_tokens + completion.completion_tokens
    found = {"inputTokens": completion.prompt_tokens - cached, "outputTokens": completion.completion_tokens}
    return {**found, "totalTokens": total, **({"cacheReadInputTokens": cached} if cached else {})}


def _content(completion: Completion) -> dict[str, Any]:
    choice = completion.choices[0]
    call = choice.tool_call
    if call is None:
        return {"text": choice.text}
    use_id = "tooluse_" + call.id.removeprefix("call_")
    return {"toolUse": {"toolUseId": use_id, "name": call.name, "input": orjson.loads("".join(call.arguments))}}


def converse_response(completion: Completion, latency_ms: int) -> dict[str, Any]:
    return {
        "output": {"message": {"role": "assistant", "content": [_content(completion)]}},
        "stopReason": _STOP.get(completion.choices[0].finish_reason, "end_turn"),
        "usage": usage(completion),
        "metrics": {"latencyMs": latency_ms},
    }


def stream_frames(completion: Completion, latency_ms: int) -> list[tuple[bool, bytes]]:
    choice = completion.choices[0]
    frames = [(False, event("messageStart", {"role": "assistant"}))]
    if choice.tool_call is not None:
        use = _content(completion)["toolUse"]
        start = {"toolUse": {"toolUseId": use["toolUseId"], "name": use["name"]}}
        frames.append((False, event("contentBlockStart", {"start": start, "contentBlockIndex": 0})))
        deltas: list[dict[str, Any]] = [{"toolUse": {"input": piece}} for piece in choice.tool_call.arguments]
    else:
        deltas = [{"text": piece} for piece in choice.pieces]
    frames += [(True, event("contentBlockDelta", {"delta": d, "contentBlockIndex": 0})) for d in deltas]
    frames.append((False, event("contentBlockStop", {"contentBlockIndex": 0})))
    frames.append((False, event("messageStop", {"stopReason": _STOP.get(choice.finish_reason, "end_turn")})))
    frames.append((False, event("metadata", {"usage": usage(completion), "metrics": {"latencyMs": latency_ms}})))
    return frames


def _injected(kind: str) -> RequestError:
    if kind in ("429", "insufficient_quota"):
        return error(429, "ThrottlingException", "Too many requests, please wait before trying again.")
    if kind in ("503", "529"):
        return error(503, "ServiceUnavailableException", "Bedrock is unable to process your request.")
    if kind == "context_length":
        return error(400, "ValidationException", "Input is too long for requested model.")
    return error(500, "InternalServerException", "The server encountered an internal error.")


async def serve(exchange: Exchange, body: Any, route: Route) -> web.StreamResponse:
    exchange.style = "bedrock"
    await check(exchange, body, route)
    state, stream = exchange.state, route.kind == "converse-stream"
    request = as_chat(route.model or "", body, stream)
    exchange.record["model"] = request.model
    behaviour = state.behaviours.for_model(request.model)
    prompt = state.tokens.messages(request.model, request.messages, request.tools)
    cap = request.max_tokens if request.max_tokens is not None else behaviour.default_completion_tokens
    if state.limiter.admit(prompt + cap) is not None:
        state.stats.limit_rejections += 1
        raise error(429, "ThrottlingException", "Too many requests, please wait before trying again.")
    await asyncio.sleep(behaviour.latency_ms / 1000)
    failure = state.pick_failure(request.model, behaviour)
    if failure in ("reset", "stall", "timeout"):
        state.limiter.settle(prompt + cap, 0)
        return await anthropic.broken(exchange, failure, stream)
    midway = failure == "cut" or (failure in ("stream_error", "mid_stream_error") and stream)
    if failure is not None and not midway:
        state.limiter.settle(prompt + cap, 0)
        raise _injected(failure)
    planned = plan_completion(
        request, prompt, behaviour.default_completion_tokens, secrets.token_hex(8), int(time.time())
    )
    completion = Completion(
        planned.id,
        planned.created,
        planned.model,
        planned.fingerprint,
        planned.choices[:1],
        prompt,
        min(prompt, behaviour.cached_tokens),
    )
    state.limiter.settle(prompt + cap, prompt + completion.completion_tokens)
    state.stats.prompt_tokens += prompt
    state.stats.completion_tokens += completion.completion_tokens
    latency = int(behaviour.latency_ms)
    if not stream:
        answer = converse_response(completion, latency)
        if failure == "cut":
            payload = orjson.dumps(answer)
            response = await exchange.start_stream("application/json", length=len(payload))
            await response.write(payload[: len(payload) // 2])
            exchange.close_connection(reset=False)
            return response
        return exchange.json(200, answer)
    frames = stream_frames(completion, latency)
    if failure == "stream_error":
        frames = [(False, exception("throttlingException", "Too many requests, please wait before trying again."))]
    elif failure == "mid_stream_error":
        cause = "Bedrock is unable to process your request."
        frames = frames[: len(frames) // 2] + [(False, exception("serviceUnavailableException", cause))]
    return await anthropic.send(exchange, frames, behaviour, "application/vnd.amazon.eventstream", failure == "cut")
