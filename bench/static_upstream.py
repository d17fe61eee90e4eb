"""A static upstream for every provider kind: bench/provider_fixtures.py's bodies, by path, for any method.

    python -m bench.static_upstream --port 8001

A raw asyncio HTTP/1.1 responder (like bench/upstream.py, which serves OpenAI's bodies only): keep-alive,
pipelining, request bodies skipped by Content-Length. It serves Bedrock's binary event stream too, which
nginx's ``return 200 '...'`` cannot.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from typing import cast

from bench.provider_fixtures import ROUTES


def _response(content_type: str, body: bytes) -> bytes:
    head = ["HTTP/1.1 200 OK", "Server: bench-static", f"Content-Type: {content_type}", f"Content-Length: {len(body)}"]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


ANSWERS = {path.encode(): _response(kind, body) for path, (kind, body) in ROUTES.items()}
NOT_FOUND = b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"


class Responder(asyncio.Protocol):
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
            length = 0
            for line in head[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            if len(self.buffer) < end + 4 + length:
                return
            del self.buffer[: end + 4 + length]
            path = (head[0].split(b" ") + [b"", b""])[1]
            self.transport.write(ANSWERS.get(path, NOT_FOUND))

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None


async def serve(port: int) -> None:
    server = await asyncio.get_running_loop().create_server(Responder, "127.0.0.1", port, backlog=1024)
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
