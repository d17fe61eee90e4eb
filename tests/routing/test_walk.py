"""walk: the request path's loop over injected steps, with fakes for admission, sending and recording."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
from routing import builders

from gateway.config.model import Deployment
from gateway.errors import (
    InvalidRequest,
    RateLimited,
    ServiceUnavailable,
    UpstreamError,
    UpstreamStatus,
)
from gateway.exchange import Slot
from gateway.limits.model import Admission, BucketSpec, Reservation, Strategy
from gateway.providers.base import UnsupportedParameter
from gateway.record import RequestRecord
from gateway.routing.policy import Retries
from gateway.routing.select import Plan, PlanEntry, Stage
from gateway.routing.steps import Demand, Prepared, Steps, Waiting
from gateway.routing.walk import walk
from gateway.types import Endpoint

DEPLOYMENTS = {
    d.id: d
    for d in (
        builders.dep("a", "m", 8000),
        builders.dep("b", "m", 8000),
        builders.dep("c", "m", 128000),
    )
}
DEMAND = Demand(tokens=100, quotas=(), group="m", prompt=50)
BODY: dict[str, Any] = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
FAST = Retries(same_deployment=1, backoff_ms=1, backoff_max_ms=2)


@dataclass
class FakeAdmit:
    full: set[str] = field(default_factory=set)  # deployments with no room
    room_after_waiting: bool = False  # a full deployment has room for a request that waits in line
    asked: list[tuple[str, bool]] = field(default_factory=list)  # each admission: first deployment, may_wait
    room_for_retries: bool = True
    given_back: list[tuple[Reservation | None, int | None]] = field(default_factory=list)
    failures: list[tuple[str, type]] = field(default_factory=list)
    observed: list[str] = field(default_factory=list)

    async def admit(
        self, record: RequestRecord, deployments: Sequence[Deployment], demand: Demand, strategy: Strategy, wait: bool
    ) -> Admission | None:
        self.asked.append((deployments[0].id, wait))
        for n, d in enumerate(deployments):
            if d.id not in self.full or (wait and self.room_after_waiting):
                reservation = Reservation((BucketSpec(f"dep:{d.id}:tpm", 1000, 10, demand.tokens, "tokens"),))
                return Admission(n, 0.0, (), (), reservation, False)
        if not wait:
            return None
        raise RateLimited("no room", retry_after=1.0)

    async def give_back(self, reservation: Reservation | None, used: int | None) -> None:
        self.given_back.append((reservation, used))

    async def failed(self, deployment: Deployment, reservation: Reservation | None, error: UpstreamError) -> None:
        self.failures.append((deployment.id, type(error)))

    async def another_try(self, deployment: Deployment) -> bool:
        return self.room_for_retries

    def observe(self, deployment: Deployment, headers: Mapping[str, str]) -> None:
        self.observed.append(deployment.id)


@dataclass
class FakeExchange:
    headers: Mapping[str, str]


@dataclass
class FakeSend:
    answers: dict[str, list[Exception | str]]  # per deployment, the outcome of each try in turn
    unsupported: set[str] = field(default_factory=set)
    sent: list[str] = field(default_factory=list)
    translated: list[str] = field(default_factory=list)
    pool: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(10))

    def prepare(self, deployment: Deployment, body: dict[str, Any], endpoint: Endpoint) -> Prepared:
        self.translated.append(deployment.id)
        if deployment.id in self.unsupported:
            raise UnsupportedParameter("logprobs", "toy")
        return Prepared(f"http://upstream/{deployment.id}", b"{}")

    async def slot(self, deployment: Deployment) -> Slot:
        await self.pool.acquire()
        return Slot(self.pool)

    async def send(self, deployment: Deployment, prepared: Prepared, slot: Slot, request_id: str) -> Any:
        self.sent.append(deployment.id)
        outcome = self.answers[deployment.id].pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return FakeExchange({"x-answer": outcome})


@dataclass
class FakeRecord:
    refuse: set[str] = field(default_factory=set)
    outcomes: list[tuple[str, str, bool]] = field(default_factory=list)  # (deployment, "ok"/error type, counted)

    def allow(self, deployment_id: str, last_resort: bool = False) -> bool:
        return deployment_id not in self.refuse

    def started(self, deployment_id: str) -> None:
        pass

    def finished(
        self, deployment_id: str, error: UpstreamError | None, elapsed: float, stream: bool, counted: bool = True
    ) -> None:
        self.outcomes.append((deployment_id, "ok" if error is None else type(error).__name__, counted))


def plan(*entries: tuple[str, Stage], retry_on: frozenset[str] = frozenset({"5xx", "429", "context_length"})) -> Plan:
    return Plan(
        route="r",
        rule="main",
        strategy="priority",
        entries=tuple(PlanEntry(d, None, "", stage) for d, stage in entries),
        excluded=(),
        retry_on=retry_on,
        retries=FAST,
        admit_strategy="first",
    )


async def finish(exchange: Any, deployment: Deployment) -> str:
    return f"{deployment.id}:{exchange.headers['x-answer']}"


async def run(
    p: Plan, send: FakeSend, admit: FakeAdmit | None = None, record: FakeRecord | None = None
) -> tuple[str, RequestRecord, FakeAdmit, FakeRecord]:
    admit, record = admit or FakeAdmit(), record or FakeRecord()
    steps = Steps(admit=admit, send=send, record=record, max_output_tokens=4096)  # type: ignore[arg-type]
    request = RequestRecord("req_1", "/v1/chat/completions", time.perf_counter())
    answer = await walk(steps, request, p, DEPLOYMENTS, BODY, "chat", DEMAND, finish)  # type: ignore[arg-type]
    return answer.result, request, admit, record


async def test_the_first_deployment_answers() -> None:
    result, request, admit, record = await run(plan(("a/m", "candidate")), FakeSend({"a/m": ["ok"]}))
    assert result == "a/m:ok" and request.attempts == 1 and request.tried == ["a/m"]
    assert record.outcomes == [("a/m", "ok", True)] and admit.observed == ["a/m"] and admit.failures == []


async def test_a_5xx_is_retried_once_on_the_same_deployment_then_falls_back() -> None:
    send = FakeSend({"a/m": [UpstreamStatus(503, "busy"), UpstreamStatus(503, "busy")], "b/m": ["ok"]})
    result, request, admit, record = await run(plan(("a/m", "candidate"), ("b/m", "candidate")), send)
    assert result == "b/m:ok" and request.tried == ["a/m", "a/m", "b/m"]
    assert admit.failures == [("a/m", UpstreamStatus)]
    assert [o[1] for o in record.outcomes] == ["UpstreamStatus", "UpstreamStatus", "ok"]


async def test_the_tries_and_the_backoff_between_them_go_to_waiting_when_the_caller_keeps_it() -> None:
    send = FakeSend({"a/m": [UpstreamStatus(503, "busy"), "ok"]})
    steps = Steps(admit=FakeAdmit(), send=send, record=FakeRecord(), max_output_tokens=4096)
    request, waiting = RequestRecord("req_1", "/v1/chat/completions", time.perf_counter()), Waiting()
    answer = await walk(steps, request, plan(("a/m", "candidate")), DEPLOYMENTS, BODY, "chat", DEMAND, finish, waiting)
    assert answer.result == "a/m:ok" and waiting.seconds >= FAST.backoff_ms / 1000


async def test_no_retry_without_room_in_the_providers_request_buckets() -> None:
    send = FakeSend({"a/m": [UpstreamStatus(503, "busy")], "b/m": ["ok"]})
    result, request, _, _ = await run(
        plan(("a/m", "candidate"), ("b/m", "candidate")), send, FakeAdmit(room_for_retries=False)
    )
    assert result == "b/m:ok" and request.tried == ["a/m", "b/m"]


async def test_a_failure_that_is_not_a_trigger_ends_the_walk() -> None:
    send = FakeSend({"a/m": [UpstreamStatus(400, "bad request")], "b/m": ["ok"]})
    with pytest.raises(UpstreamStatus) as info:
        await run(plan(("a/m", "candidate"), ("b/m", "candidate")), send)
    assert info.value.upstream_status == 400 and send.sent == ["a/m"]


async def test_a_context_length_failure_skips_to_a_larger_window() -> None:
    too_long = UpstreamStatus(400, "too long", code="context_length_exceeded")
    send = FakeSend({"a/m": [too_long], "b/m": ["never"], "c/m": ["ok"]})
    result, _, _, _ = await run(plan(("a/m", "candidate"), ("b/m", "candidate"), ("c/m", "fallback")), send)
    assert result == "c/m:ok" and send.sent == ["a/m", "c/m"]  # b has the same 8k window: no use trying


async def test_a_deployment_that_cannot_express_the_request_is_skipped_before_admission() -> None:
    send = FakeSend({"b/m": ["ok"]}, unsupported={"a/m"})
    result, _, admit, _ = await run(plan(("a/m", "candidate"), ("b/m", "candidate")), send)
    assert result == "b/m:ok" and send.sent == ["b/m"] and admit.given_back == []
    with pytest.raises(UnsupportedParameter):
        await run(plan(("a/m", "candidate")), FakeSend({}, unsupported={"a/m"}))


async def test_an_output_cap_over_every_deployments_bound_is_a_400_before_anything_is_reserved() -> None:
    send = FakeSend({"a/m": ["never"]})
    admit = FakeAdmit()
    steps = Steps(admit=admit, send=send, record=FakeRecord(), max_output_tokens=4096)  # type: ignore[arg-type]
    request = RequestRecord("req_1", "/v1/chat/completions", time.perf_counter())
    body = {**BODY, "max_tokens": 10_000}  # a/m: no stated output limit, an 8k window
    with pytest.raises(InvalidRequest) as info:
        await walk(steps, request, plan(("a/m", "candidate")), DEPLOYMENTS, body, "chat", DEMAND, finish)  # type: ignore[arg-type]
    assert info.value.param == "max_tokens" and send.sent == [] and admit.given_back == []


async def test_a_half_open_deployment_whose_probes_are_taken_gives_its_reservation_back() -> None:
    send = FakeSend({"b/m": ["ok"]})
    result, _, admit, _ = await run(plan(("a/m", "candidate"), ("b/m", "candidate")), send, record=FakeRecord({"a/m"}))
    assert result == "b/m:ok" and admit.given_back[0][1] is None  # all of it: nothing was sent
    with pytest.raises(ServiceUnavailable):
        await run(plan(("a/m", "candidate")), FakeSend({}), record=FakeRecord({"a/m"}))


async def test_a_full_stage_moves_on_to_the_fallback_chain() -> None:
    send = FakeSend({"c/m": ["ok"]})
    result, _, _, _ = await run(plan(("a/m", "candidate"), ("c/m", "fallback")), send, FakeAdmit(full={"a/m"}))
    assert result == "c/m:ok" and send.sent == ["c/m"]


async def test_every_deployment_rate_limited_upstream_is_a_429_with_the_soonest_retry() -> None:
    slow = UpstreamStatus(429, "slow down", retry_after=7.0)
    soon = UpstreamStatus(429, "slow down", retry_after=2.0)
    with pytest.raises(RateLimited) as info:
        await run(plan(("a/m", "candidate"), ("b/m", "candidate")), FakeSend({"a/m": [slow], "b/m": [soon]}))
    assert info.value.retry_after == 2.0


async def test_a_client_that_leaves_is_not_the_providers_failure() -> None:
    async def leave(exchange: Any, deployment: Deployment) -> str:
        raise asyncio.CancelledError

    admit, record = FakeAdmit(), FakeRecord()
    steps = Steps(admit=admit, send=FakeSend({"a/m": ["ok"]}), record=record, max_output_tokens=4096)  # type: ignore[arg-type]
    request = RequestRecord("req_1", "/v1/chat/completions", time.perf_counter())
    with pytest.raises(asyncio.CancelledError):
        await walk(steps, request, plan(("a/m", "candidate")), DEPLOYMENTS, BODY, "chat", DEMAND, leave)  # type: ignore[arg-type]
    assert record.outcomes == [("a/m", "ok", False)] and admit.failures == []


async def test_a_fallback_is_translated_only_when_the_walk_reaches_it() -> None:
    entries = plan(("a/m", "candidate"), ("b/m", "fallback"), ("c/m", "fallback"))
    send = FakeSend({"a/m": ["ok"]})
    await run(entries, send)
    assert send.translated == ["a/m"]
    send = FakeSend({"a/m": [UpstreamStatus(503, "busy"), UpstreamStatus(503, "busy")], "b/m": ["ok"]})
    result, _, _, _ = await run(entries, send)
    assert result == "b/m:ok" and send.translated == ["a/m", "b/m", "c/m"]


async def test_a_full_stage_waits_in_line_when_no_later_stage_can_serve() -> None:
    # c/m cannot express the request: the candidates are the last stage that can serve, so a full one waits
    # for room (the first ask, before c/m was looked at, did not wait).
    admit = FakeAdmit(full={"a/m"}, room_after_waiting=True)
    send = FakeSend({"a/m": ["ok"]}, unsupported={"c/m"})
    result, _, _, _ = await run(plan(("a/m", "candidate"), ("c/m", "fallback")), send, admit)
    assert result == "a/m:ok" and admit.asked == [("a/m", False), ("a/m", True)]
    admit = FakeAdmit(full={"a/m"}, room_after_waiting=True)
    result, _, _, _ = await run(plan(("a/m", "candidate"), ("c/m", "fallback")), FakeSend({"c/m": ["ok"]}), admit)
    assert result == "c/m:ok" and admit.asked == [("a/m", False), ("c/m", True)]  # a/m full: on to c/m


async def test_after_a_failure_the_client_hears_it_not_a_later_entrys_refusal() -> None:
    # c/m fails; the fallback a/m (an 8k window) cannot take 9,000 output tokens: the answer is c/m's 503, as
    # when every entry was checked before the first admission.
    send = FakeSend({"c/m": [UpstreamStatus(503, "busy"), UpstreamStatus(503, "busy")]})
    admit, record = FakeAdmit(), FakeRecord()
    steps = Steps(admit=admit, send=send, record=record, max_output_tokens=4096)  # type: ignore[arg-type]
    request = RequestRecord("req_1", "/v1/chat/completions", time.perf_counter())
    body = {**BODY, "max_tokens": 9_000}
    entries = plan(("c/m", "candidate"), ("a/m", "fallback"))
    with pytest.raises(UpstreamStatus) as info:
        await walk(steps, request, entries, DEPLOYMENTS, body, "chat", DEMAND, finish)  # type: ignore[arg-type]
    assert info.value.upstream_status == 503 and send.sent == ["c/m", "c/m"]
