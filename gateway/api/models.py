"""``GET /v1/models`` and ``GET /v1/models/{model}``: the models (and routes) this key may use, in OpenAI's shapes."""

from __future__ import annotations

import orjson
from starlette.requests import Request
from starlette.responses import Response

from gateway.api.intake import request_id
from gateway.api.respond import openai_error
from gateway.config.model import VirtualKey
from gateway.errors import GatewayError, ModelNotFound
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


def _names(rt: Runtime, key: VirtualKey) -> list[str]:
    names = _policy_names(rt, key)
    routed = set(names)
    return names + [m for m in rt.index.visible(key) if m not in routed]  # a route may take over a model name


def _entry(name: str) -> dict[str, object]:
    return {"id": name, "object": "model", "created": _CREATED, "owned_by": "llm-gateway"}


async def list_models(request: Request) -> Response:
    rt: Runtime = request.app.state.runtime
    tag = {"x-request-id": request_id(request.headers)}
    try:
        key = rt.keys.authenticate(request.headers.get("authorization"))
    except GatewayError as e:
        return openai_error(e, headers=tag)
    body = {"object": "list", "data": [_entry(name) for name in _names(rt, key)]}
    return Response(orjson.dumps(body), media_type="application/json", headers=tag)


async def get_model(request: Request) -> Response:
    """``GET /v1/models/{model}``: one model this key may use (the SDKs' ``models.retrieve``), else 404."""
    rt: Runtime = request.app.state.runtime
    tag = {"x-request-id": request_id(request.headers)}
    name = request.path_params["model"]
    try:
        key = rt.keys.authenticate(request.headers.get("authorization"))
        if name not in _names(rt, key):
            raise ModelNotFound(f"The model '{name}' does not exist or you do not have access to it.", param="model")
    except GatewayError as e:
        return openai_error(e, headers=tag)
    return Response(orjson.dumps(_entry(name)), media_type="application/json", headers=tag)
