"""Benchmark the gateway against a fast fake upstream: `.venv/bin/python bench/run.py`.

For JSON and streaming chat completions it measures the upstream directly and through the
gateway, interleaved over several rounds: latency p50/p99 at one connection, throughput at 32,
plus the gateway's CPU time per request, RSS after load and start-up time. With `--limits both`
(the default) a second gateway with the Redis rate limiter runs in the same rounds, against the
bench's own redis-server, counting the Redis commands it sends per request. A bare Starlette + aiohttp
pass-through (bench/passthrough.py) runs in the same rounds too, unless --no-passthrough: the floor the
gateway is compared with. The gateways and the pass-through run on core 0; the upstream (nginx, or
bench/upstream.py without it), redis-server and wrk share core 1.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import tempfile
import time
from pathlib import Path
from types import FrameType

if __package__ in (None, ""):  # run as a script: make `bench` importable from the repo root
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import gateway, limiter, redis_server, report, wrk  # noqa: E402
from bench.processes import cpu_seconds, free_port, rss_bytes  # noqa: E402
from bench.redis_server import CommandCounter, RedisRun, RedisServer  # noqa: E402
from bench.report import KINDS, Measurements, say  # noqa: E402
from bench.targets import Target, start_gateway, start_passthrough, start_upstream  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
CONNECTIONS = (1, 32)
SETTLE_WAIT_S = 0.2  # after wrk stops, for the last reconcile calls to reach Redis


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per wrk run (default 10)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 2 s per run, 1 round")
    parser.add_argument(
        "--gateway-cmd",
        default=gateway.DEFAULT_CMD,
        help="gateway command; {python}, {config} and {port} are filled in (default: %(default)s)",
    )
    parser.add_argument("--starts", type=int, default=3, help="gateway starts timed (default 3)")
    parser.add_argument("--no-nginx", action="store_true", help="use bench/upstream.py even if nginx exists")
    parser.add_argument("--no-passthrough", action="store_true", help="leave out the bare pass-through's runs")
    parser.add_argument(
        "--floor",
        action="store_true",
        help="only what the comparison with the pass-through needs: JSON at 32 connections, the gateway and the "
        "pass-through (tests/test_benchmark.py)",
    )
    parser.add_argument(
        "--limits",
        choices=("off", "redis", "both"),
        default="both",
        help="gateway rate limits: off, the Redis limiter (own redis-server), or both interleaved (default both)",
    )
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "results.json")
    args = parser.parse_args(argv)
    if args.quick:
        args.duration, args.rounds = 2.0, 1
    return args


def measure(binary: str, cpu: int, target: Target, kind: str, conns: int, duration: float) -> wrk.WrkResult:
    """One wrk run against `target`, with a progress line on stderr."""
    result = wrk.run(binary, cpu, target.port, target.paths[kind], kind, conns, duration)
    flag = "" if result.ok else f"  ERRORS non-2xx={result.non_2xx} socket={result.socket_errors}"
    say(
        f"  {kind:6} c={conns:<2} {target.name:13} {result.rps:9,.0f} req/s  "
        f"p50 {result.p50_us / 1000:.3f} ms  p99 {result.p99_us / 1000:.3f} ms{flag}"
    )
    return result


def measure_counted(
    binary: str, cpu: int, target: Target, kind: str, conns: int, duration: float, redis: RedisServer, m: Measurements
) -> wrk.WrkResult:
    """`measure`, with the Redis commands `target` sent during the run (and its limiter mode after it)."""
    if target.redis is None:
        raise ValueError(f"{target.name} has no Redis command counter")
    # A fallback to local buckets in an earlier run must not spill into this one.
    mode_before = gateway.wait_for_mode(target.port, "redis", timeout=10.0)
    served_before = gateway.requests_served(target.port)
    log_offset = gateway.log_size(m.logs[target.name])
    redis_before = cpu_seconds(redis.proc.pid)
    target.redis.begin()
    result = measure(binary, cpu, target, kind, conns, duration)
    redis_cpu_ms = (cpu_seconds(redis.proc.pid) - redis_before) * 1000
    time.sleep(SETTLE_WAIT_S)
    t = target.redis.end()
    served_after = gateway.requests_served(target.port)
    served = served_after - served_before if served_after is not None and served_before is not None else None
    mode = gateway.limiter_mode(target.port)
    degraded = gateway.degradations(m.logs[target.name], log_offset)
    run = RedisRun(target.name, kind, conns, result.requests, served, t, mode_before, mode, degraded, redis_cpu_ms)
    m.redis_runs.append(run)
    per_request = t.replies / (served or result.requests or 1)
    say(
        f"    redis: {per_request:.4f} round trips/request served ({served} served, {result.requests} by wrk), "
        f"{t.connections} new connections, limiter mode {mode_before} -> {mode}, fell back to local {degraded}x"
    )
    return result


def run_rounds(
    args: argparse.Namespace, binary: str, cpu: int, targets: list[Target], redis: RedisServer | None, m: Measurements
) -> None:
    """Warm up, then `args.rounds` rounds, each running every target back to back per setting."""
    kinds, connections = (("json",), (32,)) if args.floor else (tuple(KINDS), CONNECTIONS)
    for target in targets:
        for kind in kinds:
            wrk.run(binary, cpu, target.port, target.paths[kind], kind, 32, min(2.0, args.duration))
    for rnd in range(args.rounds):
        say(f"round {rnd + 1}/{args.rounds}")
        order = targets if rnd % 2 == 0 else targets[::-1]
        for kind in kinds:
            for conns in connections:
                for target in order:
                    pid = target.pid if conns == 32 else None
                    before = cpu_seconds(pid) if pid is not None else 0.0
                    if target.redis is not None and redis is not None:
                        result = measure_counted(binary, cpu, target, kind, conns, args.duration, redis, m)
                    else:
                        result = measure(binary, cpu, target, kind, conns, args.duration)
                    m.add(target.name, kind, conns, result)
                    if pid is not None and result.requests:
                        cpu_ms = (cpu_seconds(pid) - before) * 1000 / result.requests
                        m.cpu_ms_per_request.setdefault(target.name, {}).setdefault(kind, []).append(cpu_ms)


def start_redis(stack: contextlib.ExitStack, workdir: Path, cpu: int) -> RedisServer:
    binary = redis_server.available()
    if binary is None:
        raise SystemExit("redis-server is not installed: apt-get install -y redis-server (or use --limits off)")
    server = redis_server.start(binary, cpu, free_port(), workdir)
    stack.callback(server.stop)
    say(f"redis: redis-server {server.version} on 127.0.0.1:{server.port}, core {cpu}")
    return server


def start_gateways(
    args: argparse.Namespace,
    stack: contextlib.ExitStack,
    workdir: Path,
    cpus: tuple[int, int],
    up_port: int,
    m: Measurements,
) -> tuple[list[Target], RedisServer | None]:
    """The gateway(s) --limits asks for (the first one's start-ups timed), and the Redis they use.

    `cpus` = (the gateways' core, the load core, where redis-server runs beside nginx and wrk).
    """
    cpu, load_cpu = cpus
    redis = start_redis(stack, workdir, load_cpu) if args.limits != "off" else None
    counted = (redis.url, CommandCounter(redis.port)) if redis is not None else None
    starts = max(1, args.starts)
    own = counted if args.limits == "redis" else None  # with --limits redis the one gateway uses Redis
    first = start_gateway("gateway", args.gateway_cmd, starts, stack, workdir, cpu, up_port, m, own)
    targets = [first] if first is not None else []
    if args.limits == "both":
        second = start_gateway("gateway+redis", args.gateway_cmd, 0, stack, workdir, cpu, up_port, m, counted)
        targets += [second] if second is not None else []
    return targets, redis


def benchmark(args: argparse.Namespace, workdir: Path, m: Measurements) -> dict[str, str]:
    """Everything between starting the processes and stopping them; returns machine notes."""
    wrk_bin = wrk.available()
    if wrk_bin is None:
        raise SystemExit("wrk is not installed: apt-get install -y wrk nginx-light")
    gw_cpu, load_cpu = (0, 1) if len(os.sched_getaffinity(0)) >= 2 else (0, 0)
    with contextlib.ExitStack() as stack:
        direct, up_name = start_upstream(stack, workdir, load_cpu, not args.no_nginx)
        say(f"upstream: {up_name} on 127.0.0.1:{direct.port}, core {load_cpu}")
        gateways, redis = start_gateways(args, stack, workdir, (gw_cpu, load_cpu), direct.port, m)
        floor = (
            []
            if args.no_passthrough or args.limits == "redis"
            else [start_passthrough(stack, workdir, gw_cpu, direct.port)]
        )
        targets = [*gateways, *floor] if args.floor else [direct, *gateways, *floor]
        run_rounds(args, wrk_bin, load_cpu, targets, redis, m)
        m.redis_idle = [t for gw in gateways if gw.redis is not None for t in gw.redis.idle]
        for gw in gateways:
            if gw.pid is not None:
                m.rss_mb[gw.name] = rss_bytes(gw.pid) / 2**20
        bad = [
            gw.name
            for gw in gateways
            if not all(r.ok for k, v in m.runs.items() if k.startswith(f"{gw.name}/") for r in v)
        ]
        if bad:
            m.gateway_log_tail = "\n".join(f"--- {n}\n{gateway.notable_lines(m.logs[n])}" for n in bad)
    return {
        "upstream": up_name,
        "wrk": f"wrk -t1, core {load_cpu}; gateway on core {gw_cpu}",
        "redis": redis.version if redis is not None else "",
        "redis_cpu": str(load_cpu),
    }


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started with SIGINT ignored
    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGHUP, _terminate)
    m = Measurements(limits=args.limits)
    with tempfile.TemporaryDirectory(prefix="llm-gateway-bench-") as tmp:
        notes = benchmark(args, Path(tmp), m)
    settings = {
        "duration_s": args.duration,
        "rounds": args.rounds,
        "gateway_cmd": args.gateway_cmd,
        "limits": args.limits,
    }
    info = report.machine(notes["upstream"], notes["wrk"])
    table = report.rows(m)
    sections = [] if args.limits == "off" else [limiter.section(m, notes["redis"], int(notes["redis_cpu"]))]
    if not args.no_passthrough and args.limits != "redis":  # compared with the gateway without limits
        sections.append(report.passthrough_section(m))
    print(report.render(table, info, settings, sections))
    if m.gateway_error:
        print(f"\ngateway not measured: {m.gateway_error}")
    if m.gateway_log_tail:
        print("\ngateway runs had errors; from the gateway's log:")
        print(m.gateway_log_tail)
    limits_json = limiter.as_json(m, sections[0], notes["redis"]) if sections else None
    report.write_json(args.output, m, table, info, settings, limits_json)
    print(f"\nwrote {args.output}")
    if any(r.verdict == "FAIL" for r in [*table, *(r for s in sections for r in s.rows)]):
        return 1
    return 2 if m.gateway_error else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        say("interrupted: the upstream and the gateway were stopped")
        sys.exit(130)
