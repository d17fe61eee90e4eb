"""``GET /v1/models``: the models this key may use, in OpenAI's list shape."""

from __future__ import annotations

import orjson
from starlette.requests import Request
from starlette.responses import Response

from gateway.api.respond import openai_error
from gateway.config.model import VirtualKey
from gateway.errors import GatewayError
from gateway.runtime import Runtime

_CREATED = 1_700_000_000  # a fixed timestamp: the field is required but meaningless for a gateway


def _policy_names(rt: Runtime, key: VirtualKey) -> list[str]:
    """The routes and aliases this key may send: those it is allowed by name, and those with a deployment it
    is allowed (a plan keeps only the deployments a key may use, as ``select.plan`` does)."""
    policy = rt.policies.current
    names: list[str] = []
    for name in policy.names():
        route = policy.route_for(name)
        if route is None:
            continue
        ids = {i for rule in route.rules for i in (*rule.candidates, *rule.fallback)}
        deployments = [d for i in ids if (d := rt.deployments.get(i)) is not None]
        if (
            key.allows(name)
            or key.allows(route.name)
            or any(key.allows(d.model) or key.allows(d.id) for d in deployments)
        ):
            names.append(name)
    return names


async def list_models(request: Request) -> Response:
    rt: Runtime = request.app.state.runtime
    try:
        key = rt.keys.authenticate(request.headers.get("authorization"))
    except GatewayError as e:
        return openai_error(e)
    names = _policy_names(rt, key)
    routed = set(names)
    names += [m for m in rt.index.visible(key) if m not in routed]  # a route may take over a model name
    data = [{"id": m, "object": "model", "created": _CREATED, "owned_by": "llm-gateway"} for m in names]
    return Response(orjson.dumps({"object": "list", "data": data}), media_type="application/json")
