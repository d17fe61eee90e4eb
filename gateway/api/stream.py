"""Relaying a stream: SSE events pass through as bytes as they arrive, those that arrived together in one write.

The relay counts usage from the provider's usage chunk (asked for on every stream) and drops that
chunk when the client did not ask for it. A failure after the first byte ends the stream with an
OpenAI-style error event and no ``[DONE]``: text already sent is never replayed.
"""

from __future__ import annotations

import time

import orjson
from starlette.types import Receive, Scope, Send

from gateway.api.disconnect import DisconnectGuard
from gateway.api.respond import finish, take_usage, trace_headers
from gateway.errors import GatewayError, UpstreamConnection, to_openai_error
from gateway.limits.model import Reservation
from gateway.record import RequestRecord
from gateway.runtime import Runtime
from gateway.sse import DONE, encode
from gateway.types import Batches, Usage

_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]


class StreamRelay:
    """An ASGI response for a stream whose first event has already arrived."""

    def __init__(
        self,
        rt: Runtime,
        record: RequestRecord,
        first: list[bytes],
        rest: Batches,
        client_wants_usage: bool,
        reservation: Reservation | None,
        prompt_estimate: int,
    ) -> None:
        self.rt, self.record, self.first, self.rest = rt, record, first, rest
        self.client_wants_usage = client_wants_usage
        self.reservation = reservation
        self.prompt_estimate = prompt_estimate
        self.relayed = 0  # content events sent; about one token each, for streams without usage
        self.complete = False  # [DONE] was relayed: the stream ran to its end

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        record = self.record
        record.status = 200
        guard = DisconnectGuard(receive)
        try:
            headers = _HEADERS + trace_headers(record)
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            async with guard:
                try:
                    await self._relay(send)
                except GatewayError as e:
                    record.error_code = e.code or e.type
                    error = encode(to_openai_error(e))
                    await send({"type": "http.response.body", "body": error, "more_body": True})
                await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:  # whatever happened, the upstream is closed and the request counted, logged and settled once
            await self.rest.aclose()
            finish(self.rt, record, disconnected=guard.disconnected, estimate=self._relayed())
            used = self._used()
            if self.reservation is not None and used is not None:
                await self.rt.limiter.settle(self.reservation, used, record.cost_usd)

    def _relayed(self) -> Usage:
        """The stream's tokens as relayed (about one per content event): its price when no usage came."""
        return Usage(self.prompt_estimate, self.relayed)

    def _used(self) -> int | None:
        """Tokens to reconcile with: the provider's usage chunk; else, for a stream that ran to its end, an
        estimate from what was relayed. A stream cut short (client gone, upstream failed) without a usage
        report keeps what its reservation took (None): the provider counted what it generated, or max_tokens,
        which can be far more than the events that reached the client. That is bounded: max_tokens and n
        were checked against the deployment before admission (``routing.bounds``), and a reservation never
        takes more than a bucket holds."""
        record = self.record
        if record.prompt_tokens is not None and record.completion_tokens is not None:
            return record.prompt_tokens + record.completion_tokens
        if not self.complete:
            return None
        return self.prompt_estimate + self.relayed

    async def _relay(self, send: Send) -> None:
        record = self.record
        record.ttft_ms = (time.perf_counter() - record.started) * 1000
        ended = await self._send(send, self.first)
        async for batch in self.rest:
            ended = await self._send(send, batch)
        if not ended:
            raise UpstreamConnection("the upstream stream ended before it was complete")

    async def _send(self, send: Send, batch: list[bytes]) -> bool:
        """Relay events that arrived together, in one write (a write per event cost a system call and a
        server send each); whether the last was [DONE]."""
        body = b"".join([part for event in batch if (part := self._to_client(event)) is not None])
        if body:
            await send({"type": "http.response.body", "body": body, "more_body": True})
        return batch[-1] == DONE

    def _to_client(self, event: bytes) -> bytes | None:
        """What the client gets of ``event`` (None: nothing), its usage taken."""
        if event == DONE:
            self.complete = True
            return encode(DONE)
        if b'"usage"' in event and not _null_usage(event):
            try:
                chunk = orjson.loads(event)
            except orjson.JSONDecodeError:
                chunk = None
            if isinstance(chunk, dict):
                take_usage(self.record, chunk.get("usage"))
                if not self.client_wants_usage and not chunk.get("choices"):
                    return None
        self.relayed += 1
        return encode(event)


def _null_usage(event: bytes) -> bool:
    return b'"usage":null' in event or b'"usage": null' in event
