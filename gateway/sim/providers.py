"""Modelled providers: the walk's send step, answering in virtual time as the workload says providers behave.

Everything above the send step is the gateway's own code; this is the one part that is a model. Per
deployment it draws a time to first token and a generation speed, fails at the workload's error rate,
follows the outage windows, and enforces the provider's own limits the way ``gateway.fake`` does (the
limits the config declares, unless the workload says the provider's differ): requests and tokens per
minute, ``prompt + max_tokens`` counted at arrival and corrected to the actual usage, a 429 with OpenAI's
body and ``Retry-After`` when over. Error answers go through the deployment's adapter (``from_error``), so
the gateway reads a modelled 429 or 503 exactly as it reads a real one, and successful answers carry the
``x-ratelimit-*`` headers its admission step reads.

The gateway's own connection pool per account (``server.max_connections_per_account`` per worker) is
modelled too: a request waits for a free connection up to ``timeouts.pool``, as ``upstream.Upstream`` makes
it wait. Each request shape is translated by the deployment's adapter once (a parameter it cannot express
excludes it, as in serving); a modelled provider reads the request's sizes from its trace.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import orjson

from gateway.config.model import Account, Deployment, Limits, Settings
from gateway.errors import UpstreamConnection, UpstreamError, UpstreamPoolExhausted, UpstreamStatus, UpstreamTimeout
from gateway.exchange import Exchange, Slot
from gateway.fake import errors as fake_errors
from gateway.fake.ratelimit import Bucket, format_duration, retry_headers
from gateway.providers.base import Provider, UnsupportedParameter
from gateway.routing.steps import Prepared
from gateway.sim.trace import CURRENT
from gateway.sim.workload import Behaviour, Outage, Workload
from gateway.types import Endpoint, Usage

ERROR_DELAY: Final = 0.05  # seconds a provider takes to refuse or fail a request (one round trip)
_STATUS_ERRORS = {"500": fake_errors.server_error, "503": fake_errors.overloaded}


class ProviderLimits:
    """One limit holder at the provider (an account, or one model of it): the fake's buckets, all or nothing."""

    def __init__(self, limits: Limits, now: float) -> None:
        self.requests = Bucket(limits.rpm, float(limits.rpm), now) if limits.rpm else None
        self.tokens = Bucket(limits.tpm, float(limits.tpm), now) if limits.tpm else None
        buckets = tuple(
            (unit, b) for unit, b in (("requests", self.requests), ("tokens", self.tokens)) if b is not None
        )
        # What its answers' x-ratelimit-* headers say: the limits, fixed, and what remains (filled in per answer,
        # over a copy, which keeps the headers' order).
        self._headers: dict[str, str] = {}
        for unit, bucket in buckets:
            self._headers[f"x-ratelimit-limit-{unit}"] = str(bucket.limit)
            self._headers[f"x-ratelimit-remaining-{unit}"] = ""
        self._remaining = tuple((bucket, f"x-ratelimit-remaining-{unit}") for unit, bucket in buckets)

    def denial(self, tokens: int, now: float) -> tuple[str, int, int, float | None] | None:
        """(unit, limit, used, retry_after) when over, as ``fake.ratelimit.RateLimiter.admit`` decides."""
        requests, bucket = self.requests, self.tokens
        if requests is not None:
            requests.refill(now)
            if requests.level < 1:
                return "requests", requests.limit, requests.limit - requests.remaining, requests.wait_for(1)
        if bucket is not None:
            bucket.refill(now)
            if tokens > bucket.limit:
                return "tokens", bucket.limit, bucket.limit - bucket.remaining, None
            if bucket.level < tokens:
                return "tokens", bucket.limit, bucket.limit - bucket.remaining, bucket.wait_for(tokens)
        return None

    def take(self, estimate: int) -> None:
        """One request and ``prompt + max_tokens`` tokens, on arrival (as OpenAI counts, and the fake)."""
        if self.requests is not None:
            self.requests.level -= 1
        if self.tokens is not None:
            self.tokens.level -= estimate

    def settle(self, estimate: int, actual: int, now: float) -> None:
        """The tokens corrected to what the answer used (nothing, for a failure), when it is known."""
        if self.tokens is not None:
            self.tokens.refill(now)
            self.tokens.settle(estimate, actual)

    def headers(self, now: float) -> dict[str, str]:
        """OpenAI's ``x-ratelimit-limit-*`` and ``x-ratelimit-remaining-*`` for this holder's limits."""
        headers = self._headers.copy()
        for bucket, name in self._remaining:
            bucket.refill(now)
            headers[name] = str(bucket.remaining)
        return headers

    def drain(self, now: float) -> None:
        for bucket in (self.requests, self.tokens):
            if bucket is not None:
                bucket.level, bucket.updated = 0.0, now


class _Pool(asyncio.Semaphore):
    """An account's connection pool: asyncio's semaphore, with the uncontended take and give-back (each once a
    request) done without its waiter checks (``locked()`` walks the waiters in a generator on every call)."""

    # asyncio's own attributes, declared for mypyc, which compiles the methods that read them.
    _value: int
    _waiters: Any

    def take(self) -> bool:
        """A connection now, when one is free and nobody waits for one."""
        if self._value > 0 and not self._waiters:
            self._value -= 1
            return True
        return False

    def release(self) -> None:
        if self._waiters:
            super().release()
        else:
            self._value += 1


class ModelledExchange(Exchange):
    """An answer whose headers have arrived. Holds its pool slot until ``done`` (the walk's caller reads it)."""

    # Not an HTTP exchange: only what the walk and the simulated client read is set, and the headers are a
    # plain attribute (a slot, in place of the base's property over an HTTP response).
    __slots__ = ("headers",)
    headers: Mapping[str, str]

    def __init__(self, headers: dict[str, str], usage: Usage, rest: float, slot: Slot, provider: Provider) -> None:
        self.headers = headers
        self.usage = usage
        self.rest = rest  # seconds of a stream left after its first event
        self.slot = slot
        self.provider = provider


@dataclass
class _Modelled:
    deployment: Deployment
    behaviour: Behaviour
    holders: tuple[ProviderLimits, ...]
    reporter: ProviderLimits | None  # whose headers answers carry: the most specific holder (model, else account)
    outages: tuple[Outage, ...]
    provider: Provider
    pool: _Pool
    account_config: Account

    @property
    def account(self) -> str:
        return self.account_config.name

    def settle(self, estimate: int, actual: int, now: float) -> None:
        for holder in self.holders:
            holder.settle(estimate, actual, now)


class ModelledFleet:
    """The ``Send`` step of ``routing.walk``: prepare, a pool slot, one try."""

    def __init__(
        self,
        settings: Settings,
        workload: Workload,
        registry: Mapping[str, Provider],
        rng: random.Random,
        clock: Callable[[], float],
        sleep: Callable[[float], Awaitable[None]],
        pool_size: int,
    ) -> None:
        self._rng, self._clock, self._sleep = rng, clock, sleep
        self._timeouts = settings.server.timeouts
        self._max_retry_after = settings.limits.max_retry_after_seconds
        now = clock()
        self._models: dict[str, _Modelled] = {}
        # by deployment id and body (the client's templates), each body kept with what was made for it
        self._prepared: dict[tuple[str, int], tuple[object, Prepared | UnsupportedParameter]] = {}
        for account in settings.accounts:
            pool = _Pool(pool_size)
            own = workload.limits.get(account.name, account.limits)
            shared = (ProviderLimits(own, now),) if own.rpm or own.tpm else ()
            for d in account.deployments:
                limits = workload.limits.get(d.id, d.limits)
                holders = shared + ((ProviderLimits(limits, now),) if limits.rpm or limits.tpm else ())
                outages = tuple(o for o in workload.outages if o.target in (account.name, d.id))
                behaviour = workload.behaviour(account.kind, account.name, d.id)
                reporter = holders[-1] if holders else None
                modelled = _Modelled(d, behaviour, holders, reporter, outages, registry[account.kind], pool, account)
                self._models[d.id] = modelled

    def drain(self) -> None:
        """Every provider limit empty, as after a long overload (the capacity search starts from there)."""
        now = self._clock()
        for modelled in self._models.values():
            for holder in modelled.holders:
                holder.drain(now)

    def prepare(self, deployment: Deployment, body: dict[str, Any], endpoint: Endpoint) -> Prepared:
        """The adapter's own translation, once per request shape (a class's body) and deployment: a parameter
        the provider cannot express excludes the deployment here as it does in serving (the refusal is kept
        too). A modelled provider reads the request's sizes from its trace, not from the bytes."""
        # A run's deployments are the fleet's, one per id; a body is kept with what was made for it, so its id
        # is never another's while the entry lives.
        key = (deployment.id, id(body))
        found = self._prepared.get(key)
        if found is None:
            m = self._models[deployment.id]
            try:
                payload = m.provider.to_request(body, deployment, m.provider, endpoint)
                url = m.provider.url(m.account_config, deployment, endpoint)
                made: Prepared | UnsupportedParameter = Prepared(url, orjson.dumps(payload))
            except UnsupportedParameter as refused:
                made = refused
            found = self._prepared[key] = (body, made)
        made = found[1]
        if isinstance(made, UnsupportedParameter):
            raise made.with_traceback(None)
        return made

    async def slot(self, deployment: Deployment) -> Slot:
        pool = self._models[deployment.id].pool
        if pool.take():
            return Slot(pool)
        try:
            async with asyncio.timeout(self._timeouts.pool):
                await pool.acquire()
        except TimeoutError:
            raise UpstreamPoolExhausted(
                f"every connection to provider account {deployment.account!r} is busy; "
                f"none came free within {self._timeouts.pool}s"
            ) from None
        return Slot(pool)

    async def send(self, deployment: Deployment, prepared: Prepared, slot: Slot, request_id: str) -> Exchange:
        m = self._models[deployment.id]
        call, now, rng, sleep = CURRENT.get().call, self._clock(), self._rng, self._sleep
        try:
            for outage in m.outages:
                if outage.start <= now < outage.end:
                    raise await self._outage(m, outage)
            estimate, output = call.prompt + call.cap, call.output
            for holder in m.holders:
                denied = holder.denial(estimate, now)
                if denied is not None:
                    await sleep(ERROR_DELAY)
                    raise self._rate_limited(m, estimate, *denied)
            for holder in m.holders:
                holder.take(estimate)
            behaviour = m.behaviour
            ttft = behaviour.ttft.sample(rng)
            if behaviour.error_rate and rng.random() < behaviour.error_rate:
                await sleep(min(ttft, self._timeouts.first_byte))
                m.settle(estimate, 0, self._clock())  # a failed request costs no tokens
                raise self._failure(m, behaviour.error)
            speed = behaviour.tokens_per_second.sample(rng)
            generation = output / speed if speed > 0 else 0.0
            first = ttft if call.stream else ttft + generation  # a JSON answer's headers come with the whole answer
            if first > self._timeouts.first_byte:
                await sleep(self._timeouts.first_byte)
                m.settle(estimate, 0, self._clock())
                raise UpstreamTimeout("the upstream did not answer in time")
            await sleep(first)
        except UpstreamError:
            slot.release()
            raise
        now = self._clock()
        m.settle(estimate, call.prompt + output, now)
        headers = m.reporter.headers(now) if m.reporter is not None else {}
        return ModelledExchange(
            headers, Usage(call.prompt, output), generation if call.stream else 0.0, slot, m.provider
        )

    def _rate_limited(
        self, m: _Modelled, requested: int, unit: str, limit: int, used: int, wait: float | None
    ) -> UpstreamStatus:
        model = m.deployment.upstream_model
        if wait is None:
            body = fake_errors.request_too_large(model, limit, requested)
            return m.provider.from_error(429, _json(body), {}, (), self._max_retry_after)
        body = fake_errors.rate_limited(
            model, unit, limit, used, requested if unit == "tokens" else 1, format_duration(wait)
        )
        return m.provider.from_error(429, _json(body), retry_headers(wait), (), self._max_retry_after)

    async def _outage(self, m: _Modelled, outage: Outage) -> UpstreamError:
        if outage.kind == "timeout":  # the provider takes the request and never answers
            await self._sleep(min(self._timeouts.first_byte, self._timeouts.total))
            return UpstreamTimeout("the upstream did not answer in time")
        if outage.kind == "connection":
            return UpstreamConnection(
                f"could not connect to provider account {m.account!r}", code="upstream_connect_failed"
            )
        await self._sleep(ERROR_DELAY)
        if outage.kind == "429":
            model = m.deployment.upstream_model
            body = fake_errors.rate_limited(model, "requests", 0, 0, 1, format_duration(outage.retry_after))
            return m.provider.from_error(429, _json(body), retry_headers(outage.retry_after), (), self._max_retry_after)
        return self._failure(m, outage.kind)

    def _failure(self, m: _Modelled, kind: str) -> UpstreamError:
        if kind == "timeout":
            return UpstreamTimeout("the upstream did not answer in time")
        if kind == "connection":
            return UpstreamConnection("the upstream connection failed before its answer (ServerDisconnectedError)")
        make = _STATUS_ERRORS.get(kind)
        status = int(kind)
        body = make().body if make is not None else fake_errors.error_body(f"upstream error {kind}", "server_error")
        return m.provider.from_error(status, _json(body), {}, (), self._max_retry_after)


def _json(body: dict[str, Any]) -> bytes:
    return orjson.dumps(body)
