"""A lean Redis connection for the one call on every request's path (the admission script).

redis-py spends well over 100 µs of CPU per call on argument encoding, pool bookkeeping and
parsing layers, more than the rest of the limiter. Here one connection carries many calls at
once: commands are written as they come, Redis answers in order, and each reply completes the
oldest waiting future (hiredis parses). Plain ``redis://`` only; TLS and Cluster URLs keep using
redis-py, as do every other limiter call.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any
from urllib.parse import unquote, urlsplit

import hiredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError


def pack(*parts: bytes) -> bytes:
    """RESP array of bulk strings.

    >>> pack(b"PING")
    b'*1\\r\\n$4\\r\\nPING\\r\\n'
    """
    out = [b"*%d\r\n" % len(parts)]
    for part in parts:
        out.append(b"$%d\r\n%s\r\n" % (len(part), part))
    return b"".join(out)


class _Protocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.reader = hiredis.Reader()
        self.waiting: deque[asyncio.Future[Any]] = deque()
        self.transport: asyncio.WriteTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # a stream transport: it has write()

    def data_received(self, data: bytes) -> None:
        self.reader.feed(data)
        while (reply := self.reader.gets()) is not False:
            future = self.waiting.popleft()
            if future.done():  # its caller gave up (deadline, disconnect): the reply is dropped
                continue
            if isinstance(reply, hiredis.ReplyError):
                text = str(reply)
                future.set_exception(NoScriptError(text) if text.startswith("NOSCRIPT") else ResponseError(text))
            else:
                future.set_result(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        while self.waiting:
            future = self.waiting.popleft()
            if not future.done():
                future.set_exception(RedisConnectionError("connection to Redis lost"))


class Pipe:
    """``await pipe.call(b"EVALSHA", sha, b"2", key1, key2, arg)``; reconnects on the next call after a loss."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 6379
        self.password = unquote(parts.password) if parts.password else None
        self.username = unquote(parts.username) if parts.username else None
        self.db = int(parts.path.strip("/") or 0)
        self._protocol: _Protocol | None = None
        self._connecting: asyncio.Lock | None = None

    @staticmethod
    def supports(url: str) -> bool:
        return url.startswith("redis://") and "cluster=" not in url and "?" not in url

    async def _connected(self) -> _Protocol:
        if self._protocol is not None and self._protocol.transport is not None:
            return self._protocol
        self._connecting = self._connecting or asyncio.Lock()
        async with self._connecting:
            if self._protocol is None or self._protocol.transport is None:
                loop = asyncio.get_running_loop()
                _, protocol = await loop.create_connection(_Protocol, self.host, self.port)
                self._protocol = protocol
                if self.password:
                    user = [self.username.encode()] if self.username else []
                    await self._send(protocol, b"AUTH", *user, self.password.encode())
                if self.db:
                    await self._send(protocol, b"SELECT", str(self.db).encode())
            return self._protocol

    async def _send(self, protocol: _Protocol, *parts: bytes) -> Any:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        protocol.waiting.append(future)
        assert protocol.transport is not None
        protocol.transport.write(pack(*parts))
        return await future

    async def call(self, *parts: bytes) -> Any:
        return await self._send(await self._connected(), *parts)

    def close(self) -> None:
        if self._protocol is not None and self._protocol.transport is not None:
            self._protocol.transport.close()
