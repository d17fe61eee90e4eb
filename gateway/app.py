"""``build_app(settings)`` -> the Starlette app; its lifespan opens and closes the upstream pools."""

from __future__ import annotations

import gc
import logging
import os
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from gateway.api.intake import request_id
from gateway.api.respond import openai_error
from gateway.api.routes import PROXIED, routes
from gateway.config import config_path, load_settings, with_flags
from gateway.config.model import Settings
from gateway.errors import GatewayError, InvalidRequest, ModelNotFound
from gateway.http_bounds import GUARD, ClientGuard
from gateway.lifecycle import install_drain
from gateway.providers import REGISTRY
from gateway.providers.base import Provider
from gateway.runtime import Runtime

_log = logging.getLogger("gateway")


# The handlers below answer outside the endpoints (no route, wrong method, a bug), so they tag the answer with
# its request id themselves; the endpoints do it on their own answers.


async def _http_error(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    headers = {**(getattr(exc, "headers", None) or {}), "x-request-id": request_id(request.headers)}  # 405 names Allow
    if status == 404:
        error = ModelNotFound(f"no route {request.method} {request.url.path}", code="not_found")
        return openai_error(error, headers=headers)
    if status == 405:
        message = f"method {request.method} is not allowed on {request.url.path}"
        return openai_error(InvalidRequest(message, code="method_not_allowed"), 405, headers)
    return openai_error(InvalidRequest(str(getattr(exc, "detail", "bad request"))), status, headers)


async def _client_left(request: Request, exc: Exception) -> Response:
    """A client that left mid-upload: nobody to answer (the proxy endpoints log it as a 499 themselves)."""
    return Response(status_code=499, headers={"x-request-id": request_id(request.headers)})


async def _internal_error(request: Request, exc: Exception) -> Response:
    _log.error("unhandled error on %s: %s", request.url.path, type(exc).__name__)
    error = GatewayError("the gateway failed to handle this request")
    return openai_error(error, headers={"x-request-id": request_id(request.headers)})


def _tune_collector() -> None:
    """Garbage collection, set for a proxy's heap (measured with py-spy --native and gc callbacks).

    What is alive once started (modules, config, catalog, pools) lives as long as the process: frozen,
    it leaves the collector's generations, so full collections stop walking it. A request leaves no
    reference cycles behind (tests/api/test_no_cycles.py), so the young-generation collections that
    ran every 700 allocations found nothing and cost ~5% of CPU under load: run them every 50,000.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 10)


class GatewayApp(Starlette):
    """Starlette, with the proxied endpoints (``routes.PROXIED``) served directly: they catch every error
    themselves, so the middleware's exception layers and the router's match over the table are work for
    nothing on the path nearly every request takes (a path under a ``root_path`` goes the general way)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and (proxied := PROXIED.get(scope["path"])):
            scope["app"] = self
            await proxied(scope, receive, send)
        else:
            await super().__call__(scope, receive, send)


def build_app(settings: Settings, registry: Mapping[str, Provider] = REGISTRY) -> Starlette:
    """The app for ``settings``; ``registry`` holds every provider kind there is (tests add their own)."""
    runtime = Runtime.build(settings, registry)

    def refused(reason: str) -> None:
        runtime.metrics.connections_refused.labels(reason).inc()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[Mapping[str, Any]]:
        await runtime.start()
        _tune_collector()
        restore = install_drain(runtime, settings.server.drain_delay_seconds)
        try:
            # The lifespan state reaches every connection of this worker (gateway.http_bounds).
            yield {GUARD: ClientGuard.build(settings.server, runtime.log, refused)}
        finally:
            restore()
            await runtime.close()

    app = GatewayApp(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={HTTPException: _http_error, ClientDisconnect: _client_left, Exception: _internal_error},
    )
    app.state.runtime = runtime
    return app


def create_app() -> Starlette:
    """Factory for uvicorn worker processes: the config path and the serve command's flags arrive through
    the environment (GATEWAY_CONFIG, GATEWAY_SERVE_FLAGS)."""
    return build_app(with_flags(load_settings(config_path(None, os.environ), kinds=REGISTRY), os.environ))
