"""Running the app under uvicorn: one process, or several workers sharing one listening socket."""

from __future__ import annotations

import os
import signal
import socket
import sys
import tempfile
from typing import Any

import uvicorn
from uvicorn.supervisors import Multiprocess

from gateway.config import CONFIG_ENV
from gateway.config.model import Settings
from gateway.http_bounds import BoundedHttpTools
from gateway.metrics import clear_multiprocess_dir, worker_gone


def _config(settings: Settings, app: Any, **extra: Any) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        host=settings.server.host,
        port=settings.server.port,
        loop="uvloop",
        http=BoundedHttpTools,  # httptools (fast) with bounds on what clients send (see http_bounds)
        lifespan="on",
        access_log=False,
        proxy_headers=False,
        server_header=False,
        log_level="warning",
        timeout_graceful_shutdown=max(1, round(settings.server.shutdown_grace_seconds)),
        timeout_keep_alive=max(1, round(settings.server.keepalive_timeout_seconds)),  # uvicorn counts whole seconds
        **extra,
    )


def run(settings: Settings, config_file: str | None) -> None:
    """Serve until SIGTERM/SIGINT (see ``lifecycle`` for the drain)."""
    # uvicorn re-raises the stop signal once it has shut down gracefully; ending through SystemExit
    # instead of the default action lets callers' cleanup (the demo's fake upstream) run.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    workers = settings.server.workers
    if workers == 1:
        from gateway.app import build_app

        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):  # set by the operator: metrics go through its files
            clear_multiprocess_dir(os.environ["PROMETHEUS_MULTIPROC_DIR"])

        uvicorn.Server(_config(settings, build_app(settings))).run()
        return
    if config_file:
        os.environ[CONFIG_ENV] = os.path.abspath(config_file)
    metrics_dir = os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", tempfile.mkdtemp(prefix="gateway-metrics-"))
    clear_multiprocess_dir(metrics_dir)
    config = _config(settings, "gateway.app:create_app", factory=True, workers=workers)
    sock = config.bind_socket()
    Workers(config, sockets=[sock], metrics_dir=metrics_dir).run()


class Workers(Multiprocess):
    """uvicorn's supervisor, telling the metrics when it replaces a worker (one that died, or on SIGHUP), so
    the dead worker's in-flight count and other live gauges leave /metrics while its counters stay."""

    def __init__(self, config: uvicorn.Config, sockets: list[socket.socket], metrics_dir: str) -> None:
        super().__init__(config, sockets)
        self.metrics_dir = metrics_dir

    def _forget_replaced(self, before: list[int | None]) -> None:
        now = {p.pid for p in self.processes}
        for pid in before:
            if pid is not None and pid not in now:
                worker_gone(pid, self.metrics_dir)

    def keep_subprocess_alive(self) -> None:
        before = [p.pid for p in self.processes]
        super().keep_subprocess_alive()
        self._forget_replaced(before)

    def restart_all(self) -> None:
        before = [p.pid for p in self.processes]
        super().restart_all()
        self._forget_replaced(before)
