"""``time_limit``: asyncio.timeout's contract as a plain ``with`` block."""

from __future__ import annotations

import asyncio

import pytest

from gateway.time_limit import time_limit


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
