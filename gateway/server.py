"""Running the app under uvicorn, with a drain phase on SIGTERM.

SIGTERM first marks the runtime draining (``/readyz`` answers 503) and, after
``drain_delay_seconds``, lets uvicorn stop accepting and wait up to ``shutdown_grace_seconds`` for
in-flight requests and streams to finish before the process exits.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import tempfile
from types import FrameType

import uvicorn
from uvicorn.supervisors import Multiprocess

from gateway.config import CONFIG_ENV
from gateway.config.model import Settings
from gateway.runtime import Runtime


class GatewayServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, drain_delay: float) -> None:
        super().__init__(config)
        self.drain_delay = drain_delay
        self._loop: asyncio.AbstractEventLoop | None = None

    async def serve(self, sockets: list[object] | None = None) -> None:  # type: ignore[override]
        self._loop = asyncio.get_running_loop()
        await super().serve(sockets)  # type: ignore[arg-type]

    def _runtime(self) -> Runtime | None:
        app = getattr(self.config, "loaded_app", None)
        state = getattr(app, "state", None)
        runtime = getattr(state, "runtime", None)
        return runtime if isinstance(runtime, Runtime) else None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        runtime = self._runtime()
        if runtime is not None and not runtime.draining:
            runtime.draining = True
            runtime.metrics.draining.set(1)
            if self.drain_delay > 0 and self._loop is not None:
                stop = super().handle_exit
                self._loop.call_soon_threadsafe(self._loop.call_later, self.drain_delay, stop, sig, frame)
                return
        super().handle_exit(sig, frame)


def _config(settings: Settings, app: object, **extra: object) -> uvicorn.Config:
    return uvicorn.Config(
        app,  # type: ignore[arg-type]
        host=settings.server.host,
        port=settings.server.port,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        access_log=False,
        proxy_headers=False,
        server_header=False,
        log_level="warning",
        timeout_graceful_shutdown=int(settings.server.shutdown_grace_seconds) or None,
        **extra,  # type: ignore[arg-type]
    )


def run(settings: Settings, config_file: str | None) -> None:
    """Serve until SIGTERM/SIGINT; several workers share one listening socket."""
    # The signal uvicorn re-raises after a graceful stop ends the process through SystemExit, so
    # callers' cleanup (the demo's fake upstream) still runs.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    workers = settings.server.workers
    if workers == 1:
        from gateway.app import build_app

        config = _config(settings, build_app(settings))
        GatewayServer(config, settings.server.drain_delay_seconds).run()
        return
    if config_file:
        os.environ[CONFIG_ENV] = os.path.abspath(config_file)
    os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", tempfile.mkdtemp(prefix="gateway-metrics-"))
    config = _config(settings, "gateway.app:create_app", factory=True, workers=workers)
    server = GatewayServer(config, settings.server.drain_delay_seconds)
    sock = config.bind_socket()
    Multiprocess(config, target=server.run, sockets=[sock]).run()
