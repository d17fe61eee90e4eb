"""A hostile provider on loopback: answers every request with raw bytes a test chooses.

The well-behaved fake (``gateway.fake``) speaks the providers' formats faithfully; this one is the
provider gone wrong or gone rogue, written at the socket level so it can break HTTP itself::

    with HostileUpstream() as hostile:
        hostile.reply = gzip_bomb(1 << 30)           # every request from now on gets this
        ... drive the gateway, whose account points at hostile.base_url ...
        hostile.requests[-1].headers["authorization"]

A reply is an async function ``(request, writer) -> None`` that writes whatever it likes and may
sleep; the connection is closed after it returns (every answer says ``connection: close``). Large
bodies are written in pieces, so the fake itself never holds them in memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
import zlib
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from types import TracebackType

import orjson


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]  # lower-case names
    body: bytes

    def json(self) -> dict[str, object]:
        parsed = orjson.loads(self.body)
        assert isinstance(parsed, dict)
        return parsed

    def credential(self) -> str:
        """What the gateway presented as its provider credential (bearer token or Azure ``api-key``)."""
        auth = self.headers.get("authorization", "")
        return auth.removeprefix("Bearer ").strip() or self.headers.get("api-key", "")


Reply = Callable[[Request, asyncio.StreamWriter], Awaitable[None]]
_CHUNK = 64 * 1024


def _head(status: int, headers: dict[str, str], reason: str = "OK") -> bytes:
    lines = [f"HTTP/1.1 {status} {reason}", "connection: close", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def completion(content: str = "ok", prompt_tokens: int = 5, completion_tokens: int = 1) -> bytes:
    return orjson.dumps(
        {
            "id": "chatcmpl-hostile",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": "gpt-4o-mini",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }
    )


def chunk(content: str) -> bytes:
    event = {
        "id": "chatcmpl-hostile",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": "gpt-4o-mini",
        "choices": [{"index": 0, "delta": {"content": content}, "finish_reason": None}],
    }
    return b"data: " + orjson.dumps(event) + b"\n\n"


def status(code: int, body: bytes = b"", headers: dict[str, str] | None = None, reason: str = "Whatever") -> Reply:
    """Any status, body and headers (``Retry-After: inf``, an error body...)."""

    async def reply(request: Request, writer: asyncio.StreamWriter) -> None:
        head = {"content-type": "application/json", "content-length": str(len(body)), **(headers or {})}
        writer.write(_head(code, head, reason) + body)

    return reply


def ok_json(content: str = "ok", prompt_tokens: int = 5, completion_tokens: int = 1) -> Reply:
    return status(200, completion(content, prompt_tokens, completion_tokens), reason="OK")


def ok_stream(pieces: int = 3, usage: bool = True) -> Reply:
    async def reply(request: Request, writer: asyncio.StreamWriter) -> None:
        writer.write(_head(200, {"content-type": "text/event-stream"}))
        for n in range(pieces):
            writer.write(chunk(f"t{n} "))
        if usage:
            final = {"id": "x", "object": "chat.completion.chunk", "created": 0, "model": "m", "choices": []}
            final["usage"] = {"prompt_tokens": 5, "completion_tokens": pieces, "total_tokens": 5 + pieces}
            writer.write(b"data: " + orjson.dumps(final) + b"\n\n")
        writer.write(b"data: [DONE]\n\n")

    return reply


def raw(data: bytes) -> Reply:
    """Bytes as they are: a bad status line, half a response..."""

    async def reply(request: Request, writer: asyncio.StreamWriter) -> None:
        writer.write(data)

    return reply


def big_header(size: int) -> Reply:
    """A 200 whose one header line is ``size`` bytes long."""

    async def reply(request: Request, writer: asyncio.StreamWriter) -> None:
        body = completion()
        head = {"content-type": "application/json", "content-length": str(len(body)), "x-padding": "p" * size}
        writer.write(_head(200, head) + body)

    return reply


def filler(size: int, content_type: str = "application/json", length: bool = True) -> Reply:
    """A 200 of ``size`` bytes: one JSON object with a long string (valid JSON, just enormous)."""

    async def reply(request: Request, writer: asyncio.StreamWriter) -> None:
        head = {"content-type": content_type}
        if length:
            head["content-length"] = str(size)
        writer.write(_head(200, head) + b'{"pad":"')
        left = size - len(b'{"pad":"') - len(b'"}')
        while left > 0:
            n = min(_CHUNK, left)
            writer.write(b"x" * n)
            left -= n
            await writer.drain()
        writer.write(b'"}')

    return reply


@dataclass(frozen=True)
class _Bomb:
    compressed: tuple[bytes, ...]


_bombs: dict[tuple[int, bytes], _Bomb] = {}


def _bomb(inflated: int, prefix: bytes) -> _Bomb:
    """gzip of ``prefix`` followed by zeros up to ``inflated`` bytes (about 1 MB of gzip per GiB), cached."""
    found = _bombs.get((inflated, prefix))
    if found is None:
        gz = zlib.compressobj(9, zlib.DEFLATED, 31)
        parts = [gz.compress(prefix)]
        zeros = b"\0" * (1 << 20)
        left = inflated - len(prefix)
        while left > 0:
            parts.append(gz.compress(zeros[: min(left, len(zeros))]))
            left -= len(zeros)
        parts.append(gz.flush())
        found = _bombs[(inflated, prefix)] = _Bomb(tuple(p for p in parts if p))
    return found


def gzip_bomb(inflated: int, stream: bool = False) -> Reply:
    """A small gzip body that inflates to ``inflated`` bytes (JSON, or an SSE stream with no event end)."""
    prefix = b"data: " if stream else b'{"pad":"'
    bomb = _bomb(inflated, prefix)

    async def reply(request: Request, writer: asyncio.StreamWriter) -> None:
        body = b"".join(bomb.compressed)
        content_type = "text/event-stream" if stream else "application/json"
        head = {"content-type": content_type, "content-encoding": "gzip", "content-length": str(len(body))}
        writer.write(_head(200, head))
        for n in range(0, len(body), _CHUNK):
            writer.write(body[n : n + _CHUNK])
            await writer.drain()

    return reply


def endless_event(total: int, per_second: float | None = None, first: bytes = b"") -> Reply:
    """A 200 stream that sends ``first`` then ``total`` bytes of one ``data:`` line that never ends."""

    async def reply(request: Request, writer: asyncio.StreamWriter) -> None:
        writer.write(_head(200, {"content-type": "text/event-stream"}) + first + b"data: ")
        sent = 0
        while sent < total:
            n = min(_CHUNK, total - sent)
            writer.write(b"y" * n)
            sent += n
            await writer.drain()
            if per_second:
                await asyncio.sleep(n / per_second)

    return reply


def many_events(total: int, event: bytes | None = None) -> Reply:
    """A 200 stream of well-formed events adding up to ``total`` bytes, with no ``[DONE]``."""

    async def reply(request: Request, writer: asyncio.StreamWriter) -> None:
        frame = event or chunk("z" * 200)
        writer.write(_head(200, {"content-type": "text/event-stream"}))
        sent = 0
        while sent < total:
            writer.write(frame * 64)
            sent += len(frame) * 64
            await writer.drain()

    return reply


def echo_credential(code: int, template: str = "Incorrect API key provided: {key}") -> Reply:
    """An error answer whose message repeats the credential the gateway presented (as real providers do)."""

    async def reply(request: Request, writer: asyncio.StreamWriter) -> None:
        message = template.format(key=request.credential())
        body = orjson.dumps({"error": {"message": message, "type": "invalid_request_error", "code": None}})
        head = {"content-type": "application/json", "content-length": str(len(body)), "x-echo": request.credential()}
        writer.write(_head(code, head, "Error") + body)

    return reply


def stream_then_error(template: str = "internal failure for {key}", first_error: bool = False) -> Reply:
    """A 200 stream that sends a content chunk (unless ``first_error``), then an error event naming the
    credential, and ends without ``[DONE]``."""

    async def reply(request: Request, writer: asyncio.StreamWriter) -> None:
        writer.write(_head(200, {"content-type": "text/event-stream"}))
        if not first_error:
            writer.write(chunk("partial "))
            await writer.drain()
        error = {"error": {"message": template.format(key=request.credential()), "type": "server_error"}}
        writer.write(b"data: " + orjson.dumps(error) + b"\n\n")

    return reply


def hang(seconds: float = 3600.0) -> Reply:
    """Read the request, then say nothing for ``seconds`` (a connection-pool hog)."""

    async def reply(request: Request, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(seconds)

    return reply


@dataclass
class HostileUpstream:
    reply: Reply = field(default_factory=ok_json)
    host: str = "127.0.0.1"
    requests: list[Request] = field(default_factory=list)
    open_connections: int = 0
    _port: int = 0
    _loop: asyncio.AbstractEventLoop | None = None
    _thread: threading.Thread | None = None
    _stop: asyncio.Event | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self._port}"

    @property
    def base_url(self) -> str:
        return self.url + "/v1"

    def __enter__(self) -> HostileUpstream:
        ready = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main(ready)), daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("the hostile upstream did not start")
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(10)

    @contextlib.contextmanager
    def replying(self, reply: Reply) -> Iterator[HostileUpstream]:
        """``with hostile.replying(hang()): ...``: this reply for the block, the previous one after it."""
        previous, self.reply = self.reply, reply
        try:
            yield self
        finally:
            self.reply = previous

    async def _main(self, ready: threading.Event) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        server = await asyncio.start_server(self._serve, self.host, 0, limit=1 << 20)
        self._port = server.sockets[0].getsockname()[1]
        ready.set()
        async with server:
            await self._stop.wait()
            server.close()
            for task in asyncio.all_tasks() - {asyncio.current_task()}:
                task.cancel()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.open_connections += 1
        try:
            request = await _read_request(reader)
            if request is None:
                return
            self.requests.append(request)
            await self.reply(request, writer)
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            self.open_connections -= 1
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()


async def _read_request(reader: asyncio.StreamReader) -> Request | None:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    method, path, _ = lines[0].split(" ", 2)
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0") or 0)
    body = await reader.readexactly(length) if length else b""
    return Request(method, path, headers, body)
