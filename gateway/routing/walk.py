"""Walking a plan, the request path's loop: admit, send, record; retry or fall back.

Each round asks admission for the first remaining entry of the current stage (the rule's candidates,
then its fallback chain) that has room, in one atomic step that also charges the caller's quotas. A
transient failure is retried on the same deployment with backoff and jitter (honouring Retry-After) up
to ``retries.same_deployment`` times, then the plan moves on if the failure is one of the rule's
``retry_on`` triggers (``gateway.failures``). Nothing has reached the client while this runs (a stream's
first event is part of the attempt), so fallback is invisible to it.

The loop does no I/O of its own. Its steps are injected (``routing.steps.Steps``), so it is tested with fakes
(tests/routing/test_walk.py), and the runtime wires the real ones:

- ``admit`` (``routing.admission``): the limiter, the waiting line, cooldowns, the provider's own
  remaining-capacity headers;
- ``send`` (``routing.sending``): the provider's wire format and the account's connection pool;
- ``record`` (``routing.outcomes``): the circuit breaker, latency averages and attempt metrics;
- ``watch`` (``routing.outcomes`` too; optional): fallbacks from one deployment to the next, and the trace
  spans of the admission and of each attempt.

The walk also adds up the time the request spent waiting on providers (``Waiting``, when the caller keeps
one): the rest of its time is the gateway's own, ``gateway_overhead_seconds``.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from typing import Any, Generic, TypeVar

from gateway import failures
from gateway.config.model import Deployment
from gateway.errors import GatewayError, RateLimited, ServiceUnavailable, UpstreamError, UpstreamStatus, UpstreamTimeout
from gateway.exchange import Exchange
from gateway.limits.model import Reservation, Strategy
from gateway.providers.base import UnsupportedParameter
from gateway.record import RequestRecord
from gateway.retries import tried_again
from gateway.routing import bounds
from gateway.routing.select import Plan, PlanEntry
from gateway.routing.steps import Demand, Prepared, Spans, Steps, Waiting
from gateway.time_limit import time_limit
from gateway.types import Endpoint
from gateway.values import value

T = TypeVar("T")


@value
class Answer(Generic[T]):
    deployment: Deployment
    result: T
    reservation: Reservation | None


async def walk(
    steps: Steps,
    record: RequestRecord,
    plan: Plan,
    deployments: Mapping[str, Deployment],
    body: dict[str, Any],
    endpoint: Endpoint,
    demand: Demand,
    finish: Callable[[Exchange, Deployment], Awaitable[T]],
    waiting: Waiting | None = None,
) -> Answer[T]:
    """The deployment that answered, ``finish(exchange, deployment)``'s result (the answer read as the caller
    needs it: a JSON body, a stream's first event) and the reservation to settle. The time spent waiting on
    providers is added to ``waiting`` (when given), whatever the outcome."""
    errors: list[GatewayError] = []  # what the tries and admissions met, in order
    prepared: dict[str, Prepared] = {}  # the entries checked and usable
    refused: dict[str, GatewayError] = {}  # the entries checked and not usable, with why
    # Embeddings are bounded by their body size alone (each input has its own window, not their sum).
    ask = bounds.asked(body, demand.prompt) if endpoint == "chat" else None
    # A stage is checked and its requests translated when the walk reaches it (most requests never need
    # their fallbacks); what a later stage holds is looked at earlier only when this one is full.
    later = list(plan.entries)  # not checked yet
    # The current stage's usable entries.
    remaining = _next_stage(later, steps, deployments, body, endpoint, ask, prepared, refused)
    deadline = time.monotonic() + plan.retries.deadline_s
    timeout = plan.retries.attempt_timeout_s
    moving: tuple[str, UpstreamError] | None = None  # the deployment that failed, while the plan moves on
    watch = steps.watch
    spans = None if watch is None else watch.spans()  # asked once: whether the request is traced does not change
    while remaining or later:
        if not remaining:
            remaining = _next_stage(later, steps, deployments, body, endpoint, ask, prepared, refused)
            continue
        stage = remaining[0].stage
        strategy: Strategy = plan.admit_strategy if stage == "candidate" else "first"
        candidates = [deployments[e.deployment] for e in remaining]
        # Only the last stage that can serve waits in line for room: while later ones are unchecked, ask without
        # waiting, and wait only if none of them turns out usable.
        if spans is None:
            admission = await steps.admit.admit(record, candidates, demand, strategy, not later)
        else:
            with spans.admitting(stage, candidates):
                admission = await steps.admit.admit(record, candidates, demand, strategy, not later)
        if admission is None:
            if not later:  # it was allowed to wait
                break
            following = _next_stage(later, steps, deployments, body, endpoint, ask, prepared, refused)
            if following:  # this stage is full; the next usable one may have room
                remaining = following
            # else nothing after this stage can serve: it is the last after all, and asks again, waiting
            continue
        chosen = admission.chosen or 0
        entry = remaining.pop(chosen)
        deployment = candidates[chosen]
        deployment_id = deployment.id
        if not steps.record.allow(deployment_id, entry.last_resort):  # half-open and its probes are taken
            await steps.admit.give_back(admission.reservation, None)
            errors.append(ServiceUnavailable(f"{deployment_id} is recovering; its probe requests are taken"))
            continue
        if moving is not None and moving[0] != deployment_id and watch is not None:
            watch.fell_back(plan.route, moving[0], deployment_id, moving[1])
        moving = None
        # The first try is awaited directly (most requests need one): each coroutine between the task and
        # the provider is resumed on every wake-up, and retries need closures the first try does not.
        try:
            result = await _attempt(
                steps, spans, record, deployment, prepared[deployment_id], timeout, deadline, finish, waiting
            )
        except UpstreamError as e:
            error: UpstreamError | None = e
        else:
            error = None
        if error is not None and plan.retries.same_deployment > 0:
            try:
                result = await _tries(
                    error, steps, spans, record, deployment, prepared[deployment_id], plan, deadline, finish, waiting
                )
                error = None
            except UpstreamError as e:
                error = e
        if error is not None:
            errors.append(error)
            await steps.admit.failed(deployment, admission.reservation, error)
            if not failures.may_fall_back(error, plan.retry_on) or time.monotonic() >= deadline:
                raise error
            moving = (deployment_id, error)
            if "context_length" in failures.triggers(error):  # only a larger window can help
                window = deployment.context_window or 0
                remaining = [r for r in remaining if (deployments[r.deployment].context_window or 0) > window]
                later = [r for r in later if (deployments[r.deployment].context_window or 0) > window]
            continue
        return Answer(deployment, result, admission.reservation)
    # What every entry of the plan would have said before admission comes first, in the plan's order.
    unchecked = [e for e in plan.entries if e.deployment not in prepared and e.deployment not in refused]
    while unchecked:
        _next_stage(unchecked, steps, deployments, body, endpoint, ask, prepared, refused)
    unusable = [refused[e.deployment] for e in plan.entries if e.deployment in refused]
    raise final_error(unusable + errors)


def _next_stage(
    entries: list[PlanEntry],
    steps: Steps,
    deployments: Mapping[str, Deployment],
    body: dict[str, Any],
    endpoint: Endpoint,
    ask: bounds.Asked | None,
    prepared: dict[str, Prepared],
    refused: dict[str, GatewayError],
) -> list[PlanEntry]:
    """The usable entries of the first stage in ``entries`` that has any (none: ``entries`` ran out), each
    checked against the request (``bounds``) and translated (``Send.prepare``): the usable ones' requests go
    to ``prepared``, the others' refusals to ``refused``. ``entries`` loses the stages looked at."""
    usable: list[PlanEntry] = []
    n, stage = 0, None
    for entry in entries:
        if entry.stage != stage:
            if usable:  # the stage before has some
                break
            stage = entry.stage
        n += 1
        deployment = deployments[entry.deployment]
        over = None if ask is None else bounds.check(deployment, ask, steps.max_output_tokens)
        if over is not None:  # before anything is reserved: its reservation could not be consumed
            refused[entry.deployment] = over
            continue
        try:
            prepared[entry.deployment] = steps.send.prepare(deployment, body, endpoint)
        except UnsupportedParameter as e:
            refused[entry.deployment] = e
            continue
        usable.append(entry)
    del entries[:n]
    return usable


async def _attempt(
    steps: Steps,
    spans: Spans | None,
    record: RequestRecord,
    deployment: Deployment,
    prepared: Prepared,
    timeout: float,
    deadline: float,
    finish: Callable[[Exchange, Deployment], Awaitable[T]],
    waiting: Waiting | None,
) -> T:
    """One try on one deployment, for at most ``timeout`` seconds and never past ``deadline``; its outcome
    goes to ``steps.record``, a failure is raised as an ``UpstreamError`` (the time limit's: ``UpstreamTimeout``)."""
    # Waiting for a connection is the gateway's own queue, not an attempt: a full pool raises
    # UpstreamPoolExhausted before anything is counted or reported to the circuit.
    slot = await steps.send.slot(deployment)
    deployment_id = deployment.id
    record.attempts += 1
    record.tried.append(deployment_id)
    steps.record.started(deployment_id)
    started = time.monotonic()
    error: UpstreamError | None = None
    counted = True
    try:
        left = deadline - started
        if left < timeout:  # the request's deadline comes first (compared, not min(): see gateway.limits.decide)
            timeout = left if left > 0.0 else 0.0
        limit: AbstractContextManager[None] = time_limit(timeout)
        if spans is not None:  # a traced request: the try's span sees what its time limit makes of it
            limit = _within(spans.attempt(deployment, record.attempts), limit)
        with limit:
            exchange = await steps.send.send(deployment, prepared, slot, record.request_id)
            steps.admit.observe(deployment, exchange.headers)
            return await finish(exchange, deployment)
    except TimeoutError:
        slot.release()
        error = UpstreamTimeout("the attempt ran past its time limit")
        raise error from None
    except UpstreamError as e:
        slot.release()
        error = e
        raise
    except BaseException:  # the client left: not the provider's failure, but no longer in flight
        slot.release()
        counted = False
        raise
    finally:  # the attempt's time goes to ``waiting``, its outcome to ``steps.record``
        elapsed = time.monotonic() - started
        if waiting is not None:
            waiting.seconds += elapsed
        steps.record.finished(deployment_id, error, elapsed, record.stream, counted)


@contextmanager
def _within(outer: AbstractContextManager[object], inner: AbstractContextManager[None]) -> Iterator[None]:
    with outer, inner:
        yield


async def _tries(
    first: UpstreamError,
    steps: Steps,
    spans: Spans | None,
    record: RequestRecord,
    deployment: Deployment,
    prepared: Prepared,
    plan: Plan,
    deadline: float,
    finish: Callable[[Exchange, Deployment], Awaitable[T]],
    waiting: Waiting | None,
) -> T:
    """The same-deployment retries after a first try failed with ``first``; each try's outcome goes to
    ``steps.record``."""
    retries = plan.retries
    deployment_id = deployment.id
    last = first
    no_room = False
    failed_at = time.monotonic()  # when the previous try failed: a retry's backoff waits on the provider too

    def worth_retrying(error: BaseException) -> bool:
        # A failure that opened the circuit (a failed half-open probe included) ends the tries here:
        # from now on the circuit decides when this deployment sees a request again.
        return not no_room and failures.retry_here(error) and steps.record.allow(deployment_id)

    async def again() -> T:
        nonlocal no_room, failed_at, last
        if waiting is not None:
            waiting.seconds += time.monotonic() - failed_at
        if not await steps.admit.another_try(deployment):
            no_room = True  # the provider would count this try too: only with room in its buckets
            raise last
        try:
            return await _attempt(
                steps, spans, record, deployment, prepared, retries.attempt_timeout_s, deadline, finish, waiting
            )
        except UpstreamError as e:
            failed_at, last = time.monotonic(), e
            raise

    return await tried_again(
        first,
        again,
        retries.same_deployment,
        retries.backoff_ms / 1000,
        retries.backoff_max_ms / 1000,
        deadline,
        worth_retrying,
    )


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
