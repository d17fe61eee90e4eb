"""An answer from a provider reached through a library (the litellm kind) is read under the same bounds as an
HTTP answer: the idle timeout, the size limits, its pool slot given back, and the library's stream closed
whatever ends the reading (a client that leaves cancels the call)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator

import pytest

from gateway.errors import UpstreamProtocol, UpstreamTimeout
from gateway.exchange import Rules, SdkExchange, Slot
from gateway.providers import REGISTRY
from gateway.providers.base import SdkAnswer

RULES = Rules(max_body=100, max_event=80, max_stream=200, max_retry_after=300.0, secrets=("sk-configured-secret",))


async def exchange(answer: SdkAnswer, idle: float = 0.2) -> tuple[SdkExchange, asyncio.Semaphore]:
    pool = asyncio.Semaphore(1)
    await pool.acquire()  # the slot is taken, as Upstream.slot leaves it
    return SdkExchange(answer, time.monotonic() + 5, idle, RULES, Slot(pool), REGISTRY["litellm"]), pool


class Library:
    """A library's stream: chunks, then silence (``stall``) or the end; remembers being closed."""

    def __init__(self, chunks: list[bytes], stall: bool) -> None:
        self.chunks, self.stall, self.closed = chunks, stall, False

    async def events(self) -> AsyncGenerator[bytes, None]:
        try:
            for chunk in self.chunks:
                yield chunk
            if self.stall:
                await asyncio.sleep(3600)
        finally:
            self.closed = True


async def test_an_idle_stream_times_out_and_is_closed() -> None:
    library = Library([b'{"choices":[]}'], stall=True)
    answer, pool = await exchange(SdkAnswer({}, events=library.events()))
    seen = []
    with pytest.raises(UpstreamTimeout):
        async for batch in answer.batches():
            seen += batch
    assert seen == [b'{"choices":[]}'] and library.closed and not pool.locked()


async def test_a_client_that_leaves_closes_the_librarys_stream() -> None:
    library = Library([b"{}", b"{}", b"[DONE]"], stall=False)
    answer, pool = await exchange(SdkAnswer({}, events=library.events()))
    batches = answer.batches()
    assert await batches.__anext__() == [b"{}"]  # the library's events come one at a time
    await batches.aclose()
    assert library.closed and not pool.locked()


async def test_bounds_and_redaction() -> None:
    big, _ = await exchange(SdkAnswer({}, body=b"{" + b" " * 200 + b"}"))
    with pytest.raises(UpstreamProtocol):
        await big.json()
    library = Library([b'{"error":{"message":"bad key sk-configured-secret"}}'], stall=False)
    answer, _ = await exchange(SdkAnswer({}, events=library.events()))
    assert [e async for batch in answer.batches() for e in batch] == [b'{"error":{"message":"bad key [redacted]"}}']
    long = Library([b"x" * 90], stall=False)
    too_long, pool = await exchange(SdkAnswer({}, events=long.events()))
    with pytest.raises(UpstreamProtocol):
        [batch async for batch in too_long.batches()]
    assert long.closed and not pool.locked()
