"""What wrk is pointed at: the fake upstream itself, the gateway with limits off or on Redis, and the bare
pass-through that is the floor under the gateway."""

from __future__ import annotations

import contextlib
import sys
from dataclasses import dataclass
from pathlib import Path

from bench import gateway, nginx
from bench.fixtures import (
    HEALTH_PATH,
    JSON_PATH,
    STREAM_PATH,
    chat_completion,
    chat_completion_stream,
)
from bench.processes import free_port, http_post, log_tail, pinned, spawn, stop, wait_ready
from bench.redis_server import CommandCounter
from bench.report import PASSTHROUGH, Measurements, say

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Target:
    """Where wrk sends each kind of request: the upstream itself, or a gateway."""

    name: str
    port: int
    paths: dict[str, str]
    pid: int | None = None  # the gateway's, for its CPU time and RSS
    redis: CommandCounter | None = None  # counts what this gateway sends to the bench's Redis


def start_upstream(stack: contextlib.ExitStack, workdir: Path, cpu: int, use_nginx: bool) -> tuple[Target, str]:
    """Start the fake upstream pinned to `cpu`, check its bodies; (target, description)."""
    port = free_port()
    binary = nginx.available() if use_nginx else None
    if binary is not None:
        argv, name = nginx.command(binary, workdir, port), f"nginx ({binary}, 1 worker)"
    else:
        argv = [sys.executable, "-m", "bench.upstream", "--port", str(port)]
        name = "bench/upstream.py (asyncio" + (", nginx not found)" if use_nginx else ")")
    _start_static(stack, "fake upstream", argv, cpu, port, workdir / "upstream.log")
    return Target("direct", port, {"json": JSON_PATH, "stream": STREAM_PATH}), name


def _start_static(stack: contextlib.ExitStack, name: str, argv: list[str], cpu: int, port: int, log: Path) -> int:
    """Start `argv` pinned to `cpu`, wait for its health path and check it answers the bench's bodies; its pid."""
    proc = spawn(pinned(cpu, argv), log, cwd=ROOT)
    stack.callback(stop, proc)
    if wait_ready(proc, port, HEALTH_PATH, timeout=10.0) is None:
        raise SystemExit(f"{name} did not start: {log_tail(log)}")
    for path, want in ((JSON_PATH, chat_completion()), (STREAM_PATH, chat_completion_stream())):
        status, _, body = http_post(port, path, b"{}", {"Content-Type": "application/json"})
        if status != 200 or body != want:
            raise SystemExit(f"{name} answered {path} with HTTP {status} and a different body")
    return proc.pid


def _start_timed(argv: list[str], count: int, cpu: int, port: int, log: Path, m: Measurements) -> gateway.Gateway:
    """Start the gateway `count` times, recording each start-up; the last one is left running."""
    for i in range(count):
        gw = gateway.start(argv, cpu, port, log, cwd=ROOT)
        m.startups_s.append(gw.startup_s)
        say(f"gateway start {i + 1}/{count}: ready in {gw.startup_s:.3f} s")
        if i == count - 1:
            return gw
        gw.stop()
    raise ValueError("count must be at least 1")


def start_gateway(
    name: str,
    cmd: str,
    starts: int,
    stack: contextlib.ExitStack,
    workdir: Path,
    cpu: int,
    up_port: int,
    m: Measurements,
    redis: tuple[str, CommandCounter] | None = None,
) -> Target | None:
    """Start the gateway and check its answers; None, with the reason in `m`, if it fails.

    With `starts` > 0 its start-ups are timed (the table's start-up row); `redis` = (URL, counter)
    gives it the Redis limiter config, and it must then report the limiter on Redis before load.
    """
    port = free_port()
    slug = name.replace("+", "-")
    config = workdir / f"{slug}.yaml"
    config.write_text(gateway.config_yaml(port, up_port, redis[0] if redis else None))
    argv = gateway.command(cmd, config, port)
    log = workdir / f"{slug}.log"
    try:
        if starts > 0:
            gw = _start_timed(argv, starts, cpu, port, log, m)
        else:
            gw = gateway.start(argv, cpu, port, log, cwd=ROOT)
            say(f"{name} start: ready in {gw.startup_s:.3f} s")
        stack.callback(gw.stop)
        if redis is not None and (mode := gateway.wait_for_mode(port, "redis")) != "redis":
            raise gateway.GatewayError(f"{name}: limiter mode {mode!r}, not 'redis'; end of its log:\n{log_tail(log)}")
        problems = gateway.check(port, JSON_PATH)
        if problems:
            raise gateway.GatewayError(f"{name} answered wrongly:\n" + "\n".join(problems))
    except gateway.GatewayError as e:
        m.gateway_error = f"{m.gateway_error}\n{e}" if m.gateway_error else str(e)
        say(f"{name.upper()} NOT MEASURED: {e}")
        return None
    m.logs[name] = log
    # The gateway serves both kinds on one path; the model picks the upstream path.
    paths = {"json": JSON_PATH, "stream": JSON_PATH}
    return Target(name, port, paths, gw.pid, redis[1] if redis else None)


def start_passthrough(stack: contextlib.ExitStack, workdir: Path, cpu: int, up_port: int) -> Target:
    """The bare Starlette + aiohttp pass-through (``bench/passthrough.py``) on the gateway's core."""
    port = free_port()
    argv = [sys.executable, "-m", "bench.passthrough", "--port", str(port), "--upstream", str(up_port)]
    pid = _start_static(stack, "the pass-through", argv, cpu, port, workdir / "passthrough.log")
    return Target(PASSTHROUGH, port, {"json": JSON_PATH, "stream": STREAM_PATH}, pid)
