"""The fake's own control surface under ``/_fake/``: behaviour, limits, reset and stats.

    POST /_fake/behaviour  {"model": "*", "latency_ms": 50, "fail_next": 2, ...}  -> all behaviours
    GET  /_fake/behaviour                                                       -> all behaviours
    POST /_fake/limits     {"rpm": 60, "tpm": null}                             -> the limits
    POST /_fake/reset                                                           -> start-up state
    GET  /_fake/stats                                                           -> counters

``fail_next`` is not a behaviour but a count: that many next requests for the model fail with its
failure_kind whatever the failure_rate. These routes are never authenticated, limited or counted.
"""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from gateway.fake.behaviour import DEFAULT_MODEL, BehaviourError
from gateway.fake.state import FakeState


def _json(body: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, body=orjson.dumps(body), content_type="application/json")


def _error(message: str) -> web.Response:
    return _json({"error": {"message": message, "type": "invalid_request_error", "param": None, "code": None}}, 400)


async def _body(request: web.Request) -> dict[str, Any]:
    raw = await request.read()
    try:
        body = orjson.loads(raw) if raw else {}
    except orjson.JSONDecodeError as e:
        raise BehaviourError("the body is not valid JSON") from e
    if not isinstance(body, dict):
        raise BehaviourError("the body must be a JSON object")
    return body


def _limit(body: dict[str, Any], name: str, current: int | None) -> int | None:
    if name not in body:
        return current
    value = body[name]
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise BehaviourError(f"{name} must be a positive integer or null, got {value!r}")
    return value if isinstance(value, int) else None


def _limits(state: FakeState) -> dict[str, int | None]:
    requests, tokens = state.limiter.requests, state.limiter.tokens
    return {"rpm": requests.limit if requests else None, "tpm": tokens.limit if tokens else None}


def add_routes(router: web.UrlDispatcher, key: web.AppKey[FakeState]) -> None:
    async def get_behaviour(request: web.Request) -> web.Response:
        state = request.app[key]
        return _json({"behaviours": state.behaviours.to_json(), "fail_next": state.fail_next})

    async def set_behaviour(request: web.Request) -> web.Response:
        state = request.app[key]
        try:
            body = await _body(request)
            model = body.pop("model", DEFAULT_MODEL)
            if not isinstance(model, str) or not model:
                raise BehaviourError("model must be a model name or '*'")
            fail_next = body.pop("fail_next", None)
            if fail_next is not None and (isinstance(fail_next, bool) or not isinstance(fail_next, int)):
                raise BehaviourError(f"fail_next must be an integer, got {fail_next!r}")
            state.behaviours.update(model, body)
        except BehaviourError as e:
            return _error(str(e))
        if fail_next is not None:
            state.fail_next[model] = max(0, fail_next)
        return await get_behaviour(request)

    async def set_limits(request: web.Request) -> web.Response:
        state = request.app[key]
        try:
            body = await _body(request)
            current = _limits(state)
            rpm, tpm = _limit(body, "rpm", current["rpm"]), _limit(body, "tpm", current["tpm"])
        except BehaviourError as e:
            return _error(str(e))
        state.limiter.configure(rpm, tpm)
        return _json(_limits(state))

    async def reset(request: web.Request) -> web.Response:
        request.app[key].reset()
        return _json({"reset": True})

    async def stats(request: web.Request) -> web.Response:
        return _json(request.app[key].stats.to_json())

    router.add_get("/_fake/behaviour", get_behaviour)
    router.add_post("/_fake/behaviour", set_behaviour)
    router.add_post("/_fake/limits", set_limits)
    router.add_post("/_fake/reset", reset)
    router.add_get("/_fake/stats", stats)
