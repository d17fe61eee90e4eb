"""Tries of one request on one deployment after its first (the walk's same-deployment retries): tenacity's
exponential backoff with jitter, at least the provider's Retry-After, never past the request's deadline."""

from __future__ import annotations

import random
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    stop_any,
    stop_before_delay,
)

T = TypeVar("T")


async def tried_again(
    first: Exception,
    call: Callable[[], Awaitable[T]],
    retries: int,
    initial: float,
    maximum: float,
    deadline: float,
    worth_retrying: Callable[[BaseException], bool],
) -> T:
    """``call()`` tried again, after a first try that failed with ``first``, as ``same_deployment_retries``
    allows while its failure is worth retrying.

    The first try is the caller's own (the walk awaits it directly): setting tenacity up leaves ~40 objects in
    reference cycles per request (measured: most of the garbage collector's work), and most requests need
    one try. The first failure is replayed as tenacity's first attempt, so backoff, Retry-After and the
    stop rules count it.
    """
    replay: Exception | None = first
    async for attempt in same_deployment_retries(retries, initial, maximum, deadline, worth_retrying):
        with attempt:
            if replay is not None:
                failure, replay = replay, None
                raise failure
            return await call()
    raise AssertionError("same_deployment_retries always yields at least once")


def same_deployment_retries(
    retries: int, initial: float, maximum: float, deadline: float, worth_retrying: Callable[[BaseException], bool]
) -> AsyncRetrying:
    """Tries of one request on one deployment: exponential backoff with jitter, at least the provider's
    Retry-After, never past ``deadline`` (monotonic); the last failure is re-raised as it was.

    Used as tenacity's iterator: ``async for attempt in same_deployment_retries(...): with attempt: ...``.
    """

    def wait(state: RetryCallState) -> float:
        # tenacity's wait_exponential_jitter, written out: its `initial` is deprecated in 9.x and its
        # replacement `multiplier` does not exist in 8.x.
        backoff: float = min(initial * 2 ** (state.attempt_number - 1) + random.uniform(0, initial), maximum)
        error = state.outcome.exception() if state.outcome is not None else None
        asked = getattr(error, "retry_after", None) or 0.0
        return max(backoff, float(asked))

    return AsyncRetrying(
        stop=stop_any(stop_after_attempt(retries + 1), stop_before_delay(max(0.0, deadline - time.monotonic()))),
        wait=wait,
        retry=retry_if_exception(worth_retrying),
        reraise=True,
    )
