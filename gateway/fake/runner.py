"""Start and stop one fake on the running event loop; shared by the CLI and the test runner."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from aiohttp import web

from gateway.fake.behaviour import FakeSettings
from gateway.fake.server import STATE, build_app
from gateway.fake.state import FakeState

# Requests still sleeping (stall, timeout) at shutdown are cancelled after this long.
SHUTDOWN_GRACE_S = 0.2


@dataclass
class RunningServer:
    runner: web.AppRunner
    state: FakeState
    host: str
    port: int

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def stop(self) -> None:
        self.state.closing = True
        await self.runner.cleanup()


async def start_server(settings: FakeSettings) -> RunningServer:
    """Listen on settings.host:settings.port (0 picks a free port) and return once accepting."""
    app = build_app(settings)
    state = app[STATE]
    # before listening, so the first request does not wait for tiktoken; off the loop, it takes ~0.5 s
    await asyncio.to_thread(state.tokens.preload)
    # handler_cancellation: a client that disconnects cancels its handler, even mid-sleep
    runner = web.AppRunner(app, handler_cancellation=True, shutdown_timeout=SHUTDOWN_GRACE_S, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, settings.host, settings.port)
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    port = int(runner.addresses[0][1])
    return RunningServer(runner, state, settings.host, port)
