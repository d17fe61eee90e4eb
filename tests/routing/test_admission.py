"""The walk's admission step (routing.admission.Admitter) over the in-process limiter."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine
from typing import Any

import pytest
from routing import builders

from gateway.config.model import Account, Limits, LimitSettings, VirtualKey
from gateway.errors import RateLimited, UpstreamPoolExhausted, UpstreamStatus
from gateway.limits import specs
from gateway.limits.local import LocalLimiter
from gateway.limits.queue import WaitLine
from gateway.metrics import Metrics
from gateway.providers import REGISTRY
from gateway.record import RequestRecord
from gateway.routing.admission import Admitter
from gateway.routing.steps import Demand

ACCOUNT = Account("acct", "openai", "http://upstream/v1", None, None, Limits(rpm=10, tpm=1000), ())
DEPLOYMENT = builders.dep("acct", "m")
KEY = VirtualKey(name="k", key_sha256="0" * 64, tier="standard", models=frozenset({"*"}), limits=Limits(rpm=2))


class Rig:
    def __init__(self, **limits: Any) -> None:
        self.limiter = LocalLimiter()
        self.metrics = Metrics()
        self.spawned: list[Coroutine[Any, Any, None]] = []
        settings = LimitSettings(**{"queue_timeout_seconds": 0.0, **limits})
        accounts = {"acct": (ACCOUNT, REGISTRY["openai"])}
        self.admitter = Admitter(self.limiter, WaitLine(), accounts, settings, self.metrics, self.spawned.append)

    def record(self) -> RequestRecord:
        return RequestRecord("req_1", "/v1/chat/completions", time.perf_counter())

    def demand(self, tokens: int = 100, key: VirtualKey = KEY) -> Demand:
        return Demand(tokens, specs.quotas(key, None, tokens), "m", 50)

    def throttled(self, reason: str) -> float:
        value = self.metrics.registry.get_sample_value("gateway_throttled_total", {"reason": reason})
        return value or 0.0

    async def level(self, name: str) -> float:
        bucket = next(b for b in specs.candidate(ACCOUNT, DEPLOYMENT, 0).buckets if b.name == name)
        return (await self.limiter.levels([bucket]))[0]


async def test_admits_and_tells_the_caller_its_quota() -> None:
    rig = Rig()
    record = rig.record()
    admission = await rig.admitter.admit(record, [DEPLOYMENT], rig.demand())
    assert admission is not None and admission.chosen == 0
    assert record.extra_headers["x-ratelimit-limit-requests"] == "2"
    assert record.extra_headers["x-ratelimit-remaining-requests"] == "1"


async def test_a_spent_key_quota_is_a_429_counted_by_reason() -> None:
    rig = Rig(max_retry_after_seconds=10.0)
    for _ in range(2):
        assert await rig.admitter.admit(rig.record(), [DEPLOYMENT], rig.demand()) is not None
    with pytest.raises(RateLimited) as info:
        await rig.admitter.admit(rig.record(), [DEPLOYMENT], rig.demand())
    assert info.value.code == "rate_limit_exceeded" and 0 < info.value.retry_after <= 10.0
    assert rig.throttled("key_quota") == 1


async def test_no_capacity_within_the_queue_timeout_is_a_429_or_none_for_a_stage_that_may_not_wait() -> None:
    rig = Rig()
    unlimited = VirtualKey(name="u", key_sha256="0" * 64, tier="standard", models=frozenset({"*"}))
    big = rig.demand(900, unlimited)
    assert await rig.admitter.admit(rig.record(), [DEPLOYMENT], big) is not None
    assert await rig.admitter.admit(rig.record(), [DEPLOYMENT], big, may_wait=False) is None  # a later stage may
    with pytest.raises(RateLimited) as info:
        await rig.admitter.admit(rig.record(), [DEPLOYMENT], big)
    assert info.value.code == "capacity_exhausted" and rig.throttled("capacity") == 1


async def test_a_providers_429_cools_the_deployment_for_at_most_the_cap() -> None:
    rig = Rig(max_retry_after_seconds=30.0)
    admission = await rig.admitter.admit(rig.record(), [DEPLOYMENT], rig.demand())
    assert admission is not None
    await rig.admitter.failed(DEPLOYMENT, admission.reservation, UpstreamStatus(429, "later", retry_after=1e9))
    cooling = await rig.limiter.cooldowns([DEPLOYMENT.id])
    assert 29 < cooling[DEPLOYMENT.id] <= 30.0


async def test_insufficient_quota_cools_the_whole_account() -> None:
    rig = Rig()
    spent = UpstreamStatus(429, "quota", code="insufficient_quota")
    await rig.admitter.failed(DEPLOYMENT, None, spent)
    other = builders.dep("acct", "other")
    assert (await rig.limiter.cooldowns([other.id]))[other.id] > 0


async def test_a_request_that_never_left_gives_everything_back() -> None:
    rig = Rig()
    admission = await rig.admitter.admit(rig.record(), [DEPLOYMENT], rig.demand())
    assert admission is not None and await rig.level("acct:acct:rpm") == pytest.approx(9, abs=0.01)
    await rig.admitter.failed(DEPLOYMENT, admission.reservation, UpstreamPoolExhausted("pool"))
    assert await rig.level("acct:acct:rpm") == pytest.approx(10, abs=0.01)  # the request count too


async def test_another_try_takes_one_more_request_and_stops_when_there_is_none() -> None:
    rig = Rig()
    tries = [await rig.admitter.another_try(DEPLOYMENT) for _ in range(11)]
    assert tries == [True] * 10 + [False]


async def test_the_providers_low_remaining_capacity_lowers_our_bucket() -> None:
    rig = Rig()
    rig.admitter.observe(DEPLOYMENT, {"x-ratelimit-remaining-requests": "9"})  # plenty: nothing to do
    assert rig.spawned == []
    rig.admitter.observe(DEPLOYMENT, {"x-ratelimit-remaining-requests": "0"})
    await asyncio.gather(*rig.spawned)
    assert await rig.level("acct:acct:rpm") < 1


async def test_an_overloaded_anthropic_529_cools_the_deployment_too() -> None:
    rig = Rig()
    await rig.admitter.failed(DEPLOYMENT, None, UpstreamStatus(529, "overloaded", retry_after=3.0))
    assert 2 < (await rig.limiter.cooldowns([DEPLOYMENT.id]))[DEPLOYMENT.id] <= 3.0
