"""What metrics, logs and traces cost per request: `.venv/bin/python bench/observability.py` (about 20 minutes).

The whole request path in process: the app (Starlette routing, the proxy endpoint, routing, the walk, the
aiohttp call to the upstream, the relay) driven through ASGI by a minimal harness (no HTTP server, no client
library), against the bench's asyncio upstream in another process (``bench/upstream.py``: the static chat
completion and its 12-event stream). CPU per request is this process's CPU time (every thread: the log
writer's, the trace exporter's) over the requests, at 8 concurrent requests. Each variant runs in a fresh
interpreter; variants alternate within each round (the order rotates) and the table shows medians:

    bare            metrics replaced by no-ops, access log off, OpenTelemetry not importable
    shipped         as shipped, tracing off (no ``observability.tracing.endpoint``): the default
    not-installed   as shipped, with OpenTelemetry not importable (the ``tracing`` extra not installed)
    traced-10       tracing on, 10 % of new traces sampled, spans exported to a local OTLP/HTTP sink
    traced-100      every request traced

On a shared machine the whole path moves by a fifth from run to run, more than what is measured here; so
the same work is also timed alone, far more steadily: what observes one request (the end of a request:
counters, histograms, the access line and the writer thread's share; an attempt's record; the hooks that
stay when tracing is off), with and without metrics and the log, and what tracing costs a request that is
traced (its spans made, and exported by the batch thread to the sink) and one that is not sampled. Exit
status 1 when a target is missed: observing a request under 25 µs and under 10 % of the whole path's CPU, a
traced request's tracing under 350 µs, a request not sampled under 5 µs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: the repo root, not bench/ (bench/gateway.py would shadow the package)
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

from bench.gateway import JSON_MODEL, STREAM_MODEL, config_yaml  # noqa: E402

VARIANTS = ("bare", "shipped", "not-installed", "traced-10", "traced-100")
KINDS = {"json": JSON_MODEL, "stream": STREAM_MODEL}
CONCURRENCY = 8
MAX_SHARE = 0.10  # metrics, logs and tracing-off: under this share of the gateway's CPU per request
MAX_OBSERVING_US = 25.0  # metrics, the access line and tracing's hooks for one request (about 17-19 µs measured)
MAX_TRACED_US = 350.0  # the tracing of one traced request (about 265 µs measured: README, Observability)
MAX_UNSAMPLED_US = 5.0  # tracing on, a request not sampled (about 2.6 µs)
SINK_ANSWER = b"HTTP/1.1 200 OK\r\nContent-Type: application/x-protobuf\r\nContent-Length: 0\r\n\r\n"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- the OTLP sink: accepts every export, answers 200 (another process: its CPU is not the gateway's) ---


class _Sink(asyncio.Protocol):
    def __init__(self) -> None:
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while self.transport is not None and (end := self.buffer.find(b"\r\n\r\n")) >= 0:
            length = 0
            for line in bytes(self.buffer[:end]).split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            if len(self.buffer) < end + 4 + length:
                return
            del self.buffer[: end + 4 + length]
            self.transport.write(SINK_ANSWER)


async def _sink(port: int) -> None:
    server = await asyncio.get_running_loop().create_server(_Sink, "127.0.0.1", port)
    async with server:
        await server.serve_forever()


# --- one variant, in its own interpreter ---


def _block_opentelemetry() -> None:
    """As if the ``tracing`` extra were not installed: importing OpenTelemetry fails."""
    for name in [n for n in sys.modules if n == "opentelemetry" or n.startswith("opentelemetry.")]:
        del sys.modules[name]
    sys.modules["opentelemetry"] = None  # type: ignore[assignment]


def _quiet_metrics(app: Any) -> None:
    """Every metric of the running app becomes a no-op (the parts hold the one Metrics object)."""
    from prometheus_client.metrics import MetricWrapperBase

    class NoOp:
        def labels(self, *args: object) -> NoOp:
            return self

        def inc(self, amount: float = 1) -> None: ...
        def dec(self, amount: float = 1) -> None: ...
        def set(self, value: float) -> None: ...
        def observe(self, value: float) -> None: ...

    metrics = app.state.runtime.metrics
    for name, found in list(vars(metrics).items()):
        if isinstance(found, MetricWrapperBase):
            setattr(metrics, name, NoOp())


async def drive(app: Any, kind: str, requests: int) -> float:
    body = json.dumps({"model": KINDS[kind], "messages": [{"role": "user", "content": "Hello"}], "max_tokens": 9})
    if kind == "stream":
        body = body[:-1] + ', "stream": true}'
    payload = body.encode()
    headers = [
        (b"host", b"bench"),
        (b"authorization", b"Bearer bench-key"),
        (b"content-type", b"application/json"),
        (b"content-length", str(len(payload)).encode()),
    ]
    path = "/v1/chat/completions"

    async def one() -> None:
        done = asyncio.Event()
        first = True
        status = 0

        async def receive() -> dict[str, Any]:
            nonlocal first
            if first:
                first = False
                return {"type": "http.request", "body": payload, "more_body": False}
            await done.wait()
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            elif not message.get("more_body", False):
                done.set()

        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": b"",
            "root_path": "",
            "headers": headers,
            "client": ("127.0.0.1", 40000),
            "server": ("127.0.0.1", 8080),
            "state": {},
        }
        await app(scope, receive, send)
        if status != 200:
            raise RuntimeError(f"the gateway answered {status}")

    async def worker(count: int) -> None:
        for _ in range(count):
            await one()

    async def run(total: int) -> None:
        await asyncio.gather(*(worker(total // CONCURRENCY) for _ in range(CONCURRENCY)))

    await run(400)  # warm: connections pooled, caches filled
    began = time.process_time()
    await run(requests)
    return (time.process_time() - began) / (requests // CONCURRENCY * CONCURRENCY) * 1e6


def child(variant: str, kind: str, upstream: int, sink: int, requests: int, directory: Path) -> None:
    if variant in ("bare", "not-installed"):
        _block_opentelemetry()
    text = config_yaml(8080, upstream)
    if variant == "bare":
        text = text.replace("  workers: 1\n", "  workers: 1\n  access_log: false\n")
    if variant.startswith("traced-"):
        ratio = int(variant.removeprefix("traced-")) / 100
        text += f"observability: {{tracing: {{endpoint: 'http://127.0.0.1:{sink}', sample_ratio: {ratio}}}}}\n"
    config = directory / f"{variant}.yaml"
    config.write_text(text)

    from gateway.app import build_app
    from gateway.config import load_settings
    from gateway.providers import REGISTRY

    with contextlib.suppress(ImportError):
        import uvloop

        uvloop.install()
    report = os.dup(1)
    os.dup2(os.open(os.devnull, os.O_WRONLY), 1)  # the access log goes to stdout: written, then discarded
    app = build_app(load_settings(str(config), {}, kinds=REGISTRY))

    async def main() -> float:
        async with app.router.lifespan_context(app):
            if variant == "bare":
                _quiet_metrics(app)
            return await drive(app, kind, requests)

    cpu_us = asyncio.run(main())
    os.write(report, (json.dumps({"cpu_us": cpu_us}) + "\n").encode())


# --- a request's observability work, timed alone (far steadier than the whole path on a shared machine) ---


def _work(app: Any, shipped: bool) -> dict[str, float]:
    """µs per request of the observing ``app`` does, JSON and stream (median of 7 runs of 5,000)."""
    from gateway import accesslog
    from gateway.api.respond import finish
    from gateway.record import RequestRecord
    from gateway.routing.steps import Waiting

    rt = app.state.runtime
    deployment = next(iter(rt.deployments.values()))
    record_step, watch = rt.steps.record, rt.steps.watch

    def one_request(stream: bool) -> None:
        record = RequestRecord("req_0123456789abcdef01234567", "/v1/chat/completions", time.perf_counter())
        record.key_name, record.model, record.deployment, record.attempts = "bench", JSON_MODEL, deployment.id, 1
        record.tried.append(deployment.id)
        record.status, record.prompt_tokens, record.completion_tokens, record.stream = 200, 24, 9, stream
        record.ttft_ms = 0.4 if stream else None
        rt.metrics.inflight.inc()
        waiting = Waiting()
        waiting.seconds += 0.00002  # the upload
        spans = None if watch is None else watch.spans()  # as the walk asks: None, this request is not traced
        assert spans is None
        record_step.started(deployment.id)
        record_step.finished(deployment.id, None, 0.0002, stream)
        waiting.seconds += 0.0002  # the attempt
        finish(rt, record, waited=waiting.seconds)

    found = {}
    for kind, stream in (("json", False), ("stream", True)):
        for _ in range(2000):
            one_request(stream)
        runs = []
        for _ in range(7):
            began = time.process_time()
            for _ in range(5000):
                one_request(stream)
            while shipped and rt.log.writer._queue.qsize():  # the writer thread's share: every line written
                time.sleep(0.001)
            runs.append((time.process_time() - began) / 5000 * 1e6)
        found[kind] = statistics.median(runs)
    accesslog.close(rt.log)
    return found


def calls(upstream: int, directory: Path) -> None:
    """µs per request of what observes it, with metrics and the access log and without (no-op metrics, the
    log off): the end of a request (``finish``: counters, histograms, the access line, and the writer
    thread that redacts and writes it), an attempt's record (circuit, attempt metrics, latency), and the
    hooks that stay when tracing is off (asking the watch for spans, the time waited)."""
    _block_opentelemetry()
    from gateway.app import build_app
    from gateway.config import load_settings
    from gateway.providers import REGISTRY

    report = os.dup(1)
    os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
    found: dict[str, float] = {}
    for variant in ("shipped", "bare"):
        text = config_yaml(8080, upstream)
        if variant == "bare":
            text = text.replace("  workers: 1\n", "  workers: 1\n  access_log: false\n")
        config = directory / f"calls-{variant}.yaml"
        config.write_text(text)
        app = build_app(load_settings(str(config), {}, kinds=REGISTRY))
        if variant == "bare":
            _quiet_metrics(app)
        for kind, cost in _work(app, variant == "shipped").items():
            found[f"{variant} {kind}"] = cost
    os.write(report, (json.dumps(found) + "\n").encode())


def _traced_work(rt: Any, answer: bytes) -> float:
    """µs per request of ``rt``'s tracing (median of 5 runs of 2,000, the exporter's work included)."""
    from starlette.datastructures import Headers

    from gateway.record import RequestRecord

    tracer, watch = rt.tracer, rt.steps.watch
    deployment = next(iter(rt.deployments.values()))
    headers = Headers({"authorization": "Bearer bench-key", "content-type": "application/json"})

    def one_request() -> None:
        record = RequestRecord("req_0123456789abcdef01234567", "/v1/chat/completions", time.perf_counter())
        record.key_name, record.model, record.deployment, record.attempts = "bench", JSON_MODEL, deployment.id, 1
        record.status, record.prompt_tokens, record.completion_tokens = 200, 24, 9
        traced = tracer.begin(headers, "chat", record.request_id)
        spans = watch.spans()  # None when this request is not sampled: the walk then opens no span
        if spans is not None:
            with spans.admitting("candidate", [deployment]):
                pass
            with spans.attempt(deployment, 1):
                tracer.inject({"content-type": "application/json"})
        else:
            tracer.inject({"content-type": "application/json"})
        if traced is not None:
            traced.answered(answer)
            traced.end(record)

    runs = []
    for _ in range(5):
        began = time.process_time()
        for _ in range(4):
            for _ in range(500):
                one_request()
            tracer.provider.force_flush()  # the exporter's work for these spans, done (its queue holds 2,048)
        runs.append((time.process_time() - began) / 2000 * 1e6)
    tracer.close()
    return statistics.median(runs)


def traced_calls(upstream: int, sink: int, directory: Path) -> None:
    """µs of tracing per request, timed alone: a request that is traced (its span, the admission's, the
    attempt's, the ``traceparent`` sent, the answer's attributes, and the exporter thread's encoding and
    sending to the sink, drained), and one that is not sampled while tracing is on."""
    from gateway.app import build_app
    from gateway.config import load_settings
    from gateway.providers import REGISTRY

    report = os.dup(1)
    os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
    answer = json.dumps({"id": "c", "model": JSON_MODEL, "choices": [{"finish_reason": "stop"}]}).encode()
    found: dict[str, float] = {}
    for name, ratio in (("traced", 1.0), ("not sampled", 0.0)):
        text = config_yaml(8080, upstream) + (
            f"observability: {{tracing: {{endpoint: 'http://127.0.0.1:{sink}', sample_ratio: {ratio}}}}}\n"
        )
        config = directory / f"traced-calls-{ratio}.yaml"
        config.write_text(text)
        rt = build_app(load_settings(str(config), {}, kinds=REGISTRY)).state.runtime
        found[name] = _traced_work(rt, answer)
    os.write(report, (json.dumps(found) + "\n").encode())


# --- the parent: processes, rounds, the report ---


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000, help="measured requests per run (default 3000)")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (default 5)")
    parser.add_argument("--variant", choices=VARIANTS, help=argparse.SUPPRESS)
    parser.add_argument("--kind", choices=tuple(KINDS), help=argparse.SUPPRESS)
    parser.add_argument("--upstream", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--sink", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--serve-sink", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--calls", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--traced-calls", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--dir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_sink:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(_sink(args.serve_sink))
        return 0
    if args.variant:
        child(args.variant, args.kind, args.upstream, args.sink, args.requests, Path(args.dir))
        return 0
    if args.calls:
        calls(args.upstream, Path(args.dir))
        return 0
    if args.traced_calls:
        traced_calls(args.upstream, args.sink, Path(args.dir))
        return 0

    import tempfile

    root = Path(__file__).resolve().parent.parent
    upstream, sink = free_port(), free_port()
    helpers = [
        subprocess.Popen([sys.executable, "-m", "bench.upstream", "--port", str(upstream)], cwd=root),
        subprocess.Popen([sys.executable, __file__, "--serve-sink", str(sink)], cwd=root),
    ]
    results: dict[tuple[str, str], list[float]] = {}
    try:
        time.sleep(1.0)
        with tempfile.TemporaryDirectory() as directory:
            for n in range(args.rounds):
                order = VARIANTS[n % len(VARIANTS) :] + VARIANTS[: n % len(VARIANTS)]
                for variant in order:
                    for kind in KINDS:
                        argv = [sys.executable, __file__, "--variant", variant, "--kind", kind]
                        argv += ["--upstream", str(upstream), "--sink", str(sink)]
                        argv += ["--requests", str(args.requests), "--dir", directory]
                        out = subprocess.run(argv, cwd=root, capture_output=True, check=True, timeout=600).stdout
                        cpu = json.loads(out.decode().strip().splitlines()[-1])["cpu_us"]
                        results.setdefault((variant, kind), []).append(cpu)
                print(f"round {n + 1}/{args.rounds} done", file=sys.stderr)
            argv = [sys.executable, __file__, "--calls", "--upstream", str(upstream), "--dir", directory]
            work = json.loads(subprocess.run(argv, cwd=root, capture_output=True, check=True, timeout=600).stdout)
            argv = [sys.executable, __file__, "--traced-calls", "--upstream", str(upstream), "--sink", str(sink)]
            argv += ["--dir", directory]
            traced = json.loads(subprocess.run(argv, cwd=root, capture_output=True, check=True, timeout=600).stdout)
    finally:
        for helper in helpers:
            helper.terminate()
            helper.wait(10)

    median = {key: statistics.median(values) for key, values in results.items()}
    print(f"CPU per request (µs, median of {args.rounds} rounds of {args.requests} requests, {CONCURRENCY} at a time)")
    print(f"{'variant':<16}{'JSON':>10}{'stream':>10}   all rounds (JSON | stream)")
    for variant in VARIANTS:
        cells = "".join(f"{median[(variant, kind)]:>10.1f}" for kind in KINDS)
        spread = " | ".join(" ".join(f"{v:.0f}" for v in results[(variant, kind)]) for kind in KINDS)
        print(f"{variant:<16}{cells}   {spread}")
    print()
    print("Timed alone, µs per request (steadier than the whole path on a shared machine):")
    at_ten = 0.1 * traced["traced"] + 0.9 * traced["not sampled"]
    checks = []
    for kind in KINDS:
        shipped, bare = median[("shipped", kind)], median[("bare", kind)]
        mine, none = work[f"shipped {kind}"], work[f"bare {kind}"]
        share = mine / shipped  # everything that observes a request: metrics, the access line, tracing-off hooks
        print(
            f"  {kind}: observing a request {mine:.1f} (with no-op metrics and no access line {none:.1f}), "
            f"{share:.1%} of the whole path's {shipped:.0f}"
        )
        checks.append(
            (f"{kind}: metrics, logs and tracing off under {MAX_SHARE:.0%} of the CPU per request", share < MAX_SHARE)
        )
        checks.append((f"{kind}: observing a request under {MAX_OBSERVING_US:.0f} µs", mine < MAX_OBSERVING_US))
        off, ten, every = (median[(v, kind)] - shipped for v in ("not-installed", "traced-10", "traced-100"))
        print(
            f"     whole path: shipped - bare {shipped - bare:+.1f}, not installed - tracing off {off:+.1f}, "
            f"tracing at 10 % {ten:+.1f}, every request traced {every:+.1f}"
        )
    print(
        f"  tracing on: a traced request {traced['traced']:.1f} (spans made and exported), one not sampled "
        f"{traced['not sampled']:.2f}; at 10 % sampling {at_ten:.1f} a request, "
        f"{at_ten / median[('shipped', 'json')]:.1%} of a JSON request's whole path"
    )
    checks.append((f"a traced request's tracing under {MAX_TRACED_US:.0f} µs", traced["traced"] < MAX_TRACED_US))
    checks.append(
        (f"a request not sampled under {MAX_UNSAMPLED_US:.0f} µs of tracing", traced["not sampled"] < MAX_UNSAMPLED_US)
    )
    for name, ok in checks:
        print(f"target: {name}: {'pass' if ok else 'FAIL'}")
    return 0 if all(ok for _, ok in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
