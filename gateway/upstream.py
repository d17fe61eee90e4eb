"""The only place that talks HTTP to providers: pooled aiohttp sessions, timeouts, error mapping.

aiohttp is the upstream client because it measured about 4x cheaper per call than httpx on this
machine kind (DESIGN.md); that CPU is most of the gateway's per-request budget. One session (one
connection pool) per provider account, built in the app lifespan.

Timeouts: ``connect`` bounds TCP/TLS set-up, ``first_byte`` bounds the wait for response headers,
``stream_idle`` bounds each gap between body reads, ``total`` bounds the whole exchange. Every
failure becomes an ``UpstreamError`` subclass; a cancelled caller closes its connection at once
(aiohttp drops rather than reuses a connection whose response was not read to the end).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

import aiohttp
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    stop_any,
    stop_before_delay,
)

from gateway.config.model import Account, Timeouts
from gateway.errors import UpstreamConnection, UpstreamError, UpstreamTimeout
from gateway.providers.base import Provider
from gateway.sse import SSEDecoder

_MAX_ERROR_BODY = 64 * 1024

T = TypeVar("T")


@dataclass
class Exchange:
    """An upstream response whose headers have arrived; the body is read with ``read`` or ``events``."""

    response: aiohttp.ClientResponse
    deadline: float
    idle: float

    @property
    def headers(self) -> Mapping[str, str]:
        return self.response.headers

    async def read(self) -> bytes:
        """The whole body. Providers send non-streamed answers at once, so a gap longer than the idle
        timeout means a stalled upstream, not a slow one."""
        try:
            async with asyncio.timeout_at(self._loop_deadline(self.idle)):
                return await self.response.read()
        except TimeoutError:
            raise UpstreamTimeout("the upstream response did not complete in time") from None
        except (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError) as e:
            raise UpstreamConnection(f"the upstream connection failed mid-response ({type(e).__name__})") from None
        finally:
            self.response.release()

    async def events(self) -> AsyncGenerator[bytes, None]:
        """SSE data payloads as they arrive; raises UpstreamError if the stream breaks or idles."""
        decoder = SSEDecoder()
        content = self.response.content
        loop = asyncio.get_running_loop()
        mono_to_loop = loop.time() - time.monotonic()
        try:
            async with asyncio.timeout(None) as timer:
                while True:
                    now = time.monotonic()
                    timer.reschedule(min(self.deadline, now + self.idle) + mono_to_loop)
                    chunk = await content.readany()
                    if not chunk:
                        break
                    for event in decoder.feed(chunk):
                        yield event
        except TimeoutError:
            raise UpstreamTimeout("the upstream stream went idle or ran past its deadline") from None
        except (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError) as e:
            raise UpstreamConnection(f"the upstream stream broke ({type(e).__name__})") from None
        finally:
            self.close()
        if decoder.pending.strip():
            raise UpstreamConnection("the upstream stream ended in the middle of an event")

    def close(self) -> None:
        self.response.close()

    def _loop_deadline(self, within: float) -> float:
        remaining = min(self.deadline - time.monotonic(), within)
        return asyncio.get_running_loop().time() + remaining


class Upstream:
    def __init__(self, accounts: tuple[Account, ...], timeouts: Timeouts, max_connections: int) -> None:
        self._accounts = accounts
        self._timeouts = timeouts
        self._max_connections = max_connections
        self._sessions: dict[str, aiohttp.ClientSession] = {}

    async def start(self) -> None:
        t = self._timeouts
        for account in self._accounts:
            connector = aiohttp.TCPConnector(limit=self._max_connections, ttl_dns_cache=300)
            self._sessions[account.name] = aiohttp.ClientSession(
                connector=connector,
                timeout=aiohttp.ClientTimeout(total=None, connect=t.connect, sock_connect=t.connect),
                skip_auto_headers=("User-Agent",),
                auto_decompress=True,
            )

    async def close(self) -> None:
        for session in self._sessions.values():
            await session.close()
        self._sessions.clear()

    async def send(
        self, account: Account, provider: Provider, url: str, headers: Mapping[str, str], body: bytes
    ) -> Exchange:
        """POST and wait for the headers; an error status is read, translated and raised."""
        t = self._timeouts
        deadline = time.monotonic() + t.total
        try:
            async with asyncio.timeout(min(t.first_byte, t.total)):
                response = await self._sessions[account.name].post(url, data=body, headers=headers)
        except TimeoutError:
            raise UpstreamTimeout("the upstream did not answer in time") from None
        except aiohttp.ClientConnectorError:
            raise UpstreamConnection(
                f"could not connect to provider account {account.name!r}", code="upstream_connect_failed"
            ) from None
        except aiohttp.ClientConnectionError as e:
            raise UpstreamConnection(f"the upstream connection failed ({type(e).__name__})") from None
        exchange = Exchange(response, deadline, t.stream_idle)
        if response.status >= 400:
            raise await _error(exchange, provider)
        return exchange


async def _error(exchange: Exchange, provider: Provider) -> UpstreamError:
    try:
        async with asyncio.timeout(min(5.0, exchange.idle)):
            body = await exchange.response.content.read(_MAX_ERROR_BODY)
    except (TimeoutError, aiohttp.ClientError):
        body = b""
    finally:
        exchange.close()
    return provider.from_error(exchange.response.status, body, exchange.response.headers)


async def retrying(
    call: Callable[[], Awaitable[T]],
    retries: int,
    initial: float,
    maximum: float,
    deadline: float,
    worth_retrying: Callable[[BaseException], bool],
) -> T:
    """``call()``, tried again as ``same_deployment_retries`` allows while its failure is worth retrying.

    The first try runs bare: setting tenacity up leaves ~40 objects in reference cycles per request
    (measured: most of the garbage collector's work), and most requests need one try. A failed first
    try is replayed as tenacity's first attempt, so backoff, Retry-After and the stop rules count it.
    """
    replay: Exception | None = None
    try:
        return await call()
    except Exception as error:
        if retries < 1:
            raise
        replay = error
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

    >>> async for attempt in same_deployment_retries(1, 0.2, 2.0, deadline, transient):
    ...     with attempt:
    ...         await send()
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
