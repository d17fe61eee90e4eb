"""``/v1/chat/completions`` and ``/v1/embeddings``: authenticate, check, route, relay.

The endpoints are plain ASGI callables rather than Starlette request/response functions: streams
need their own response (``StreamRelay``) and the hot path skips a layer of exception wrapping.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from gateway.accesslog import RequestRecord
from gateway.api.disconnect import DisconnectGuard
from gateway.api.intake import check_chat, check_embeddings, parse_object, read_body, request_id
from gateway.api.respond import error_response, finish, json_response, usage_of
from gateway.api.stream import StreamRelay
from gateway.errors import GatewayError, UpstreamConnection
from gateway.providers.base import Endpoint
from gateway.routing.execute import attempt
from gateway.routing.resolve import candidates
from gateway.runtime import Runtime
from gateway.upstream import Exchange


async def _read_json(exchange: Exchange) -> bytes:
    return await exchange.read()


async def _first_event(exchange: Exchange) -> tuple[bytes, AsyncGenerator[bytes, None]]:
    """A stream counts as answered only once its first event is here; until then fallback is invisible."""
    events = exchange.events()
    try:
        first = await events.__anext__()
    except StopAsyncIteration:
        raise UpstreamConnection("the upstream stream ended before its first event") from None
    except BaseException:
        await events.aclose()
        raise
    return first, events


class ProxyEndpoint:
    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        self.path = "/v1/chat/completions" if endpoint == "chat" else "/v1/embeddings"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        rt: Runtime = request.app.state.runtime
        record = RequestRecord(request_id(request), self.path, time.perf_counter())
        rt.metrics.inflight.inc()
        try:
            response = await self._handle(rt, request, record)
        except GatewayError as e:
            response = error_response(e, record)
        if isinstance(response, StreamRelay):
            await response(scope, receive, send)  # finishes the record itself
            return
        finish(rt, record, disconnected=record.status == 499)
        await response(scope, receive, send)

    async def _handle(self, rt: Runtime, request: Request, record: RequestRecord) -> Response | StreamRelay:
        key = rt.keys.authenticate(request.headers.get("authorization"))
        record.key_name = key.name
        body = parse_object(await read_body(request, rt.settings.server.max_body_bytes))
        model = check_chat(body) if self.endpoint == "chat" else check_embeddings(body)
        found = candidates(rt.index, key, model, "chat" if self.endpoint == "chat" else "embedding")
        record.model = model
        record.stream = self.endpoint == "chat" and body.get("stream") is True
        if rt.draining:
            rt.log.debug("serving during drain", {"request_id": record.request_id})
        async with DisconnectGuard(request.receive) as guard:
            if record.stream:
                deployment, (first, rest) = await attempt(
                    rt, record, found, body, self.endpoint, _first_event
                )
            else:
                deployment, payload = await attempt(rt, record, found, body, self.endpoint, _read_json)
        if guard.disconnected:
            record.status = 499
            return Response(status_code=499)
        record.deployment = deployment.id
        if record.stream:
            return StreamRelay(rt, record, first, rest, _wants_usage(body))
        usage_of(payload, record)
        return json_response(payload, record)


def _wants_usage(body: dict[str, Any]) -> bool:
    options = body.get("stream_options")
    return isinstance(options, dict) and options.get("include_usage") is True
