"""``/v1/chat/completions`` and ``/v1/embeddings``: authenticate, check, reserve, route, relay, settle.

The endpoints are plain ASGI callables rather than Starlette request/response functions: streams
need their own response (``StreamRelay``) and the hot path skips a layer of exception wrapping.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from starlette.requests import ClientDisconnect
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from gateway.api.disconnect import DisconnectGuard
from gateway.api.intake import RequestHeaders, check_chat, check_embeddings, parse_object, read_body, request_id
from gateway.api.respond import Answer, error_response, finish, json_response, overhead
from gateway.api.stream import StreamRelay
from gateway.config.model import Deployment, VirtualKey
from gateway.errors import GatewayError, UpstreamConnection
from gateway.exchange import Exchange
from gateway.limits import specs
from gateway.limits.model import Reservation
from gateway.record import RequestRecord
from gateway.routing.decision import decide
from gateway.routing.features import Features, features_from, identity, refine
from gateway.routing.resolve import empty_plan_error
from gateway.routing.select import Plan
from gateway.routing.steps import Demand, Waiting
from gateway.routing.walk import walk
from gateway.runtime import Runtime
from gateway.spend import pricing
from gateway.spend.pricing import max_cost
from gateway.types import Batches, Endpoint, Usage

if TYPE_CHECKING:  # OpenTelemetry is imported only when tracing is configured
    from gateway.tracing import RequestTrace


async def _read_json(exchange: Exchange, deployment: Deployment) -> tuple[bytes, Usage | None]:
    """The answer in OpenAI's shape (translated when the provider speaks another) and its usage."""
    body = await exchange.json()
    provider = exchange.provider
    if provider.from_response is not None:
        body = provider.from_response(body, deployment)
    return body, provider.usage(body)


async def _first_event(exchange: Exchange, deployment: Deployment) -> tuple[list[bytes], Batches]:
    """A stream counts as answered only once its first event is here (with those that came with it); until
    then fallback is invisible. A stream that opens with an error event failed before its first byte: it
    falls back too."""
    batches = exchange.answer_events(deployment)
    try:
        first = await batches.__anext__()
        if (failure := exchange.provider.stream_error(first[0])) is not None:
            raise failure
    except StopAsyncIteration:
        raise UpstreamConnection("the upstream stream ended before its first event") from None
    except BaseException:
        await batches.aclose()
        raise
    return first, batches


def demand(key: VirtualKey, features: Features) -> Demand:
    """Pure: the tokens this request will likely use and the quota buckets it draws on. The prompt count
    and end user are the routing features' (computed once; exact when routing needed it)."""
    prompt = features.prompt_tokens
    tokens = prompt + features.output_tokens
    return Demand(tokens, specs.quotas(key, features.end_user, tokens), features.model, prompt)


Settlement = tuple[Reservation, int, float | None]  # a JSON answer's reservation, its tokens and its cost


class ProxyEndpoint:
    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        self.path = "/v1/chat/completions" if endpoint == "chat" else "/v1/embeddings"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        rt: Runtime = scope["app"].state.runtime
        headers = RequestHeaders(scope["headers"])
        record = RequestRecord(request_id(headers), self.path, time.perf_counter())
        rt.metrics.inflight.inc()  # finish() takes it back: it runs once for every request, streams included
        waiting = Waiting()  # on providers and the client's upload: the rest is the gateway's overhead
        traced = None if rt.tracer is None else rt.tracer.begin(headers, self.endpoint, record.request_id)
        settlement: Settlement | None = None
        try:
            try:
                response, settlement = await self._handle(rt, receive, headers, record, waiting, traced)
            except GatewayError as e:
                response = error_response(e, record)
            except ClientDisconnect:  # gone mid-upload: nobody to answer; a 499 line, no traceback
                record.status = 499
                response = Response(status_code=499)
            except Exception:  # a bug: still one answer, one line (with the traceback) and the in-flight gauge back
                rt.log.exception("unhandled error", {"request_id": record.request_id, "endpoint": self.path})
                response = error_response(GatewayError("the gateway failed to handle this request"), record)
            if isinstance(response, StreamRelay):
                await response(scope, receive, send)  # finishes and settles itself
                if record.ttft_ms is not None:  # overhead to the first byte; then the provider sets the pace
                    overhead(rt, record, record.ttft_ms / 1000, waiting.seconds)
                return
            finish(rt, record, disconnected=record.status == 499, waited=waiting.seconds)
            await response(scope, receive, send)
            # Reconcile after the answer is out, so the caller never waits for it.
            if settlement is not None:
                await rt.limiter.settle(*settlement)
        finally:
            if traced is not None:
                traced.end(record)

    async def _handle(
        self,
        rt: Runtime,
        receive: Receive,
        headers: RequestHeaders,
        record: RequestRecord,
        waiting: Waiting,
        traced: RequestTrace | None,
    ) -> tuple[Answer | Response | StreamRelay, Settlement | None]:
        """The response, and for a JSON answer the reservation with the tokens to settle it with.

        Settling uses the provider's usage report; a JSON answer without one settles at the best estimate
        (the prompt plus the answer's bytes / 3, never more than was reserved). A client that left before
        the answer (JSON, or a stream before its first event) keeps its reservation: the provider was sent
        the request and counts what it generates (a JSON answer is generated whole whether or not anyone
        reads it). Reservations are bounded by what one request can consume (``routing.bounds``, intake's
        ``n`` ceiling) and never push a bucket into debt, so keeping one costs no more than serving it.
        """
        key = rt.keys.authenticate(headers.get("authorization"))
        record.key_name = key.name
        began = time.perf_counter()
        raw = await read_body(receive, headers, rt.settings.server.max_body_bytes)
        waiting.seconds += time.perf_counter() - began
        body = parse_object(raw)
        if self.endpoint == "chat":
            model = check_chat(body, rt.settings.limits.max_n)
        else:
            model = check_embeddings(body)
        chosen, features = await route(rt, record, body, key, headers, self.endpoint)
        record.model = model
        record.stream = self.endpoint == "chat" and body.get("stream") is True
        wants = demand(key, features)
        output = wants.tokens - wants.prompt
        async with DisconnectGuard(receive) as guard:
            if record.stream:
                streamed = await walk(
                    rt.steps, record, chosen, rt.deployments, body, self.endpoint, wants, _first_event, waiting
                )
            else:
                answered = await walk(
                    rt.steps, record, chosen, rt.deployments, body, self.endpoint, wants, _read_json, waiting
                )
        if guard.disconnected:
            record.status = 499
            return Response(status_code=499), None
        if record.stream:
            record.deployment = streamed.deployment.id
            _cost_header(record, streamed.deployment, max_cost(streamed.deployment.price, wants.prompt, output), True)
            first, rest = streamed.result
            if traced is not None:
                rest = traced.relay(first, rest)
            relay = StreamRelay(rt, record, first, rest, _wants_usage(body), streamed.reservation, wants.prompt)
            return relay, None
        record.deployment = answered.deployment.id
        answer, usage = answered.result
        if traced is not None:
            traced.answered(answer)
        price = answered.deployment.price
        if usage is not None:
            record.prompt_tokens, record.completion_tokens = usage.prompt, usage.completion
            used = usage.total
            if price is not None:
                record.cost_usd = pricing.answer_cost(answer, usage.prompt, usage.completion, price)
        else:  # no usage report: the prompt estimate and the answer's bytes / 3, never more than was reserved
            completion = min(output, len(answer) // 3)
            used = wants.prompt + completion
            if price is not None:
                record.cost_usd, record.cost_estimated = pricing.estimate(wants.prompt, completion, price), True
        if record.cost_usd is not None:
            _cost_header(record, answered.deployment, record.cost_usd, record.cost_estimated)
        reservation = answered.reservation
        return json_response(answer, record), None if reservation is None else (reservation, used, record.cost_usd)


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
    record.tier, record.end_user = who = identity(body, key, headers, key.trusted)
    budgets = rt.books.touched(key, *who)
    used = rt.books.used(budgets) if budgets else 0.0  # from what this replica last saw (no round trip)
    default_output = rt.settings.limits.default_output_tokens
    features = features_from(body, key, headers, endpoint, key.trusted, default_output, used, who)
    snapshot = rt.health.snapshot()
    thresholds = policy.thresholds(features.model)
    if features.prompt_tokens > _COUNT_IN_THREAD:
        features = await asyncio.to_thread(refine, features, thresholds, False)
    else:
        features = refine(features, thresholds, False)
    found = decide(policy, features, snapshot, rt.rng, rt.deployments, rt.index, key)  # the gateway's randomness
    if not found.direct:
        if found.rule is not None:  # no rule matched: there is no rule to name (the error says why)
            record.rule = f"{found.route}/{found.rule}"
        rt.metrics.routed.labels(found.route, found.rule or "none").inc()
    if not found.entries:
        raise empty_plan_error(found)
    return found, features


def _cost_header(record: RequestRecord, deployment: Deployment, usd: float, estimated: bool) -> None:
    """``x-gateway-cost-usd`` (``spend.pricing``): the answer's cost from its usage, otherwise an estimate
    marked ``~`` (a stream's headers leave before its usage arrives: its maximum, as admission reserved);
    none for a deployment without a price."""
    if deployment.price is not None:
        record.extra_headers["x-gateway-cost-usd"] = pricing.header(usd, estimated)


def _wants_usage(body: dict[str, Any]) -> bool:
    options = body.get("stream_options")
    return isinstance(options, dict) and options.get("include_usage") is True
