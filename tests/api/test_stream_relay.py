"""The stream relay sends the events that arrived together in one write, and each batch as soon as it is here."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, MutableMapping
from types import SimpleNamespace
from typing import Any, cast

from gateway.api.stream import StreamRelay
from gateway.config.model import ServerSettings, Settings
from gateway.metrics import Metrics
from gateway.record import RequestRecord
from gateway.runtime import Runtime
from gateway.sse import DONE


def _runtime() -> Runtime:
    """What finishing a stream without a deployment or a reservation reads: metrics, and the access log off."""
    settings = Settings(
        source="test",
        server=ServerSettings(access_log=False),
        redis_url="",
        accounts=(),
        keys=(),
        admin_key_sha256=None,
        policy_dir="",
    )
    return cast(Runtime, SimpleNamespace(metrics=Metrics(), settings=settings))


async def _relay(first: list[bytes], rest: AsyncGenerator[list[bytes], None]) -> list[tuple[float, bytes]]:
    """The bodies the client was sent, with when."""
    record = RequestRecord("req_1", "/v1/chat/completions", time.perf_counter())
    relay = StreamRelay(_runtime(), record, first, rest, True, None, 9)
    sent: list[tuple[float, bytes]] = []

    async def send(message: MutableMapping[str, Any]) -> None:
        if message["type"] == "http.response.body":
            sent.append((time.monotonic(), message["body"]))

    async def receive() -> dict[str, Any]:
        await asyncio.Event().wait()  # the client stays
        raise AssertionError

    await relay({"type": "http"}, receive, send)
    return sent


async def test_events_that_arrived_together_leave_together() -> None:
    async def rest() -> AsyncGenerator[list[bytes], None]:
        yield [b'{"c":3}']
        yield [b'{"c":4}', DONE]

    sent = await _relay([b'{"c":1}', b'{"c":2}'], rest())
    assert [body for _, body in sent] == [
        b'data: {"c":1}\n\ndata: {"c":2}\n\n',
        b'data: {"c":3}\n\n',
        b'data: {"c":4}\n\ndata: [DONE]\n\n',
        b"",  # the end of the response
    ]


async def test_a_batch_is_sent_before_the_next_arrives() -> None:
    async def rest() -> AsyncGenerator[list[bytes], None]:
        await asyncio.sleep(0.2)
        yield [DONE]

    began = time.monotonic()
    sent = await _relay([b'{"c":1}'], rest())
    assert sent[0][0] - began < 0.1 < sent[1][0] - began  # the first event did not wait for the second
