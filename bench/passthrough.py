"""The floor under the gateway: a bare Starlette + aiohttp pass-through, served as the gateway serves (uvicorn
with uvloop and httptools, one process, no access log), measured in the bench's rounds beside the gateway.

    python -m bench.passthrough --port 8002 --upstream 8001

Each POST's body goes to the same path on the upstream and the answer comes back: a JSON body read whole, a
stream relayed chunk by chunk as it arrives. Nothing else: no key, no parsing, no routing, no limits, no
metrics, no retries. What the gateway adds over this is its own work; what this costs is the price of
Python, Starlette and aiohttp on the machine.
"""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from bench.fixtures import HEALTH_PATH, JSON_PATH, STREAM_PATH


def app(upstream: str) -> Starlette:
    session: aiohttp.ClientSession | None = None

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        nonlocal session
        session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        yield
        await session.close()

    async def post(request: Request, path: str) -> aiohttp.ClientResponse:
        assert session is not None
        body = await request.body()
        return await session.post(upstream + path, data=body, headers={"content-type": "application/json"})

    async def answer(request: Request) -> Response:
        response = await post(request, JSON_PATH)
        body = await response.read()
        return Response(body, response.status, media_type=response.headers.get("content-type"))

    async def stream(request: Request) -> Response:
        response = await post(request, STREAM_PATH)

        async def chunks() -> AsyncIterator[bytes]:
            try:
                async for chunk in response.content.iter_any():
                    yield chunk
            finally:
                response.release()

        return StreamingResponse(chunks(), response.status, media_type=response.headers.get("content-type"))

    async def health(_: Request) -> Response:
        return PlainTextResponse("ok")

    routes = [
        Route(JSON_PATH, answer, methods=["POST"]),
        Route(STREAM_PATH, stream, methods=["POST"]),
        Route(HEALTH_PATH, health, methods=["GET"]),
    ]
    return Starlette(routes=routes, lifespan=lifespan)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", type=int, required=True, help="the fake upstream's port on 127.0.0.1")
    args = parser.parse_args()
    served = app(f"http://127.0.0.1:{args.upstream}")
    uvicorn.run(
        served,
        host="127.0.0.1",
        port=args.port,
        loop="uvloop",
        http="httptools",
        access_log=False,
        proxy_headers=False,
        server_header=False,
        log_level="warning",
    )


if __name__ == "__main__":
    main()
