"""``GET /v1/models``: the models this key may use, in OpenAI's list shape."""

from __future__ import annotations

import orjson
from starlette.requests import Request
from starlette.responses import Response

from gateway.errors import GatewayError, to_openai_error
from gateway.runtime import Runtime

_CREATED = 1_700_000_000  # a fixed timestamp: the field is required but meaningless for a gateway


async def list_models(request: Request) -> Response:
    rt: Runtime = request.app.state.runtime
    try:
        key = rt.keys.authenticate(request.headers.get("authorization"))
    except GatewayError as e:
        return Response(to_openai_error(e), status_code=e.status, media_type="application/json")
    data = [{"id": m, "object": "model", "created": _CREATED, "owned_by": "llm-gateway"} for m in rt.index.visible(key)]
    return Response(orjson.dumps({"object": "list", "data": data}), media_type="application/json")
