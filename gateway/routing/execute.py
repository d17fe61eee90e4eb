"""Walking the candidates: reserve capacity, send, fall back on retryable failures.

Each round asks the limiter for the first remaining candidate with room (one atomic step that
reserves on its buckets and the caller's quotas), sends to it, and on a retryable failure returns
what was not used and moves on. Nothing has reached the client while this runs (a stream's first
event is part of the attempt), so fallback is invisible to it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import orjson

from gateway.accesslog import RequestRecord
from gateway.config.model import Deployment
from gateway.errors import (
    GatewayError,
    RateLimited,
    ServiceUnavailable,
    UpstreamConnection,
    UpstreamError,
    UpstreamStatus,
)
from gateway.limits import specs
from gateway.limits.model import Admission, BucketSpec, Reservation
from gateway.providers.base import Endpoint, UnsupportedParameter
from gateway.runtime import Runtime
from gateway.upstream import Exchange

T = TypeVar("T")
DEFAULT_COOLDOWN = 5.0  # seconds, when a provider's 429 names no Retry-After


@dataclass
class Answer(Generic[T]):
    deployment: Deployment
    result: T
    reservation: Reservation | None


@dataclass(frozen=True)
class Demand:
    """What a request asks of the limiter: estimated tokens and the caller's quota buckets."""

    tokens: int
    quotas: tuple[BucketSpec, ...]
    group: str  # requests that wait for capacity line up per group (the requested model)
    prompt: int  # the prompt part of ``tokens``


async def attempt(
    rt: Runtime,
    record: RequestRecord,
    candidates: tuple[Deployment, ...],
    body: dict[str, Any],
    endpoint: Endpoint,
    demand: Demand,
    finish: Callable[[Exchange], Awaitable[T]],
) -> Answer[T]:
    """The deployment that answered, ``finish(exchange)``'s result and the reservation to settle."""
    errors: list[GatewayError] = []
    payloads: dict[str, dict[str, Any]] = {}
    for deployment in candidates:
        target = rt.targets[deployment.account]
        try:
            payloads[deployment.id] = target.provider.to_request(body, deployment, target.provider, endpoint)
        except UnsupportedParameter as e:
            errors.append(e)
    remaining = [d for d in candidates if d.id in payloads]
    while remaining:
        admission = await admit(rt, record, remaining, demand)
        deployment = remaining.pop(admission.chosen or 0)
        target = rt.targets[deployment.account]
        headers = dict(target.headers)
        headers["x-client-request-id"] = record.request_id
        record.attempts += 1
        record.tried.append(deployment.id)
        url = target.provider.url(target.account, deployment, endpoint)
        try:
            exchange = await rt.upstream.send(
                target.account, target.provider, url, headers, orjson.dumps(payloads[deployment.id])
            )
            observe_remaining(rt, deployment, exchange)
            result = await finish(exchange)
        except UpstreamError as e:
            rt.metrics.attempts.labels(deployment.id, _outcome(e)).inc()
            errors.append(e)
            await _after_failure(rt, deployment, admission.reservation, e)
            if not e.retryable:
                raise
            continue
        rt.metrics.attempts.labels(deployment.id, "ok").inc()
        return Answer(deployment, result, admission.reservation)
    raise final_error(errors)


async def admit(rt: Runtime, record: RequestRecord, remaining: list[Deployment], demand: Demand) -> Admission:
    """Reserve on the first remaining candidate with room, waiting in line for capacity if allowed."""
    limiter = rt.limiter
    candidates = [specs.candidate(rt.targets[d.account].account, d, demand.tokens) for d in remaining]
    budget = rt.settings.limits.queue_timeout_seconds
    deadline = time.monotonic() + budget
    if not rt.wait_line.busy(demand.group):
        admission = await limiter.admit(candidates, demand.quotas)
        if _settled(record, admission, budget):
            return admission
    async with rt.wait_line.turn(demand.group):
        while True:
            admission = await limiter.admit(candidates, demand.quotas)
            if _settled(record, admission, deadline - time.monotonic()):
                return admission
            await asyncio.sleep(admission.retry_after)


def _settled(record: RequestRecord, admission: Admission, budget: float) -> bool:
    """True when admitted; raises when waiting cannot help; False when it is worth waiting."""
    record.extra_headers.update(specs.ratelimit_headers(admission.quota))
    if admission.chosen is not None:
        return True
    if admission.blocked_by_quota:
        raise RateLimited(
            "this key's rate limit is exhausted",
            retry_after=admission.retry_after,
            code="rate_limit_exceeded",
        )
    if admission.retry_after > budget:
        reasons = ", ".join(f"{d}: {why}" for d, why in admission.skipped)
        raise RateLimited(
            f"no deployment has capacity right now ({reasons})",
            retry_after=admission.retry_after,
            code="capacity_exhausted",
        )
    return False


async def _after_failure(
    rt: Runtime, deployment: Deployment, reservation: Reservation | None, error: UpstreamError
) -> None:
    """Give back what the failed attempt did not use; a provider's 429 cools the deployment for everyone."""
    if isinstance(error, UpstreamStatus) and error.upstream_status == 429:
        account = rt.targets[deployment.account].account
        whole_account = error.code == "insufficient_quota"
        await rt.limiter.cooldown(
            deployment.id,
            account.name if whole_account else None,
            error.retry_after or DEFAULT_COOLDOWN,
            drain=specs.deployment_buckets(account, deployment),
        )
    if reservation is not None:
        # A connection that never opened cost the provider nothing; anything else counted as a request.
        never_sent = isinstance(error, UpstreamConnection) and error.code == "upstream_connect_failed"
        await rt.limiter.settle(reservation, None if never_sent else 0)


def observe_remaining(rt: Runtime, deployment: Deployment, exchange: Exchange) -> None:
    """Note a provider's own remaining-capacity headers when they run low (see ``Runtime.correct_soon``)."""
    account = rt.targets[deployment.account].account
    for bucket in specs.deployment_buckets(account, deployment):
        remaining = specs.remaining_from_headers(exchange.headers, bucket.kind)
        # Correcting costs a Redis round trip, so it is done only when the provider is nearly out
        # and our bucket may be optimistic; in normal operation requests stay at two round trips.
        if remaining is not None and remaining < 0.1 * bucket.capacity:
            rt.correct_soon(bucket, remaining)


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
