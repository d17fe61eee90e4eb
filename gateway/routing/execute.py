"""Walking a plan: reserve capacity, send, retry or fall back, record health.

Each round asks the limiter for the first remaining entry of the current stage (the rule's
candidates, then its fallback chain) that has room, in one atomic step that also charges the
caller's quotas. A retryable failure on a deployment is retried there with exponential backoff and
jitter (honouring Retry-After) up to ``retries.same_deployment`` times, then the plan moves on if the
failure is one of the rule's ``retry_on`` triggers. Nothing has reached the client while this runs
(a stream's first event is part of the attempt), so fallback is invisible to it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
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
    UpstreamPoolExhausted,
    UpstreamStatus,
    UpstreamTimeout,
    bounded_seconds,
)
from gateway.limits import specs
from gateway.limits.model import Admission, BucketSpec, Reservation, Strategy
from gateway.providers.base import Endpoint, UnsupportedParameter
from gateway.routing import bounds
from gateway.routing.select import Plan, PlanEntry
from gateway.runtime import Runtime
from gateway.upstream import Exchange, retrying

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


def trigger(error: GatewayError) -> str | None:
    """The fallback trigger a failure is (pure); None: it would fail the same way anywhere.

    >>> trigger(UpstreamStatus(503, "busy")), trigger(UpstreamStatus(400, "bad"))
    ('5xx', None)
    """
    if isinstance(error, UpstreamStatus):
        if error.code == "context_length_exceeded":
            return "context_length"
        status = error.upstream_status
        if status >= 500:
            return "5xx"
        return str(status) if status in (408, 409, 429) else None
    if isinstance(error, UpstreamTimeout):
        return "timeout"
    if isinstance(error, UpstreamConnection | UpstreamPoolExhausted):  # protocol errors included
        return "connection"
    return None


def may_fall_back(error: GatewayError, retry_on: frozenset[str]) -> bool:
    t = trigger(error)
    if t is None:
        return False
    return t in retry_on or (t.isdigit() and t.startswith("5") and "5xx" in retry_on)


def counts_against_circuit(error: GatewayError) -> bool:
    """Provider trouble, not capacity (429 goes to the limiter's cooldown), the request's fault (4xx) nor
    the gateway's own full connection pool."""
    return trigger(error) in ("5xx", "timeout", "connection") and not isinstance(error, UpstreamPoolExhausted)


async def attempt(
    rt: Runtime,
    record: RequestRecord,
    plan: Plan,
    deployments: Mapping[str, Deployment],
    body: dict[str, Any],
    endpoint: Endpoint,
    demand: Demand,
    finish: Callable[[Exchange], Awaitable[T]],
) -> Answer[T]:
    """The deployment that answered, ``finish(exchange)``'s result and the reservation to settle."""
    errors: list[GatewayError] = []
    payloads: dict[str, dict[str, Any]] = {}
    remaining: list[PlanEntry] = []
    # Embeddings are bounded by their body size alone (each input has its own window, not their sum).
    ask = bounds.asked(body, demand.prompt) if endpoint == "chat" else None
    default_output = rt.settings.limits.max_output_tokens
    for entry in plan.entries:
        deployment = deployments[entry.deployment]
        target = rt.targets[deployment.account]
        over = None if ask is None else bounds.check(deployment, ask, default_output)
        if over is not None:  # before anything is reserved: its reservation could not be consumed
            errors.append(over)
            continue
        try:
            payloads[entry.deployment] = target.provider.to_request(body, deployment, target.provider, endpoint)
        except UnsupportedParameter as e:
            errors.append(e)
            continue
        remaining.append(entry)
    deadline = time.monotonic() + plan.retries.deadline_s
    while remaining:
        stage = remaining[0].stage
        group = [e for e in remaining if e.stage == stage]
        last_stage = len(group) == len(remaining)
        strategy: Strategy = plan.admit_strategy if stage == "candidate" else "first"
        admission = await admit(rt, record, [deployments[e.deployment] for e in group], demand, strategy, last_stage)
        if admission is None:  # this stage is full; its fallback stage may have room
            remaining = remaining[len(group) :]
            continue
        entry = group[admission.chosen or 0]
        remaining.remove(entry)
        deployment = deployments[entry.deployment]
        if not rt.health.allow(deployment.id, entry.last_resort):  # half-open and its probes are taken
            await _give_back(rt, admission.reservation, None)
            errors.append(ServiceUnavailable(f"{deployment.id} is recovering; its probe requests are taken"))
            continue
        try:
            result = await _send(rt, record, deployment, payloads[deployment.id], endpoint, plan, deadline, finish)
        except UpstreamError as e:
            errors.append(e)
            await _after_failure(rt, deployment, admission.reservation, e)
            if not may_fall_back(e, plan.retry_on) or time.monotonic() >= deadline:
                raise
            if trigger(e) == "context_length":  # only a larger window can help
                window = deployment.context_window or 0
                remaining = [r for r in remaining if (deployments[r.deployment].context_window or 0) > window]
            continue
        return Answer(deployment, result, admission.reservation)
    raise final_error(errors)


async def _send(
    rt: Runtime,
    record: RequestRecord,
    deployment: Deployment,
    payload: dict[str, Any],
    endpoint: Endpoint,
    plan: Plan,
    deadline: float,
    finish: Callable[[Exchange], Awaitable[T]],
) -> T:
    """One deployment, with its same-deployment retries; records every try's outcome for the circuit."""
    target = rt.targets[deployment.account]
    url = target.provider.url(target.account, deployment, endpoint)
    headers = dict(target.headers)
    headers["x-client-request-id"] = record.request_id
    data = orjson.dumps(payload)
    retries = plan.retries

    last: list[UpstreamError] = []  # the previous try's failure; empty on the first try
    no_room = False

    def worth_retrying(error: BaseException) -> bool:
        # A failure that opened the circuit (a failed half-open probe included) ends the tries here:
        # from now on the circuit decides when this deployment sees a request again.
        return not no_room and _worth_retrying(error) and rt.health.allow(deployment.id)

    async def once() -> T:
        nonlocal no_room
        if last and not await _charge_retry(rt, deployment):
            no_room = True  # the provider would count this try too: only with room in its buckets
            raise last[-1]
        # Waiting for a connection is the gateway's own queue, not an attempt: a full pool raises
        # UpstreamPoolExhausted before anything is counted or reported to the circuit.
        slot = await rt.upstream.slot(target.account)
        record.attempts += 1
        record.tried.append(deployment.id)
        rt.health.started(deployment.id)
        started = time.monotonic()
        try:
            async with asyncio.timeout(min(retries.attempt_timeout_s, max(0.0, deadline - started))):
                exchange = await rt.upstream.send(slot, target.account, target.provider, url, headers, data)
                observe_remaining(rt, deployment, exchange)
                result = await finish(exchange)
        except TimeoutError:
            slot.release()
            error: UpstreamError = UpstreamTimeout("the attempt ran past its time limit")
            _record(rt, record, deployment, started, error)
            last.append(error)
            raise error from None
        except UpstreamError as e:
            slot.release()
            _record(rt, record, deployment, started, e)
            last.append(e)
            raise
        except BaseException:  # the client left: not the provider's failure, but no longer in flight
            slot.release()
            _record(rt, record, deployment, started, None, counted=False)
            raise
        _record(rt, record, deployment, started, None)
        return result

    return await retrying(
        once,
        retries.same_deployment,
        retries.backoff_ms / 1000,
        retries.backoff_max_ms / 1000,
        deadline,
        worth_retrying,
    )


async def _charge_retry(rt: Runtime, deployment: Deployment) -> bool:
    """A same-deployment retry is another request to the provider: take one more from its request
    buckets (its tokens ride on the original reservation, which is settled with actual usage)."""
    account = rt.targets[deployment.account].account
    admission = await rt.limiter.admit([specs.candidate(account, deployment, 0)], ())
    return admission.chosen is not None


def _worth_retrying(error: BaseException) -> bool:
    """Retry the same deployment for transient trouble; a 429, a too-long prompt or a full connection pool
    (another account has its own) moves on instead."""
    return isinstance(error, UpstreamError) and counts_against_circuit(error)


def _record(
    rt: Runtime,
    record: RequestRecord,
    deployment: Deployment,
    started: float,
    error: UpstreamError | None,
    counted: bool = True,
) -> None:
    """Report one try to the circuit breaker and latency averages (a stream's first event is its TTFT)."""
    elapsed = time.monotonic() - started
    failed = error is not None and counts_against_circuit(error)
    rt.health.finished(deployment.id, ok=not failed, latency_s=elapsed, ttft_s=elapsed if record.stream else None)
    if counted:
        rt.metrics.attempts.labels(deployment.id, "ok" if error is None else _outcome(error)).inc()


async def admit(
    rt: Runtime,
    record: RequestRecord,
    remaining: list[Deployment],
    demand: Demand,
    strategy: Strategy = "first",
    may_wait: bool = True,
) -> Admission | None:
    """Reserve on a remaining deployment with room, waiting in line for capacity when allowed.

    Returns None when none has room and ``may_wait`` is false (a later stage may have room).
    """
    limiter = rt.limiter
    candidates = [specs.candidate(rt.targets[d.account].account, d, demand.tokens) for d in remaining]
    budget = rt.settings.limits.queue_timeout_seconds if may_wait else 0.0
    deadline = time.monotonic() + budget
    try:
        if not rt.wait_line.busy(demand.group) or not may_wait:
            admission = await limiter.admit(candidates, demand.quotas, strategy)
            if _settled(rt, record, admission, budget, may_wait):
                return admission
            if not may_wait:
                return None
        waited = time.monotonic()
        async with rt.wait_line.turn(demand.group):
            while True:
                admission = await limiter.admit(candidates, demand.quotas, strategy)
                if _settled(rt, record, admission, deadline - time.monotonic(), True):
                    rt.metrics.queue_wait.observe(time.monotonic() - waited)
                    return admission
                await asyncio.sleep(admission.retry_after)
    except ServiceUnavailable:  # the caller's quotas cannot be checked (Redis down, fail_mode closed)
        rt.metrics.throttled.labels("limiter_unavailable").inc()
        raise


def _settled(rt: Runtime, record: RequestRecord, admission: Admission, budget: float, final: bool) -> bool:
    """True when admitted; raises when waiting cannot help; False when it is worth waiting.

    A refusal's Retry-After comes from the buckets' refill and cooldowns, capped at
    ``limits.max_retry_after_seconds`` (a bucket a provider drove far into debt must not say "come back
    next year"); each refusal counts in ``gateway_throttled_total`` by reason.
    """
    record.extra_headers.update(specs.ratelimit_headers(admission.quota))
    if admission.chosen is not None:
        return True
    cap = rt.settings.limits.max_retry_after_seconds
    if admission.blocked_by_quota:
        rt.metrics.throttled.labels("key_quota").inc()
        retry_after = bounded_seconds(admission.retry_after, cap)
        raise RateLimited("this key's rate limit is exhausted", retry_after=retry_after)
    if final and admission.retry_after > budget:
        rt.metrics.throttled.labels("capacity").inc()
        reasons = ", ".join(f"{d}: {why}" for d, why in admission.skipped)
        raise RateLimited(
            f"no deployment has capacity right now ({reasons})",
            retry_after=bounded_seconds(admission.retry_after, cap),
            code="capacity_exhausted",
        )
    return False


async def _give_back(rt: Runtime, reservation: Reservation | None, used: int | None) -> None:
    if reservation is not None:
        await rt.limiter.settle(reservation, used)


async def _after_failure(
    rt: Runtime, deployment: Deployment, reservation: Reservation | None, error: UpstreamError
) -> None:
    """Give back what the failed attempt did not use; a provider's 429 cools the deployment for everyone."""
    if isinstance(error, UpstreamStatus) and error.upstream_status == 429:
        account = rt.targets[deployment.account].account
        whole_account = error.code == "insufficient_quota"
        # However long the provider asks for, a cooldown ends within limits.max_retry_after_seconds.
        seconds = bounded_seconds(error.retry_after or DEFAULT_COOLDOWN, rt.settings.limits.max_retry_after_seconds)
        await rt.limiter.cooldown(
            deployment.id,
            account.name if whole_account else None,
            seconds,
            drain=specs.deployment_buckets(account, deployment),
        )
    # A connection that never opened (or never came free) cost the provider nothing; anything else counted.
    never_sent = isinstance(error, UpstreamPoolExhausted) or (
        isinstance(error, UpstreamConnection) and error.code == "upstream_connect_failed"
    )
    await _give_back(rt, reservation, None if never_sent else 0)


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
