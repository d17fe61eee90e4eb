"""What every answer carries (request id, deployment, attempts), errors, and the end-of-request record."""

from __future__ import annotations

import time
from typing import Any

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from gateway.errors import GatewayError, to_openai_error
from gateway.record import RequestRecord
from gateway.runtime import Runtime
from gateway.spend import pricing
from gateway.types import Usage

JSON = "application/json"


Headers = list[tuple[bytes, bytes]]  # as ASGI sends them


def trace_headers(record: RequestRecord) -> Headers:
    """What every answer of the proxied endpoints carries: its request id, attempts, deployment and rule."""
    headers = [(b"x-request-id", record.request_id.encode()), (b"x-gateway-attempts", str(record.attempts).encode())]
    if record.deployment:
        headers.append((b"x-gateway-deployment", record.deployment.encode()))
    if record.rule:
        headers.append((b"x-gateway-rule", record.rule.encode()))
    if record.extra_headers:
        headers += [(name.encode(), value.encode()) for name, value in record.extra_headers.items()]
    return headers


class Answer:
    """A whole answer, its headers encoded: what Starlette's ``Response`` sends, without the normalising of
    header names and values it does first (these are the gateway's own), for the answer sent most."""

    __slots__ = ("status_code", "raw_headers", "body")

    def __init__(self, body: bytes, headers: Headers, status: int = 200) -> None:
        self.status_code, self.body = status, body
        self.raw_headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        self.raw_headers += headers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        await send({"type": "http.response.body", "body": self.body})


def openai_error(error: GatewayError, status: int | None = None, headers: dict[str, str] | None = None) -> Response:
    """The one rendering of a failure: OpenAI's error body, the error's status and its own headers."""
    return Response(
        to_openai_error(error),
        status_code=status or error.status,
        headers={**error.headers(), **(headers or {})},
        media_type=JSON,
    )


def error_response(error: GatewayError, record: RequestRecord) -> Response:
    record.status = error.status
    record.error_code = error.code or error.type
    response = openai_error(error)
    response.raw_headers += trace_headers(record)
    return response


def json_response(body: bytes, record: RequestRecord) -> Answer:
    record.status = 200
    return Answer(body, trace_headers(record))


def take_usage(record: RequestRecord, usage: Any) -> None:
    if isinstance(usage, dict):
        record.usage = usage  # priced whole at the end (cached tokens, cache writes, reasoning)
        prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
        record.prompt_tokens = prompt if isinstance(prompt, int) else record.prompt_tokens
        record.completion_tokens = completion if isinstance(completion, int) else record.completion_tokens


def overhead(rt: Runtime, record: RequestRecord, elapsed: float, waited: float) -> None:
    """``gateway_overhead_seconds``: ``elapsed`` (to the answer, or a stream's first byte) less ``waited`` (on
    providers and on the client's upload, ``routing.steps.Waiting``)."""
    m = rt.metrics
    m.histogram(m.overhead, record.endpoint).observe(max(0.0, elapsed - waited))


def finish(
    rt: Runtime,
    record: RequestRecord,
    disconnected: bool = False,
    waited: float | None = None,
    estimate: Usage | None = None,
) -> None:
    """Count, measure and log one finished request: called exactly once per request (JSON, stream, error,
    disconnect), so the in-flight gauge goes back down here. Given ``waited``, the request's overhead is
    measured here too (a stream's is measured by its endpoint, up to its first byte). A request a
    deployment answered is priced and its spend counted (``charge``); ``estimate`` is what a stream
    relayed, for one whose provider sent no usage."""
    latency = time.perf_counter() - record.started
    m = rt.metrics
    m.inflight.dec()
    if disconnected:
        record.status = 499  # nginx's convention: the client closed the request
        record.error_code = record.error_code or "client_disconnected"
        m.counter(m.disconnects, record.endpoint).inc()
    m.counter(m.requests, record.endpoint, record.model or "none", str(record.status)).inc()
    m.histogram(m.duration, record.endpoint).observe(latency)
    if waited is not None:
        overhead(rt, record, latency, waited)
    if record.deployment:
        if record.prompt_tokens:
            m.counter(m.tokens, record.deployment, "prompt").inc(record.prompt_tokens)
        if record.completion_tokens:
            m.counter(m.tokens, record.deployment, "completion").inc(record.completion_tokens)
        if record.ttft_ms is not None:
            m.histogram(m.ttft, record.deployment).observe(record.ttft_ms / 1000)
        charge(rt, record, estimate)
    if rt.settings.server.access_log:  # skip building the line nobody would write
        rt.log.info("request", record.as_log(latency * 1000))


def charge(rt: Runtime, record: RequestRecord, estimate: Usage | None = None) -> None:
    """Price a request a deployment answered (once: a JSON answer was priced for its header) and count its
    spend: ``gateway_cost_usd_total`` and the ledger (``spend.books``). A stream is priced from its usage
    chunk, else from what it relayed (an estimate); a deployment without a price is counted as unpriced."""
    assert record.deployment is not None
    price = rt.deployments[record.deployment].price
    if price is not None and record.cost_usd is None:
        record.cost_usd = None if record.usage is None else pricing.usage_cost(record.usage, price)
        if record.cost_usd is None:
            relayed = estimate or Usage(0, 0)
            record.cost_usd, record.cost_estimated = pricing.estimate(relayed.prompt, relayed.completion, price), True
    route = record.rule.partition("/")[0] if record.rule else (record.model or "none")
    usd = None if price is None else record.cost_usd
    rt.books.charge(record.key_name or "none", record.tier, record.end_user, record.deployment, route, usd)
