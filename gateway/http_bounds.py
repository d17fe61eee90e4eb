"""Bounds on what a client may send, enforced by the HTTP server before the app sees a byte.

uvicorn's httptools protocol has no limit on the size of a request head, no deadline for reading a head
or a body, and arms its keep-alive timer only after a response, so a connection that never sends
anything stays open forever. ``BoundedHttpTools`` adds, per connection:

- the request line and headers together are at most ``max_header_bytes``: beyond, 431 and close, having
  fed the parser no more than the cap (a 100 MB URL is never buffered);
- a head must be complete ``header_timeout_seconds`` after its first byte, and a body
  ``body_timeout_seconds`` after its head (slowloris): otherwise 408 and close;
- a connection with no request under way is closed after ``keepalive_timeout_seconds``, a new one that
  never sends anything included;
- at most ``max_connections`` connections per worker: a connection beyond the cap makes room by closing
  the one idle the longest (with no request under way, as nginx reuses keep-alive connections); when
  every one has a request under way, the newcomer gets 503 and is closed.

Every closure is counted in ``gateway_client_connections_refused_total{reason}``. Everything else
(pipelining, keep-alive, flow control, uvicorn's keep-alive timer after a response) is uvicorn's. The
per-worker state is a ``ClientGuard`` that the app's lifespan hands over in the ASGI lifespan state
(``app_state``, which uvicorn gives every connection), so the protocol and the app share the metrics
without any global.

The fast path costs an integer comparison per read and two dict operations per request: timers are armed
only for a head or a body that did not arrive in one piece.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from gateway.config.model import ServerSettings
from gateway.errors import GatewayError, InvalidRequest, ServiceUnavailable, to_openai_error

GUARD = "gateway.client_guard"  # the key of the ClientGuard in the ASGI lifespan state

_IDLE, _HEAD, _BODY = 0, 1, 2  # what a connection is reading: nothing yet, a request head, a request body
_base = HttpToolsProtocol  # called explicitly on the per-request paths: cheaper than super()


def _answer(status: int, reason: str, error: GatewayError, code: str) -> bytes:
    """A whole response with the error in OpenAI's shape, closing the connection."""
    error.code = code
    body = to_openai_error(error)
    headers = {"content-type": "application/json", "content-length": str(len(body)), **error.headers()}
    head = f"HTTP/1.1 {status} {reason}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    return (head + "connection: close\r\n\r\n").encode() + body


@dataclass
class ClientGuard:
    """What every connection of one worker shares: the bounds, the idle connections, the refusal count."""

    max_header_bytes: int
    header_timeout: float
    body_timeout: float
    max_connections: int
    log: logging.Logger  # uvicorn's per-connection warnings go here (the bounded writer), not to stderr
    refused: Callable[[str], None]  # counts one closure by reason
    # Connections with no request under way, the one idle the longest first: what a newcomer may evict.
    idle: dict[BoundedHttpTools, None] = field(default_factory=dict)
    answers: dict[str, bytes] = field(default_factory=dict)

    @classmethod
    def build(cls, server: ServerSettings, log: logging.Logger, refused: Callable[[str], None]) -> ClientGuard:
        guard = cls(
            server.max_header_bytes,
            server.header_timeout_seconds,
            server.body_timeout_seconds,
            server.max_connections,
            log,
            refused,
        )
        timeout = "Request Timeout"
        guard.answers.update(
            header_too_large=_answer(
                431,
                "Request Header Fields Too Large",
                InvalidRequest(f"the request line and headers exceed {server.max_header_bytes} bytes"),
                "request_header_too_large",
            ),
            header_timeout=_answer(
                408,
                timeout,
                InvalidRequest(f"the request headers did not arrive within {server.header_timeout_seconds:g} s"),
                "request_timeout",
            ),
            body_timeout=_answer(
                408,
                timeout,
                InvalidRequest(f"the request body did not arrive within {server.body_timeout_seconds:g} s"),
                "request_timeout",
            ),
            max_connections=_answer(
                503,
                "Service Unavailable",
                ServiceUnavailable(f"all {server.max_connections} connections have requests under way"),
                "too_many_connections",
            ),
        )
        return guard


class BoundedHttpTools(HttpToolsProtocol):
    """uvicorn's httptools protocol with the bounds above; pass the class as ``uvicorn.Config(http=...)``."""

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.guard: ClientGuard = app_state[GUARD]
        self.logger = self.guard.log
        self._head_left = self.guard.max_header_bytes  # head bytes the current (or next) request may still send
        self._phase = _IDLE
        self._heads = 0  # heads completed on this connection
        self._clock: asyncio.TimerHandle | None = None  # the head's or the body's deadline

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        guard = self.guard
        if len(self.connections) > guard.max_connections and not self._evict_idle():
            self._refuse("max_connections")
            return
        guard.idle[self] = None
        # uvicorn's keep-alive timer, armed for a new connection too (uvicorn arms it only after a response):
        # uvicorn cancels it on the first byte.
        self.timeout_keep_alive_task = self.loop.call_later(self.timeout_keep_alive, self._never_spoke)

    def connection_lost(self, exc: Exception | None) -> None:
        self.guard.idle.pop(self, None)
        self._stop_clock()
        self._unset_keepalive_if_required()  # uvicorn does only when the connection ended cleanly
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._phase != _BODY:
            if len(data) > self._head_left:
                self._feed_capped(data)
                return
            self._head_left -= len(data)
        _base.data_received(self, data)
        if self._phase and self._clock is None:  # a head or a body is pending: its deadline starts now
            self._start_clock()

    def _feed_capped(self, data: bytes) -> None:
        """Feed no more than the head may still take; refuse unless the head ended within it."""
        left, heads = self._head_left, self._heads
        _base.data_received(self, data[:left])
        if self._heads == heads:
            self._refuse("header_too_large")
        elif not self.transport.is_closing():
            self.data_received(data[left:])

    def on_message_begin(self) -> None:
        _base.on_message_begin(self)
        self._phase = _HEAD

    def on_headers_complete(self) -> None:
        self._heads += 1
        self._phase = _BODY
        self._stop_clock()
        self.guard.idle.pop(self, None)  # a request is under way: not evictable
        _base.on_headers_complete(self)

    def on_message_complete(self) -> None:
        self._phase = _IDLE
        self._head_left = self.guard.max_header_bytes
        self._stop_clock()
        _base.on_message_complete(self)

    def on_response_complete(self) -> None:
        pipelined = bool(self.pipeline)  # uvicorn starts the next pipelined request, if any
        _base.on_response_complete(self)
        if not pipelined and not self.transport.is_closing():
            self.guard.idle[self] = None

    def _start_clock(self) -> None:
        if self._phase == _HEAD:
            self._clock = self.loop.call_later(self.guard.header_timeout, self._too_slow, "header_timeout")
        else:
            self._clock = self.loop.call_later(self.guard.body_timeout, self._too_slow, "body_timeout")

    def _stop_clock(self) -> None:
        if self._clock is not None:
            self._clock.cancel()
            self._clock = None

    def _too_slow(self, reason: str) -> None:
        self._clock = None
        self._refuse(reason)

    def _never_spoke(self) -> None:
        self.timeout_keep_alive_task = None
        if not self.transport.is_closing():
            self.guard.refused("idle")
            self.transport.close()

    def _evict_idle(self) -> bool:
        idle = self.guard.idle
        while idle:
            victim = next(iter(idle))  # the oldest (dicts keep insertion order)
            del idle[victim]
            if not victim.transport.is_closing():
                victim.transport.close()
                self.guard.refused("evicted")
                return True
        return False

    def _refuse(self, reason: str) -> None:
        """Answer ``reason``'s error unless another response may be under way, then close."""
        self._stop_clock()
        if self.transport.is_closing():
            return
        cycle = self.cycle
        if cycle is None or cycle.response_complete:
            self.transport.write(self.guard.answers[reason])
        elif self._phase == _BODY and not self.pipeline and not cycle.response_started:
            cycle.disconnected = True  # the app waiting for this body must not answer after the 408
            self.transport.write(self.guard.answers[reason])
        self.transport.close()
        self.guard.refused(reason)
