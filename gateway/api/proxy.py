"""``/v1/chat/completions`` and ``/v1/embeddings``: authenticate, check, reserve, route, relay, settle.

The endpoints are plain ASGI callables rather than Starlette request/response functions: streams
need their own response (``StreamRelay``) and the hot path skips a layer of exception wrapping.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncGenerator, Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from gateway.accesslog import RequestRecord
from gateway.api.disconnect import DisconnectGuard
from gateway.api.intake import check_chat, check_embeddings, parse_object, read_body, request_id
from gateway.api.respond import error_response, finish, json_response, usage_of
from gateway.api.stream import StreamRelay
from gateway.config.model import Deployment, Mode, VirtualKey
from gateway.errors import GatewayError, UpstreamConnection
from gateway.limits import estimate, specs
from gateway.limits.model import Reservation
from gateway.providers.base import Endpoint
from gateway.routing.execute import Demand, attempt
from gateway.routing.features import Features, features_from, refine
from gateway.routing.resolve import candidates, direct_plan, empty_plan_error
from gateway.routing.select import Plan, plan
from gateway.runtime import Runtime
from gateway.upstream import Exchange


async def _read_json(exchange: Exchange) -> bytes:
    return await exchange.read()


async def _first_event(exchange: Exchange) -> tuple[bytes, AsyncGenerator[bytes, None]]:
    """A stream counts as answered only once its first event is here; until then fallback is invisible."""
    events = exchange.events()
    try:
        first = await events.__anext__()
    except StopAsyncIteration:
        raise UpstreamConnection("the upstream stream ended before its first event") from None
    except BaseException:
        await events.aclose()
        raise
    return first, events


def demand(body: dict[str, Any], key: VirtualKey, features: Features, default_output: int) -> Demand:
    """Pure: the tokens this request will likely use and the quota buckets it draws on. The prompt count
    and end user are the routing features' (computed once; exact when routing needed it)."""
    prompt = features.prompt_tokens
    tokens = prompt + (estimate.output_tokens(body, default_output) if features.endpoint == "chat" else 0)
    return Demand(tokens, specs.quotas(key, features.end_user, tokens), features.model, prompt)


class ProxyEndpoint:
    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        self.path = "/v1/chat/completions" if endpoint == "chat" else "/v1/embeddings"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        rt: Runtime = request.app.state.runtime
        record = RequestRecord(request_id(request), self.path, time.perf_counter())
        rt.metrics.inflight.inc()
        reservation: Reservation | None = None
        try:
            response, reservation = await self._handle(rt, request, record)
        except GatewayError as e:
            response = error_response(e, record)
        if isinstance(response, StreamRelay):
            await response(scope, receive, send)  # finishes and settles itself
            return
        finish(rt, record, disconnected=record.status == 499)
        await response(scope, receive, send)
        # Reconcile after the answer is out, so the caller never waits for it. Without a usage
        # report (or after a disconnect) the reservation stands as the best estimate.
        if reservation is not None and record.prompt_tokens is not None:
            await rt.limiter.settle(reservation, record.prompt_tokens + (record.completion_tokens or 0))

    async def _handle(
        self, rt: Runtime, request: Request, record: RequestRecord
    ) -> tuple[Response | StreamRelay, Reservation | None]:
        key = rt.keys.authenticate(request.headers.get("authorization"))
        record.key_name = key.name
        body = parse_object(await read_body(request, rt.settings.server.max_body_bytes))
        model = check_chat(body) if self.endpoint == "chat" else check_embeddings(body)
        chosen, features = await route(rt, record, body, key, request.headers, self.endpoint)
        record.model = model
        record.stream = self.endpoint == "chat" and body.get("stream") is True
        wants = demand(body, key, features, rt.settings.limits.default_output_tokens)
        async with DisconnectGuard(request.receive) as guard:
            if record.stream:
                streamed = await attempt(rt, record, chosen, rt.deployments, body, self.endpoint, wants, _first_event)
            else:
                answered = await attempt(rt, record, chosen, rt.deployments, body, self.endpoint, wants, _read_json)
        if guard.disconnected:
            record.status = 499
            return Response(status_code=499), None
        if record.stream:
            record.deployment = streamed.deployment.id
            _cost_header(record, streamed.deployment, wants.prompt, wants.tokens - wants.prompt, estimated=True)
            first, rest = streamed.result
            relay = StreamRelay(rt, record, first, rest, _wants_usage(body), streamed.reservation, wants.prompt)
            return relay, None
        record.deployment = answered.deployment.id
        usage_of(answered.result, record)
        if record.prompt_tokens is not None:
            _cost_header(record, answered.deployment, record.prompt_tokens, record.completion_tokens or 0, False)
        else:
            _cost_header(record, answered.deployment, wants.prompt, wants.tokens - wants.prompt, estimated=True)
        return json_response(answered.result, record), answered.reservation


# Counting a prompt this long (estimated) exactly takes a third of a millisecond or more: off the
# event loop it goes.
_COUNT_IN_THREAD = 4_000


async def route(
    rt: Runtime,
    record: RequestRecord,
    body: dict[str, Any],
    key: VirtualKey,
    headers: Mapping[str, str],
    endpoint: Endpoint,
) -> tuple[Plan, Features]:
    """The plan for this request: the policy's, for a route or alias; otherwise the model's deployments."""
    policy = rt.policies.current  # read once: this request sees one policy version throughout
    record.extra_headers["x-gateway-policy-version"] = policy.version
    features = features_from(body, key, headers, endpoint, trusted=key.trusted)
    snapshot = rt.health.snapshot()
    thresholds = policy.thresholds(features.model)
    if features.prompt_tokens > _COUNT_IN_THREAD:
        features = await asyncio.to_thread(refine, features, thresholds)
    else:
        features = refine(features, thresholds)
    found = plan(policy, features, snapshot, random.Random(record.request_id), rt.deployments)
    if found is None:
        mode: Mode = "chat" if endpoint == "chat" else "embedding"
        found = direct_plan(candidates(rt.index, key, features.model, mode), policy, snapshot, features.model)
    else:
        if found.rule is not None:  # no rule matched: there is no rule to name (the error says why)
            record.rule = f"{found.route}/{found.rule}"
        rt.metrics.routed.labels(found.route, found.rule or "none").inc()
    if not found.entries:
        raise empty_plan_error(found, snapshot)
    return found, features


def _cost_header(record: RequestRecord, deployment: Deployment, prompt: int, completion: int, estimated: bool) -> None:
    """``x-gateway-cost-usd`` from catalog prices: actual usage when the provider reported it, otherwise
    (streams, whose headers leave before usage arrives) the admission estimate, marked ``~``."""
    if deployment.price is None:
        return
    cost = prompt * deployment.price.input + completion * deployment.price.output
    record.extra_headers["x-gateway-cost-usd"] = f"{'~' if estimated else ''}{cost:.6f}"


def _wants_usage(body: dict[str, Any]) -> bool:
    options = body.get("stream_options")
    return isinstance(options, dict) and options.get("include_usage") is True
