"""Same-deployment tries after a failed first one (``gateway.retries.tried_again``): how many, how long between
them, what is raised."""

from __future__ import annotations

import time

import pytest

from gateway.errors import UpstreamStatus
from gateway.retries import tried_again


class Flaky:
    """Fails the first ``failures`` calls with ``error``, then answers "ok"."""

    def __init__(self, failures: int, error: Exception) -> None:
        self.failures, self.error = failures, error
        self.calls: list[float] = []

    async def __call__(self) -> str:
        self.calls.append(time.monotonic())
        if len(self.calls) <= self.failures:
            raise self.error
        return "ok"


def transient(error: BaseException) -> bool:
    return isinstance(error, UpstreamStatus) and error.upstream_status >= 500


def server_error(retry_after: float | None = None) -> UpstreamStatus:
    return UpstreamStatus(503, "overloaded", retry_after=retry_after)


async def test_transient_failures_are_tried_again_with_backoff_and_retry_after() -> None:
    error = server_error(retry_after=0.05)
    call = Flaky(1, error)
    failed = time.monotonic()
    assert await tried_again(error, call, 2, 0.01, 0.1, time.monotonic() + 5, transient) == "ok"
    assert len(call.calls) == 2
    times = [failed, *call.calls]
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    assert all(gap >= 0.05 for gap in gaps), gaps  # the provider's Retry-After is honoured from the first failure


async def test_the_last_failure_is_raised_when_tries_run_out() -> None:
    error = server_error()
    call = Flaky(5, error)
    with pytest.raises(UpstreamStatus) as raised:
        await tried_again(error, call, 2, 0.001, 0.01, time.monotonic() + 5, transient)
    assert raised.value is error and len(call.calls) == 2  # three tries in all, the first the caller's


async def test_a_failure_not_worth_retrying_is_raised_at_once() -> None:
    error = UpstreamStatus(400, "bad request")
    call = Flaky(0, error)
    with pytest.raises(UpstreamStatus) as raised:
        await tried_again(error, call, 3, 0.001, 0.01, time.monotonic() + 5, transient)
    assert raised.value is error and not call.calls


async def test_no_try_starts_past_the_deadline() -> None:
    call = Flaky(5, server_error(retry_after=1.0))
    started = time.monotonic()
    with pytest.raises(UpstreamStatus):
        await tried_again(server_error(retry_after=1.0), call, 3, 0.001, 0.01, started + 0.2, transient)
    assert not call.calls and time.monotonic() - started < 0.5
