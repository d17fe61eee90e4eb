"""A lean Redis connection for the one call on every request's path (the admission script).

redis-py spends well over 100 µs of CPU per call on argument encoding, pool bookkeeping and
parsing layers, more than the rest of the limiter. Here one connection carries many calls at
once: commands issued in one turn of the event loop go out in one write, Redis answers in order,
and each reply completes the oldest waiting future (hiredis parses). Every call has the same
deadline, so one timer per connection enforces them all (an ``asyncio.timeout`` per call cost as
much as the rest of the call). Plain ``redis://`` only; TLS and Cluster URLs keep using redis-py, as
do every other limiter call.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any
from urllib.parse import unquote, urlsplit

import hiredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError

from gateway.time_limit import grace


def pack(*parts: bytes) -> bytes:
    """RESP array of bulk strings.

    >>> pack(b"PING")
    b'*1\\r\\n$4\\r\\nPING\\r\\n'
    """
    return b"".join([b"*%d\r\n" % len(parts), *map(bulk, parts)])


def bulk(part: bytes) -> bytes:
    """One RESP bulk string (formatting only its header: ``%s`` would copy the part through the formatter).

    >>> bulk(b"k")
    b'$1\\r\\nk\\r\\n'
    """
    return b"$%d\r\n" % len(part) + part + b"\r\n"


class _Protocol(asyncio.Protocol):
    def __init__(self, timeout: float) -> None:
        self.loop = asyncio.get_running_loop()
        self.timeout = timeout
        self.reader = hiredis.Reader()
        self.waiting: deque[tuple[asyncio.Future[Any], float]] = deque()  # (caller, its deadline) in send order
        self.transport: asyncio.WriteTransport | None = None
        self._out: list[bytes] = []
        self._timer: asyncio.TimerHandle | None = None
        self._armed_for = 0.0  # the loop time the timer was set for
        self._graces = 0  # graces given in a row to a stalled loop (``_expire``)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # a stream transport: it has write()

    def send(self, command: bytes) -> asyncio.Future[Any]:
        future = self.loop.create_future()
        deadline = self.loop.time() + self.timeout
        self.waiting.append((future, deadline))
        if not self._out:
            self.loop.call_soon(self._write)
        self._out.append(command)
        if self._timer is None:
            self._armed_for, self._timer = deadline, self.loop.call_at(deadline, self._expire)
        return future

    def _write(self) -> None:
        out, self._out = self._out, []
        if self.transport is not None:  # else connection_lost has failed the waiting callers
            self.transport.write(out[0] if len(out) == 1 else b"".join(out))

    def _expire(self) -> None:
        """Fail every caller past its deadline; deadlines grow in send order, so stop at the first not due.

        A timer that finds the loop stalled first gives Redis more loop time (``time_limit.grace``), again while
        each check finds it late, up to a timeout of graces: the process was not listening, and a command queued
        for writing just before the stall has only now gone out."""
        self._timer = None
        now = self.loop.time()
        until = grace(now, self._armed_for, self._graces, self.timeout)
        self._graces = 0 if until is None else self._graces + 1
        for future, deadline in self.waiting:
            if future.done():
                continue
            when = deadline if deadline > now else until
            if when is not None:
                self._armed_for, self._timer = when, self.loop.call_at(when, self._expire)
                return
            future.set_exception(TimeoutError("Redis did not answer within the deadline"))

    def data_received(self, data: bytes) -> None:
        self.reader.feed(data)
        while (reply := self.reader.gets()) is not False:
            future, _ = self.waiting.popleft()
            if future.done():  # its caller gave up (deadline, disconnect): the reply is dropped
                continue
            if isinstance(reply, hiredis.ReplyError):
                text = str(reply)
                future.set_exception(NoScriptError(text) if text.startswith("NOSCRIPT") else ResponseError(text))
            else:
                future.set_result(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        while self.waiting:
            future, _ = self.waiting.popleft()
            if not future.done():
                future.set_exception(RedisConnectionError("connection to Redis lost"))


class Pipe:
    """``await pipe.call(b"EVALSHA", sha, b"2", key1, key2, arg)``, answered or failed (``TimeoutError``,
    ``ConnectionError``) within ``timeout`` seconds; reconnects on the next call after a loss."""

    def __init__(self, url: str, timeout: float = 1.0) -> None:
        parts = urlsplit(url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 6379
        self.password = unquote(parts.password) if parts.password else None
        self.username = unquote(parts.username) if parts.username else None
        self.db = int(parts.path.strip("/") or 0)
        self.timeout = timeout
        self._protocol: _Protocol | None = None
        self._connecting: asyncio.Lock | None = None

    @staticmethod
    def supports(url: str) -> bool:
        return url.startswith("redis://") and "cluster=" not in url and "?" not in url

    async def _connect(self) -> _Protocol:
        self._connecting = self._connecting or asyncio.Lock()
        async with self._connecting, asyncio.timeout(self.timeout):
            if self._protocol is None or self._protocol.transport is None:
                loop = asyncio.get_running_loop()
                _, protocol = await loop.create_connection(lambda: _Protocol(self.timeout), self.host, self.port)
                self._protocol = protocol
                if self.password:
                    user = [self.username.encode()] if self.username else []
                    await protocol.send(pack(b"AUTH", *user, self.password.encode()))
                if self.db:
                    await protocol.send(pack(b"SELECT", str(self.db).encode()))
            return self._protocol

    async def call(self, *parts: bytes) -> Any:
        return await self.send(pack(*parts))

    async def send(self, command: bytes) -> Any:
        """Send one command already in RESP (``pack``)."""
        protocol = self._protocol
        if protocol is None or protocol.transport is None:
            protocol = await self._connect()
        return await protocol.send(command)

    def close(self) -> None:
        if self._protocol is not None and self._protocol.transport is not None:
            self._protocol.transport.close()
