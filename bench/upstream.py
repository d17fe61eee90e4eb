"""Fallback fake upstream when nginx is missing: a raw asyncio HTTP/1.1 responder.

    python -m bench.upstream --port 8001

POST /v1/chat/completions answers the static chat completion, POST /stream/v1/chat/completions
the static SSE body, GET /healthz "ok". Keep-alive and pipelining work; request bodies must carry
a Content-Length (chunked uploads get 411 and the connection is closed).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from typing import cast

from bench.fixtures import HEALTH_PATH, JSON_PATH, STREAM_PATH, chat_completion, chat_completion_stream


def _response(status: str, content_type: str, body: bytes, close: bool = False) -> bytes:
    head = [f"HTTP/1.1 {status}", "Server: bench-upstream", f"Content-Type: {content_type}"]
    head.append(f"Content-Length: {len(body)}")
    if close:
        head.append("Connection: close")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


ROUTES: dict[tuple[bytes, bytes], bytes] = {
    (b"POST", JSON_PATH.encode()): _response("200 OK", "application/json", chat_completion()),
    (b"POST", STREAM_PATH.encode()): _response("200 OK", "text/event-stream", chat_completion_stream()),
    (b"GET", HEALTH_PATH.encode()): _response("200 OK", "text/plain", b"ok"),
}
NOT_FOUND = _response("404 Not Found", "application/json", b'{"error":{"message":"not found"}}')
LENGTH_REQUIRED = _response("411 Length Required", "text/plain", b"", close=True)


class Responder(asyncio.Protocol):
    """One connection: parse request heads, skip bodies by Content-Length, answer from ROUTES."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while self.transport is not None:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.buffer[:end]).split(b"\r\n")
            length, close = 0, False
            for line in head[1:]:
                name, _, value = line.partition(b":")
                name = name.strip().lower()
                if name == b"content-length":
                    length = int(value)
                elif name == b"transfer-encoding":
                    self.transport.write(LENGTH_REQUIRED)
                    self.transport.close()
                    self.transport = None
                    return
                elif name == b"connection" and value.strip().lower() == b"close":
                    close = True
            if len(self.buffer) < end + 4 + length:
                return
            del self.buffer[: end + 4 + length]
            method, path = (head[0].split(b" ") + [b"", b""])[:2]
            self.transport.write(ROUTES.get((method, path), NOT_FOUND))
            if close:
                self.transport.close()
                self.transport = None

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None


async def serve(port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Responder, "127.0.0.1", port, backlog=1024)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    port = parser.parse_args().port
    with contextlib.suppress(ImportError):
        import uvloop

        uvloop.install()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(port))


if __name__ == "__main__":
    main()
