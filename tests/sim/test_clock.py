"""The virtual loop keeps asyncio's semantics: sleeps, timeouts, cancellation and ordering, in simulated time."""

from __future__ import annotations

import asyncio
import time

import pytest

from gateway.sim.clock import MIN_STEP, Deadlock, VirtualLoop, run


def test_time_jumps_to_each_timer_and_costs_no_real_time() -> None:
    seen: list[tuple[str, float]] = []

    async def sleeper(loop: VirtualLoop, name: str, delay: float) -> None:
        await asyncio.sleep(delay)
        seen.append((name, loop.time()))

    async def main(loop: VirtualLoop) -> float:
        await asyncio.gather(sleeper(loop, "hour", 3600.0), sleeper(loop, "second", 1.0), sleeper(loop, "day", 86400))
        return time.monotonic()  # the loop's clock while a simulation runs

    started = time.perf_counter()
    assert run(main) == 86400.0
    assert time.perf_counter() - started < 1.0
    assert seen == [("second", 1.0), ("hour", 3600.0), ("day", 86400.0)]


def test_loop_sleep_is_asyncio_sleep_and_cancels_like_it() -> None:
    async def main(loop: VirtualLoop) -> list[object]:
        await loop.sleep(2.5)
        woke = loop.time()
        sleeping = asyncio.ensure_future(loop.sleep(10.0))
        await loop.sleep(1.0)
        sleeping.cancel()  # the loop leaves a cancelled sleep alone when its time comes
        await asyncio.sleep(20.0)
        return [woke, sleeping.cancelled(), loop.time()]

    assert run(main) == [2.5, True, 23.5]


def test_a_timeout_cuts_a_sleep_short_and_a_cancelled_one_never_fires() -> None:
    async def main(loop: VirtualLoop) -> tuple[float, float]:
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(5.0):
                await loop.sleep(60.0)
        cut = loop.time()
        async with asyncio.timeout(100.0):  # cancelled on exit: nothing happens at 105
            await loop.sleep(1.0)
        await asyncio.sleep(200.0)
        return cut, loop.time()

    assert run(main) == (5.0, 206.0)


def test_equal_times_run_in_the_order_they_were_set_and_nothing_runs_sooner_than_a_step() -> None:
    order: list[str] = []

    async def main(loop: VirtualLoop) -> float:
        for name in "abc":
            loop.call_at(7.0, order.append, name)
        loop.call_later(0.0, order.append, "now")  # in the past or now: one step ahead
        handle = loop.call_at(7.0, order.append, "cancelled")
        handle.cancel()
        await asyncio.sleep(8.0)
        return loop.time()

    assert run(main) == 8.0
    assert order == ["now", "a", "b", "c"]


def test_many_cancelled_timers_are_dropped() -> None:
    async def main(loop: VirtualLoop) -> int:
        for _ in range(1000):
            loop.call_later(3600.0, print).cancel()
        await asyncio.sleep(1.0)
        return len(loop._timers)

    assert run(main) == 0


def test_a_coroutine_that_waits_for_nothing_is_a_deadlock() -> None:
    async def main(loop: VirtualLoop) -> None:
        await loop.create_future()

    with pytest.raises(Deadlock):
        run(main)


def test_a_failing_callback_is_reported_and_the_loop_goes_on() -> None:
    reported: list[BaseException | None] = []

    async def main(loop: VirtualLoop) -> float:
        loop.set_exception_handler(lambda _, context: reported.append(context.get("exception")))
        loop.call_soon(lambda: 1 / 0)
        await asyncio.sleep(MIN_STEP)
        return loop.time()

    assert run(main) == MIN_STEP
    assert len(reported) == 1 and isinstance(reported[0], ZeroDivisionError)


def test_monotonic_is_real_again_after_a_run() -> None:
    async def main(loop: VirtualLoop) -> None:
        await asyncio.sleep(1e6)

    run(main)
    assert time.monotonic() != 1e6


def test_handles_are_asyncio_handles_without_their_constructor() -> None:
    async def main(loop: VirtualLoop) -> list[bool]:
        soon, timer = loop.call_soon(print, "never"), loop.call_at(5.0, print, "never")
        assert isinstance(soon, asyncio.Handle) and isinstance(timer, asyncio.TimerHandle)
        assert timer.when() == 5.0 and "print" in repr(soon) and "when=5.0" in repr(timer)
        soon.cancel()
        timer.cancel()
        await asyncio.sleep(10.0)
        return [soon.cancelled(), timer.cancelled(), loop.time() == 10.0]

    assert run(main) == [True, True, True]
