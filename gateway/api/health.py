"""Liveness, readiness and the Prometheus scrape."""

from __future__ import annotations

import orjson
from starlette.requests import Request
from starlette.responses import Response

from gateway.runtime import Runtime


async def healthz(request: Request) -> Response:
    return Response(b'{"status":"ok"}', media_type="application/json")


async def readyz(request: Request) -> Response:
    rt: Runtime = request.app.state.runtime
    checks: dict[str, str] = {"config": "loaded" if rt.ready else "starting"}
    if rt.shared.configured:
        checks["redis"] = "ok" if await rt.shared.ping() else "unreachable"
    if rt.draining:
        checks["shutdown"] = "draining"
    ok = rt.ready and not rt.draining and checks.get("redis", "ok") == "ok"
    body = {"status": "ready" if ok else "not ready", "checks": checks}
    return Response(orjson.dumps(body), status_code=200 if ok else 503, media_type="application/json")


async def metrics(request: Request) -> Response:
    rt: Runtime = request.app.state.runtime
    return Response(rt.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")
