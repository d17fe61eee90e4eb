"""The only place that talks HTTP to providers: pooled aiohttp sessions, timeouts, error mapping. What comes
back is read, within its bounds, by ``gateway.exchange``.

aiohttp is the upstream client because it measured about 4x cheaper per call than httpx on this
machine kind (ARCHITECTURE.md); that CPU is most of the gateway's per-request budget. One session (one
connection pool) per provider account, built in the app lifespan.

Timeouts: ``pool`` bounds the wait for a free connection in the account's pool, a semaphore of
``server.max_connections_per_account`` (aiohttp's own limit queued inside ``connect``, so a full pool read
as a provider timeout and opened its circuit; running out is now an ``UpstreamPoolExhausted``);
``connect`` bounds DNS, TCP and TLS set-up, ``first_byte`` the wait for response headers, ``stream_idle``
each gap between body reads, ``total`` the whole exchange. A header line over ``max_response_header_bytes``
or a bad status line is an ``UpstreamProtocol`` failure.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping

import aiohttp

from gateway.config.model import Account, ServerSettings
from gateway.errors import (
    UpstreamConnection,
    UpstreamError,
    UpstreamPoolExhausted,
    UpstreamProtocol,
    UpstreamTimeout,
    redact,
)
from gateway.exchange import Exchange, Rules, SdkExchange, Slot, broken
from gateway.metrics import Metrics
from gateway.providers.base import Provider, SdkCall
from gateway.time_limit import time_limit

_MAX_ERROR_BODY = 64 * 1024  # an error answer is read this far; its message is all that is kept


class Upstream:
    def __init__(
        self,
        accounts: tuple[Account, ...],
        server: ServerSettings,
        metrics: Metrics,
        secrets: tuple[str, ...],
        max_retry_after: float,
    ) -> None:
        self._accounts = accounts
        self._server = server
        self._timeouts = server.timeouts
        self._metrics = metrics
        self._rules = Rules(
            server.max_response_bytes, server.max_stream_event_bytes, server.max_stream_bytes, max_retry_after, secrets
        )
        self._sessions: dict[str, aiohttp.ClientSession] = {}
        self._pools: dict[str, asyncio.Semaphore] = {}

    async def start(self) -> None:
        t, header_bytes = self._timeouts, self._server.max_response_header_bytes
        for account in self._accounts:
            # limit=0: the connector never queues (a queue ``connect`` would time); the semaphore bounds it.
            connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=300)
            self._sessions[account.name] = aiohttp.ClientSession(
                connector=connector,
                timeout=aiohttp.ClientTimeout(total=None, connect=t.connect, sock_connect=t.connect),
                skip_auto_headers=("User-Agent",),
                auto_decompress=True,
                max_line_size=header_bytes,
                max_field_size=header_bytes,
            )
            self._pools[account.name] = asyncio.Semaphore(self._server.max_connections_per_account)

    async def close(self) -> None:
        for session in self._sessions.values():
            await session.close()
        self._sessions.clear()

    async def slot(self, account: Account) -> Slot:
        """A place in the account's pool, waiting up to ``timeouts.pool`` for one; the wait is measured only
        when there is one (a free slot costs no clock reads)."""
        pool = self._pools[account.name]
        if not pool.locked():
            await pool.acquire()  # free: returns without suspending
            return Slot(pool)
        started = time.monotonic()
        try:
            async with asyncio.timeout(self._timeouts.pool):
                await pool.acquire()
        except TimeoutError:
            self._metrics.pool_timeouts.labels(account.name).inc()
            raise UpstreamPoolExhausted(
                f"every connection to provider account {account.name!r} is busy "
                f"(server.max_connections_per_account: {self._server.max_connections_per_account}); "
                f"none came free within {self._timeouts.pool}s"
            ) from None
        finally:
            self._metrics.pool_wait.labels(account.name).observe(time.monotonic() - started)
        return Slot(pool)

    async def send(
        self, slot: Slot, account: Account, provider: Provider, url: str, headers: Mapping[str, str], body: bytes
    ) -> Exchange:
        """POST and wait for the headers, holding ``slot`` (from ``slot()``): the exchange returned keeps it,
        a failure gives it back. An error status is read, translated and raised."""
        t = self._timeouts
        deadline = time.monotonic() + t.total
        error: UpstreamError
        try:
            with time_limit(min(t.first_byte, t.total)):
                response = await self._sessions[account.name].post(
                    url, data=body, headers=headers, allow_redirects=False
                )
        except TimeoutError:
            error = UpstreamTimeout("the upstream did not answer in time")
        except aiohttp.ClientConnectorError:
            error = UpstreamConnection(
                f"could not connect to provider account {account.name!r}", code="upstream_connect_failed"
            )
        except aiohttp.ClientError as e:
            error = broken(e, "before its answer")
        except BaseException:
            slot.release()
            raise
        else:
            exchange = Exchange(response, deadline, t.stream_idle, self._rules, slot, provider)
            if response.status >= 400:
                raise await _error(exchange, provider)
            if response.status >= 300:
                exchange.close()
                raise UpstreamProtocol(f"the upstream answered {response.status} (redirects are not followed)")
            return exchange
        slot.release()
        raise error

    async def call(self, slot: Slot, call: SdkCall, provider: Provider, body: bytes) -> Exchange:
        """One try through a provider's library (``Provider.sdk``), holding ``slot`` as ``send`` does: the
        answer once its first byte is known, within ``first_byte``; a failure gives the slot back."""
        t = self._timeouts
        deadline = time.monotonic() + t.total
        try:
            async with asyncio.timeout(min(t.first_byte, t.total)):
                answer = await call(body, t.total)
        except TimeoutError:
            slot.release()
            raise UpstreamTimeout("the upstream did not answer in time") from None
        except UpstreamError as e:  # the library's words may hold any configured secret (a URL's, a key)
            slot.release()
            e.message = redact(e.message, self._rules.secrets)
            raise
        except BaseException:
            slot.release()
            raise
        return SdkExchange(answer, deadline, t.stream_idle, self._rules, slot, provider)


async def _error(exchange: Exchange, provider: Provider) -> UpstreamError:
    rules, content = exchange.rules, exchange.response.content
    pieces: list[bytes] = []
    left = min(_MAX_ERROR_BODY, rules.max_body)
    try:
        async with asyncio.timeout(min(5.0, exchange.idle)):
            while left > 0 and (piece := await content.read(left)):
                pieces.append(piece)
                left -= len(piece)
    except (TimeoutError, aiohttp.ClientError):
        pass  # what arrived is all there is to read
    finally:
        exchange.close()
    response = exchange.response
    return provider.from_error(
        response.status, b"".join(pieces), response.headers, rules.secrets, rules.max_retry_after
    )
