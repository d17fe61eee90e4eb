"""Serving for the observability tests: the gateway in this process (so a test can read its tracer's spans
with the SDK's in-memory exporter) on a loopback port, and a fake OpenTelemetry collector that takes
OTLP/HTTP exports (protobuf, as the SDK's exporter sends them) and keeps the spans it decoded."""

from __future__ import annotations

import asyncio
import gc
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import uvicorn
from aiohttp import web
from harness import free_port
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.trace.v1.trace_pb2 import Span as SpanMessage
from starlette.applications import Starlette

from gateway.app import build_app
from gateway.config import load_settings
from gateway.http_bounds import BoundedHttpTools
from gateway.providers import REGISTRY
from gateway.runtime import Runtime


@dataclass
class Collector:
    """A fake OTLP/HTTP trace collector on loopback: every span of every export it was sent."""

    url: str = ""
    spans: list[SpanMessage] = field(default_factory=list)
    content_types: list[str] = field(default_factory=list)

    async def export(self, request: web.Request) -> web.Response:
        self.content_types.append(request.content_type)
        message = ExportTraceServiceRequest()
        message.ParseFromString(await request.read())
        for resource in message.resource_spans:
            for scope in resource.scope_spans:
                self.spans.extend(scope.spans)
        return web.Response(
            body=ExportTraceServiceResponse().SerializeToString(), content_type="application/x-protobuf"
        )


@contextmanager
def collector() -> Iterator[Collector]:
    port = free_port()
    found = Collector(url=f"http://127.0.0.1:{port}")
    ready, stop = threading.Event(), threading.Event()

    async def main() -> None:
        app = web.Application()
        app.router.add_post("/v1/traces", found.export)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        ready.set()
        while not stop.is_set():
            await asyncio.sleep(0.02)
        await runner.cleanup()

    thread = threading.Thread(target=lambda: asyncio.run(main()), daemon=True)
    thread.start()
    assert ready.wait(10), "the fake collector did not start"
    try:
        yield found
    finally:
        stop.set()
        thread.join(10)


@dataclass
class InProcess:
    url: str
    app: Starlette

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    @property
    def runtime(self) -> Runtime:
        runtime: Runtime = self.app.state.runtime
        return runtime


@contextmanager
def serve(make_config: Callable[[int], str], directory: Path, env: dict[str, str]) -> Iterator[InProcess]:
    """The gateway for ``make_config(port)`` (YAML) under uvicorn, in this process."""
    port = free_port()
    config = directory / "gateway.yaml"
    config.write_text(make_config(port))
    app = build_app(load_settings(str(config), env, kinds=REGISTRY))
    server = uvicorn.Server(uvicorn.Config(app, port=port, http=BoundedHttpTools, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    threshold = gc.get_threshold()
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the gateway did not start"
        time.sleep(0.02)
    try:
        yield InProcess(f"http://127.0.0.1:{port}", app)
    finally:
        server.should_exit = True
        thread.join(15)
        gc.unfreeze()  # the app tuned the collector for the whole (test) process: undo it
        gc.set_threshold(*threshold)
