"""One API request on its way through the fake: the request, what it is answered with, and how.

Every provider mode of the fake (OpenAI's family in ``server``, Anthropic's Messages in ``anthropic``, Bedrock's
Converse in ``bedrock``) answers through it, in its provider's header style.
"""

from __future__ import annotations

import secrets
import socket
import struct
import time
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

from gateway.fake.state import FakeState


@dataclass
class Exchange:
    """One API request on its way through the fake."""

    request: web.Request
    state: FakeState
    record: dict[str, Any]  # the entry in stats.last_requests; its "status" is filled in on the way
    started: float = field(default_factory=time.monotonic)
    request_id: str = field(default_factory=lambda: "req_" + secrets.token_hex(16))
    limit_headers: dict[str, str] = field(default_factory=dict)
    response: web.StreamResponse | None = None
    closed_by_us: bool = False  # reset/cut: the fake closed the connection, the client did not leave
    style: str = "openai"  # whose headers every answer carries: "openai", "anthropic" or "bedrock"

    def headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        if self.style == "anthropic":
            base = {"request-id": self.request_id}
        elif self.style == "bedrock":
            base = {"x-amzn-requestid": self.request_id}
        else:
            elapsed = int((time.monotonic() - self.started) * 1000)
            base = {"x-request-id": self.request_id, "openai-processing-ms": str(elapsed)}
        return {**base, **self.limit_headers, **(extra or {})}

    def json(self, status: int, body: Any, extra: dict[str, str] | None = None) -> web.Response:
        self.record["status"] = status
        payload = orjson.dumps(body)
        return web.Response(status=status, body=payload, content_type="application/json", headers=self.headers(extra))

    async def start_stream(self, content_type: str, length: int | None = None) -> web.StreamResponse:
        response = web.StreamResponse(status=200, headers=self.headers({"cache-control": "no-cache"}))
        response.content_type = content_type
        if length is not None:
            response.content_length = length
        self.record["status"] = 200
        self.response = response
        await response.prepare(self.request)
        return response

    def close_connection(self, reset: bool) -> None:
        """Drop the connection: with a TCP RST (``reset``) or after flushing what was written."""
        self.closed_by_us = True
        transport = self.request.transport
        if transport is None:
            return
        if reset:
            sock = transport.get_extra_info("socket")
            if sock is not None:  # linger 0 turns close into an RST
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            transport.abort()
        else:
            transport.close()
