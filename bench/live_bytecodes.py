"""The gateway's work per served request, counted instead of timed: Python bytecodes a chat completion executes.

    .venv/bin/python bench/live_bytecodes.py                      # JSON and stream, by file and by function
    .venv/bin/python bench/live_bytecodes.py --kinds json --top 80
    .venv/bin/python bench/live_bytecodes.py --redis redis://127.0.0.1:6379/0   # with the Redis limiter

The whole request path in process, as bench/observability.py drives it (the app through ASGI with no HTTP
server: Starlette, the proxy endpoint, routing, the walk, the aiohttp call, the relay, metrics and the access
line), 8 requests at a time, against bench/upstream.py in another process (the bench's static chat completion
and its 13-event stream), traced opcode by opcode; the harness's own bytecodes are left out. Like
bench/sim_bytecodes.py it is a count, which neither the machine nor its load moves, so two versions of the code
compare exactly; it leaves out C (the HTTP parsers, uvloop, orjson), the interpreter's own work between
bytecodes and the access log's writer thread. The served gateway's CPU is measured by bench/run.py.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import os
import sys
import tempfile
from pathlib import Path
from typing import TextIO

if __name__ == "__main__":  # run as a script: import the gateway package, not bench/gateway.py
    sys.path[0] = str(Path(__file__).resolve().parent.parent)
    # The Python sources' work is what is counted: mypyc's compiled modules run no bytecodes at all.
    os.environ["GATEWAY_PURE_PYTHON"] = "1"

from bench.fixtures import HEALTH_PATH  # noqa: E402
from bench.gateway import config_yaml  # noqa: E402
from bench.observability import KINDS, drive  # noqa: E402
from bench.processes import free_port, log_tail, spawn, stop, wait_ready  # noqa: E402
from bench.sim_bytecodes import Counter  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
WARM = 400  # requests before counting, and the warm-up drive() makes itself (counted: the path is warm by then)


def count(kind: str, requests: int, upstream: int, directory: Path, redis: str | None) -> tuple[int, Counter]:
    """(requests counted, the counter) for ``requests`` of ``kind`` through a fresh app; with ``redis``, the
    bench's Redis limiter config (limits on the account, the model and the key, never binding)."""
    from gateway.app import build_app
    from gateway.config import load_settings
    from gateway.providers import REGISTRY

    config = directory / f"{kind}.yaml"
    # Traced, a request runs tens of times slower: Redis's deadline is raised so that a busy machine is not
    # taken for Redis being down (a deadline's value changes no count).
    slack = "limits:\n  redis_deadline_ms: 2000\n" if redis else ""
    config.write_text(config_yaml(8080, upstream, redis) + slack)
    app = build_app(load_settings(str(config), {}, kinds=REGISTRY))
    counter = Counter(set())

    async def main() -> None:
        async with app.router.lifespan_context(app):
            await drive(app, kind, WARM)
            sys.settrace(counter)
            try:
                await drive(app, kind, requests)
            finally:
                sys.settrace(None)

    asyncio.run(main())
    return requests + WARM, counter


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--kinds", default="json,stream", help="json, stream or both (comma-separated)")
    parser.add_argument("--requests", type=int, default=400, help="requests counted after the warm-up")
    parser.add_argument("--top", type=int, default=40, help="functions listed")
    parser.add_argument("--redis", help="a Redis URL: count the gateway with the Redis limiter (its keys are left)")
    args = parser.parse_args()
    with contextlib.suppress(ImportError):
        import uvloop

        uvloop.install()
    report = os.fdopen(os.dup(1), "w")
    os.dup2(os.open(os.devnull, os.O_WRONLY), 1)  # the access log goes to stdout: written, then discarded
    with tempfile.TemporaryDirectory(prefix="live-bytecodes-") as tmp:
        directory, port = Path(tmp), free_port()
        upstream = spawn([sys.executable, "-m", "bench.upstream", "--port", str(port)], directory / "up.log", ROOT)
        try:
            if wait_ready(upstream, port, HEALTH_PATH, timeout=10.0) is None:
                raise SystemExit(f"bench/upstream.py did not start: {log_tail(directory / 'up.log')}")
            for kind in args.kinds.split(","):
                if kind not in KINDS:
                    raise SystemExit(f"unknown kind {kind!r}: json or stream")
                n, counter = count(kind, args.requests, port, directory, args.redis)
                _print(report, kind, n, counter, args.top)
        finally:
            stop(upstream)
    report.close()
    return 0


def _print(out: TextIO, kind: str, n: int, counter: Counter, top: int) -> None:
    def say(text: str) -> None:
        print(text, file=out)

    served = {where: found for where, found in counter.by_function.items() if not where[0].startswith("bench/")}
    say(f"{kind}: {n} requests, {sum(served.values()) / n:,.0f} bytecodes per request")
    by_file: collections.Counter[str] = collections.Counter()
    for (file, _), found in served.items():
        by_file[file] += found
    say("\nper request, by file:")
    for file, found in by_file.most_common(25):
        say(f"{found / n:9.1f}  {file}")
    say("\nper request, by function:")
    for (file, function), found in collections.Counter(served).most_common(top):
        say(f"{found / n:9.1f}  {file} {function}")
    say("")


if __name__ == "__main__":
    sys.exit(main())
