"""Liveness, readiness and the Prometheus scrape; each answer carries its ``x-request-id`` (the client's when valid)."""

from __future__ import annotations

import hmac

import orjson
from starlette.requests import Request
from starlette.responses import Response

from gateway.api.intake import request_id
from gateway.api.respond import openai_error
from gateway.auth import bearer_token, digest
from gateway.errors import AuthenticationFailed
from gateway.runtime import Runtime


async def healthz(request: Request) -> Response:
    return Response(
        b'{"status":"ok"}', media_type="application/json", headers={"x-request-id": request_id(request.headers)}
    )


async def readyz(request: Request) -> Response:
    """Ready once configured; 503 while draining. Redis being unreachable is reported, and fails
    readiness only with ``state.ready_requires_redis``: the gateway keeps serving on local shares of
    every limit, and taking every replica out of the load balancer would turn that into an outage."""
    rt: Runtime = request.app.state.runtime
    checks: dict[str, str] = {"config": "loaded" if rt.ready else "starting", "limits": rt.limiter_mode}
    if rt.draining:
        checks["shutdown"] = "draining"
    degraded = rt.limiter_mode == "degraded"
    ok = rt.ready and not rt.draining and not (degraded and rt.settings.ready_requires_redis)
    status = "ready" if ok else "not ready"
    if ok and degraded:
        status = "degraded"
    body = {"status": status, "checks": checks}
    tag = {"x-request-id": request_id(request.headers)}
    return Response(orjson.dumps(body), status_code=200 if ok else 503, media_type="application/json", headers=tag)


async def metrics(request: Request) -> Response:
    """The Prometheus scrape; with ``observability.metrics.token_env`` (or ``token_file``) set, only for
    ``Authorization: Bearer <that token>`` (the scraper's ``authorization`` setting)."""
    rt: Runtime = request.app.state.runtime
    tag = {"x-request-id": request_id(request.headers)}
    token = rt.settings.observability.metrics_token
    if token is not None:
        presented = bearer_token(request.headers.get("authorization"))
        # Digests compared: equal lengths, so the time taken says nothing of the token's length either.
        if presented is None or not hmac.compare_digest(digest(presented), digest(token.reveal())):
            denied = AuthenticationFailed("/metrics needs its bearer token", code="invalid_metrics_token")
            return openai_error(denied, headers={**tag, "www-authenticate": 'Bearer realm="metrics"'})
    return Response(rt.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8", headers=tag)
