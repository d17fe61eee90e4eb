"""What every answer carries (request id, deployment, attempts), errors, and the end-of-request record."""

from __future__ import annotations

import time
from typing import Any

from starlette.responses import Response

from gateway.errors import GatewayError, to_openai_error
from gateway.record import RequestRecord
from gateway.runtime import Runtime

JSON = "application/json"


def trace_headers(record: RequestRecord) -> dict[str, str]:
    headers = {"x-request-id": record.request_id, "x-gateway-attempts": str(record.attempts)}
    if record.deployment:
        headers["x-gateway-deployment"] = record.deployment
    if record.rule:
        headers["x-gateway-rule"] = record.rule
    if record.extra_headers:
        headers.update(record.extra_headers)
    return headers


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
    return openai_error(error, headers=trace_headers(record))


def json_response(body: bytes, record: RequestRecord) -> Response:
    record.status = 200
    return Response(body, headers=trace_headers(record), media_type=JSON)


def take_usage(record: RequestRecord, usage: Any) -> None:
    if isinstance(usage, dict):
        prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
        record.prompt_tokens = prompt if isinstance(prompt, int) else record.prompt_tokens
        record.completion_tokens = completion if isinstance(completion, int) else record.completion_tokens


def finish(rt: Runtime, record: RequestRecord, disconnected: bool = False) -> None:
    """Count, measure and log one finished request: called exactly once per request (JSON, stream, error,
    disconnect), so the in-flight gauge goes back down here."""
    latency = time.perf_counter() - record.started
    m = rt.metrics
    m.inflight.dec()
    if disconnected:
        record.status = 499  # nginx's convention: the client closed the request
        record.error_code = record.error_code or "client_disconnected"
        m.disconnects.labels(record.endpoint).inc()
    m.requests.labels(record.endpoint, record.model or "none", str(record.status)).inc()
    m.duration.labels(record.endpoint).observe(latency)
    if record.deployment:
        if record.prompt_tokens:
            m.tokens.labels(record.deployment, "prompt").inc(record.prompt_tokens)
        if record.completion_tokens:
            m.tokens.labels(record.deployment, "completion").inc(record.completion_tokens)
        if record.ttft_ms is not None:
            m.ttft.labels(record.deployment).observe(record.ttft_ms / 1000)
    rt.log.info("request", record.as_log(latency * 1000))
