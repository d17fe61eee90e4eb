"""``/admin/*``: what platform admins may read. Guarded by the admin key; never shows a secret or digest."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from gateway.config.model import Deployment
from gateway.errors import GatewayError, to_openai_error
from gateway.runtime import Runtime


def _deployment(d: Deployment) -> dict[str, Any]:
    return {
        "id": d.id,
        "model": d.model,
        "upstream_model": d.upstream_model,
        "mode": d.mode,
        "limits": {"rpm": d.limits.rpm, "tpm": d.limits.tpm},
        "price_per_mtok": None if d.price is None else {"input": d.price.input * 1e6, "output": d.price.output * 1e6},
        "context_window": d.context_window,
        "max_output_tokens": d.max_output_tokens,
        "capabilities": sorted(d.capabilities),
    }


def effective_config(rt: Runtime) -> dict[str, Any]:
    """Pure: the running configuration as an admin should see it (credentials only as present/absent)."""
    s = rt.settings
    return {
        "source": s.source,
        "demo": s.demo,
        "server": {
            "host": s.server.host,
            "port": s.server.port,
            "workers": s.server.workers,
            "max_body_bytes": s.server.max_body_bytes,
            "timeouts": vars(s.server.timeouts),
            "shutdown_grace_seconds": s.server.shutdown_grace_seconds,
            "drain_delay_seconds": s.server.drain_delay_seconds,
        },
        "state": {"redis": "configured" if s.redis_url else "in process"},
        "providers": [
            {
                "name": a.name,
                "kind": a.kind,
                "base_url": a.base_url,
                "api_version": a.api_version,
                "credential": "set" if a.api_key is not None else "none",
                "limits": {"rpm": a.limits.rpm, "tpm": a.limits.tpm},
                "deployments": [_deployment(d) for d in a.deployments],
            }
            for a in s.accounts
        ],
        "keys": [{"name": k.name, "tier": k.tier, "models": sorted(k.models)} for k in s.keys],
        "draining": rt.draining,
    }


async def config(request: Request) -> Response:
    rt: Runtime = request.app.state.runtime
    try:
        rt.keys.require_admin(request.headers.get("authorization"))
    except GatewayError as e:
        return Response(to_openai_error(e), status_code=e.status, media_type="application/json")
    return Response(orjson.dumps(effective_config(rt)), media_type="application/json")
