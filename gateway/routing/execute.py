"""Walking the candidates: send to each in turn until one answers, falling back on retryable failures.

Nothing has reached the client while this runs (a stream's first event is part of the attempt), so
any retryable failure may move on to the next candidate without the client seeing it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import orjson

from gateway.accesslog import RequestRecord
from gateway.config.model import Deployment
from gateway.errors import GatewayError, RateLimited, ServiceUnavailable, UpstreamError, UpstreamStatus
from gateway.providers.base import Endpoint, UnsupportedParameter
from gateway.runtime import Runtime
from gateway.upstream import Exchange

T = TypeVar("T")


async def attempt(
    rt: Runtime,
    record: RequestRecord,
    candidates: tuple[Deployment, ...],
    body: dict[str, Any],
    endpoint: Endpoint,
    finish: Callable[[Exchange], Awaitable[T]],
) -> tuple[Deployment, T]:
    """Returns the deployment that answered and ``finish(exchange)``'s result, or raises the outcome."""
    errors: list[GatewayError] = []
    for deployment in candidates:
        target = rt.targets[deployment.account]
        try:
            payload = target.provider.to_request(body, deployment, target.provider, endpoint)
        except UnsupportedParameter as e:
            errors.append(e)
            continue
        url = target.provider.url(target.account, deployment, endpoint)
        headers = dict(target.headers)
        headers["x-client-request-id"] = record.request_id
        record.attempts += 1
        record.tried.append(deployment.id)
        try:
            exchange = await rt.upstream.send(
                target.account, target.provider, url, headers, orjson.dumps(payload)
            )
            result = await finish(exchange)
        except UpstreamError as e:
            rt.metrics.attempts.labels(deployment.id, _outcome(e)).inc()
            errors.append(e)
            if not e.retryable:
                raise
            continue
        rt.metrics.attempts.labels(deployment.id, "ok").inc()
        return deployment, result
    raise final_error(errors)


def _outcome(error: UpstreamError) -> str:
    if isinstance(error, UpstreamStatus):
        return str(error.upstream_status)
    return error.code or type(error).__name__


def final_error(errors: list[GatewayError]) -> GatewayError:
    """What the client sees when no candidate answered (pure).

    Every candidate rate-limited -> 429 with the soonest Retry-After; every candidate refusing a
    parameter -> that 400; otherwise the last upstream failure.
    """
    if not errors:
        return ServiceUnavailable("no deployment can serve this request")
    limited = [e for e in errors if isinstance(e, UpstreamStatus) and e.upstream_status == 429]
    if limited and len(limited) == len(errors):
        soonest = min((e.retry_after for e in limited if e.retry_after is not None), default=1.0)
        return RateLimited("every deployment for this model is rate limited upstream", retry_after=soonest)
    upstream = [e for e in errors if not isinstance(e, UnsupportedParameter)]
    return upstream[-1] if upstream else errors[0]
