"""``/admin/*``: what platform admins may read. Guarded by the admin key; never shows a secret or digest."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import asdict
from functools import wraps
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from gateway.api.intake import check, parse_object, request_id
from gateway.api.respond import openai_error
from gateway.config.model import BudgetCaps, Deployment, Price, VirtualKey
from gateway.errors import GatewayError, InvalidRequest, redact
from gateway.routing.explain import ADMIN_VIEW, explain, refusal
from gateway.routing.features import features_from
from gateway.runtime import Runtime
from gateway.spend.report import BadQuery, Query, report
from gateway.types import Endpoint


def _per_mtok(price: Price) -> dict[str, float | None]:
    def per(value: float | None) -> float | None:
        return None if value is None else value * 1e6

    return {
        "input": per(price.input),
        "output": per(price.output),
        "cache_read": per(price.cache_read),
        "cache_write": per(price.cache_write),
    }


def _deployment(d: Deployment) -> dict[str, Any]:
    return {
        "id": d.id,
        "model": d.model,
        "upstream_model": d.upstream_model,
        "mode": d.mode,
        "limits": {"rpm": d.limits.rpm, "tpm": d.limits.tpm},
        "price_per_mtok": None if d.price is None else _per_mtok(d.price),
        "context_window": d.context_window,
        "max_output_tokens": d.max_output_tokens,
        "capabilities": sorted(d.capabilities),
    }


def _budgets(budget: BudgetCaps, user_budget: BudgetCaps) -> dict[str, Any]:
    """A key's spend caps, where it has any."""
    shown = {"budget": asdict(budget), "user_budget": asdict(user_budget)}
    return {name: caps for name, caps in shown.items() if any(v is not None for v in caps.values())}


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
            "timeouts": asdict(s.server.timeouts),
            "shutdown_grace_seconds": s.server.shutdown_grace_seconds,
            "drain_delay_seconds": s.server.drain_delay_seconds,
        },
        "state": {"redis": "configured" if s.redis_url else "in process"},
        "providers": [
            {
                "name": a.name,
                "kind": a.kind,
                "base_url": redact(a.base_url, rt.secrets),  # a password in its userinfo stays hidden
                "api_version": a.api_version,
                "credential": "set" if a.api_key is not None else "none",
                "limits": {"rpm": a.limits.rpm, "tpm": a.limits.tpm},
                "deployments": [_deployment(d) for d in a.deployments],
            }
            for a in s.accounts
        ],
        "keys": [
            {"name": k.name, "tier": k.tier, "models": sorted(k.models)} | _budgets(k.budget, k.user_budget)
            for k in s.keys
        ],
        "budgets": {"tiers": {tier: asdict(caps) for tier, caps in s.budgets.tiers.items()}},
        "draining": rt.draining,
    }


def _json(body: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


def _denied(request: Request) -> Response | None:
    rt: Runtime = request.app.state.runtime
    try:
        rt.keys.require_admin(request.headers.get("authorization"))
    except GatewayError as e:
        return openai_error(e)
    return None


def policy_status(rt: Runtime) -> dict[str, Any]:
    store = rt.policies
    policy = store.current
    rejection = store.last_rejection
    return {
        "version": policy.version,
        "directory": store.directory,
        "files": list(policy.files),
        "loaded_at": store.loaded_at,
        "routes": {
            name: [
                {
                    "rule": r.name,
                    "strategy": r.strategy,
                    "candidates": list(r.candidates),
                    "fallback": list(r.fallback),
                    "source": r.source,
                }
                for r in route.rules
            ]
            for name, route in policy.routes.items()
        },
        "aliases": dict(policy.aliases),
        "last_rejection": None
        if rejection is None
        else {"at": rejection.at, "reason": rejection.reason, "errors": list(rejection.errors)},
    }


Handler = Callable[[Request], Awaitable[Response]]


def _tagged(handler: Handler) -> Handler:
    """Every admin answer, refusals included, carries its ``x-request-id`` (the client's when valid)."""

    @wraps(handler)
    async def answer(request: Request) -> Response:
        response = await handler(request)
        response.headers["x-request-id"] = request_id(request.headers)
        return response

    return answer


@_tagged
async def config(request: Request) -> Response:
    rt: Runtime = request.app.state.runtime
    return _denied(request) or _json(effective_config(rt))


@_tagged
async def policies(request: Request) -> Response:
    rt: Runtime = request.app.state.runtime
    return _denied(request) or _json(policy_status(rt))


@_tagged
async def reload_policies(request: Request) -> Response:
    rt: Runtime = request.app.state.runtime
    if (denied := _denied(request)) is not None:
        return denied
    rejection = await rt.policies.refresh("admin API")
    status = policy_status(rt)
    return _json(status, 200 if rejection is None else 422)


@_tagged
async def explain_route(request: Request) -> Response:
    """Body: ``{"request": <chat or embeddings body>, "key": <key name>?, "headers": {...}?,
    "endpoint": "chat"|"embeddings"?, "budget_used": <share>?}``; the answer shows the decision with the live
    health snapshot and this replica's view of the budgets the request touches (``budget_used`` overrides it,
    to see what happens as they fill)."""
    rt: Runtime = request.app.state.runtime
    if (denied := _denied(request)) is not None:
        return denied
    try:
        body = parse_object(await request.body())
        query = body.get("request")
        if not isinstance(query, dict):
            raise InvalidRequest("'request' must be the chat or embeddings request to explain", param="request")
        key = ADMIN_VIEW
        if isinstance(body.get("key"), str):
            key = next((k for k in rt.settings.keys if k.name == body["key"]), None) or ADMIN_VIEW
            if key is ADMIN_VIEW:
                raise InvalidRequest(f"no virtual key is named {body['key']!r}", param="key")
        given = body.get("headers")
        headers: dict[str, Any] = given if isinstance(given, dict) else {}
        endpoint: Endpoint = "embeddings" if body.get("endpoint") == "embeddings" else "chat"
        given = body.get("budget_used")
        if given is not None and (not isinstance(given, int | float) or isinstance(given, bool) or not given >= 0):
            raise InvalidRequest("'budget_used' must be a share of a cap (a number >= 0)", param="budget_used")
    except GatewayError as e:
        return openai_error(e)
    policy = rt.policies.current
    try:
        check(query, endpoint, rt.settings.limits.max_n)
    except GatewayError as e:
        return _json(refusal(policy, e))
    result = explain(
        policy,
        rt.deployments,
        rt.index,
        rt.health.snapshot(),
        query,
        key,
        {str(k): str(v) for k, v in headers.items()},
        endpoint,
        rt.settings.limits.default_output_tokens,
        budget_used=float(given) if given is not None else _budget_used(rt, query, key, headers, endpoint),
    )
    return _json(result)


def _budget_used(
    rt: Runtime, query: dict[str, Any], key: VirtualKey, headers: dict[str, Any], endpoint: Endpoint
) -> float:
    """This replica's view of the budgets the explained request touches (its tier and end user as serving
    would identify them, headers trusted as explain trusts them)."""
    lowered = {str(k).lower(): str(v) for k, v in headers.items()}
    seen = features_from(query, key, lowered, endpoint, True)
    return rt.books.used(rt.books.touched(key, seen.tier, seen.end_user))


_SPEND_PARAMS = frozenset({"key", "end_user", "tier", "window", "top"})


@_tagged
async def spend(request: Request) -> Response:
    """``GET /admin/spend?key=&end_user=&tier=&window=day|month|YYYY-MM-DD|YYYY-MM&top=10``: spend in one
    window and the budgets that apply (``spend.report``)."""
    rt: Runtime = request.app.state.runtime
    if (denied := _denied(request)) is not None:
        return denied
    params = request.query_params
    try:
        unknown = sorted(set(params) - _SPEND_PARAMS)
        if unknown:
            raise InvalidRequest(f"unknown parameter {unknown[0]!r} (known: {', '.join(sorted(_SPEND_PARAMS))})")
        top = params.get("top", "10")
        if not top.isdigit():
            raise InvalidRequest(f"top must be a whole number, not {top!r}", param="top")
        query = Query(
            params.get("key"), params.get("end_user"), params.get("tier"), params.get("window", "day"), int(top)
        )
        answer = await report(rt.books.ledger, rt.settings, query, rt.books.clock())
    except BadQuery as e:
        return openai_error(InvalidRequest(str(e), param=e.param))
    except GatewayError as e:
        return openai_error(e)
    return _json(answer)
