"""The waiting line (limits/queue.py): first come, first served per model; models never wait on each other."""

from __future__ import annotations

import asyncio

from gateway.limits.queue import WaitLine


async def test_waiters_of_one_model_go_in_arrival_order() -> None:
    line, served, release = WaitLine(), [], asyncio.Event()

    async def waiter(name: str) -> None:
        async with line.turn("gpt-4o"):
            await release.wait()
            served.append(name)

    tasks = []
    for name in "abcd":
        tasks.append(asyncio.create_task(waiter(name)))
        await asyncio.sleep(0)  # each joins the line before the next arrives
    assert line.busy("gpt-4o")
    release.set()
    await asyncio.gather(*tasks)
    assert served == list("abcd")
    assert not line.busy("gpt-4o")  # the line is forgotten once empty


async def test_another_model_is_not_held_up() -> None:
    line = WaitLine()
    held = asyncio.Event()

    async def holder() -> None:
        async with line.turn("gpt-4o"):
            await held.wait()

    task = asyncio.create_task(holder())
    await asyncio.sleep(0)
    async with asyncio.timeout(1):
        async with line.turn("llama"):  # gets its turn at once
            assert line.busy("gpt-4o") and line.busy("llama")
    held.set()
    await task


async def test_a_cancelled_waiter_leaves_the_line() -> None:
    line = WaitLine()
    gate = asyncio.Event()

    async def first() -> None:
        async with line.turn("m"):
            await gate.wait()

    async def second() -> None:
        async with line.turn("m"):
            pass

    a = asyncio.create_task(first())
    await asyncio.sleep(0)
    b = asyncio.create_task(second())
    await asyncio.sleep(0)
    b.cancel()  # a client that gave up
    gate.set()
    await a
    assert b.cancelled() or b.done()
    assert not line.busy("m")
