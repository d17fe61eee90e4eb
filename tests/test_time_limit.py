"""``time_limit``: asyncio.timeout's contract as a plain ``with`` block; ``stall_aware_limit``: the same, except
that a peer is not blamed for time this process spent without the CPU."""

from __future__ import annotations

import asyncio
import time

import pytest
import redis.asyncio as aioredis
from redis_procs import RedisServer

from gateway.time_limit import stall_aware_limit, time_limit

BUSY_5MS = (
    "local t = redis.call('TIME') local function elapsed() local n = redis.call('TIME') "
    "return (n[1] - t[1]) * 1000000 + n[2] - t[2] end while elapsed() < 5000 do end return 1"
)


async def test_a_block_past_its_time_raises_timeout_error() -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(TimeoutError):
        with time_limit(0.05):
            await asyncio.sleep(5)
    assert loop.time() - started < 1.0
    assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]  # the cancel it made is taken back


async def test_a_block_in_time_leaves_no_timer_behind() -> None:
    with time_limit(0.05):
        await asyncio.sleep(0)
    await asyncio.sleep(0.1)  # the timer, had it stayed, would cancel this sleep


async def test_a_cancellation_from_elsewhere_stays_a_cancellation() -> None:
    entered = asyncio.Event()

    async def limited() -> None:
        with time_limit(5):
            entered.set()
            await asyncio.sleep(5)

    task = asyncio.create_task(limited())
    await entered.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_the_inner_limit_that_ran_out_is_the_one_that_raises() -> None:
    with time_limit(5):
        with pytest.raises(TimeoutError):
            with time_limit(0.01):
                await asyncio.sleep(5)
        await asyncio.sleep(0)  # the outer block goes on


async def test_a_limit_of_zero_expires_at_the_first_wait() -> None:
    with pytest.raises(TimeoutError):
        with time_limit(0):
            await asyncio.sleep(1)


def test_outside_a_task_it_refuses() -> None:
    with pytest.raises(RuntimeError):
        with time_limit(1):
            pass


async def test_a_reply_that_came_while_the_process_stalled_counts(redis_server: RedisServer) -> None:
    """Redis answers 5 ms after the command, while this process is stalled for 0.2 s (past the deadline): the
    reply is read in the turn the timer comes due, and the task it wakes would run only after the timer's cancel.
    A private server: the script keeps it busy."""
    client = aioredis.Redis.from_url(redis_server.url)
    try:
        await client.ping()
        loop = asyncio.get_running_loop()
        for _ in range(3):
            with stall_aware_limit(0.05):
                loop.call_later(0.001, time.sleep, 0.2)  # once the command below has gone out
                assert await client.eval(BUSY_5MS, 0) == 1
    finally:
        await client.aclose(close_connection_pool=True)


async def test_a_peer_that_never_answers_still_runs_out_after_a_stall() -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    loop.call_soon(time.sleep, 0.2)
    with pytest.raises(TimeoutError):
        with stall_aware_limit(0.05):
            await asyncio.sleep(5)
    assert loop.time() - started < 0.2 + 0.05 + 0.1  # the stall, and a grace or a few of loop time
    started = loop.time()
    with pytest.raises(TimeoutError):  # a loop that is not stalled: the limit as it is
        with stall_aware_limit(0.05):
            await asyncio.sleep(5)
    assert loop.time() - started < 0.05 + 0.04
