"""Benchmark the gateway against a fast fake upstream: `.venv/bin/python bench/run.py`.

For JSON and streaming chat completions it measures the upstream directly and through the
gateway, interleaved over several rounds: latency p50/p99 at one connection, throughput at 32,
plus the gateway's CPU time per request, RSS after load and start-up time. The gateway runs on
core 0; the upstream (nginx, or bench/upstream.py without it) and wrk share core 1.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

if __package__ in (None, ""):  # run as a script: make `bench` importable from the repo root
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import gateway, nginx, report, wrk  # noqa: E402
from bench.fixtures import (  # noqa: E402
    HEALTH_PATH,
    JSON_PATH,
    STREAM_PATH,
    chat_completion,
    chat_completion_stream,
)
from bench.processes import (  # noqa: E402
    cpu_seconds,
    free_port,
    http_post,
    log_tail,
    pinned,
    rss_bytes,
    spawn,
    stop,
    wait_ready,
)
from bench.report import KINDS, Measurements  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
CONNECTIONS = (1, 32)


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
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "results.json")
    args = parser.parse_args(argv)
    if args.quick:
        args.duration, args.rounds = 2.0, 1
    return args


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def start_upstream(stack: contextlib.ExitStack, workdir: Path, cpu: int, use_nginx: bool) -> tuple[int, str]:
    """Start the fake upstream pinned to `cpu`, check its bodies; (port, description)."""
    port = free_port()
    binary = nginx.available() if use_nginx else None
    if binary is not None:
        argv, name = nginx.command(binary, workdir, port), f"nginx ({binary}, 1 worker)"
    else:
        argv = [sys.executable, "-m", "bench.upstream", "--port", str(port)]
        name = "bench/upstream.py (asyncio" + (", nginx not found)" if use_nginx else ")")
    proc = spawn(pinned(cpu, argv), workdir / "upstream.log", cwd=ROOT)
    stack.callback(stop, proc)
    if wait_ready(proc, port, HEALTH_PATH, timeout=10.0) is None:
        raise SystemExit(f"fake upstream did not start: {log_tail(workdir / 'upstream.log')}")
    for path, want in ((JSON_PATH, chat_completion()), (STREAM_PATH, chat_completion_stream())):
        status, _, body = http_post(port, path, b"{}", {"Content-Type": "application/json"})
        if status != 200 or body != want:
            raise SystemExit(f"fake upstream answered {path} with HTTP {status} and a different body")
    return port, name


def time_startups(argv: list[str], count: int, cpu: int, port: int, log: Path, m: Measurements) -> gateway.Gateway:
    """Start the gateway `count` times, recording each start-up; the last one is left running."""
    for i in range(count):
        gw = gateway.start(argv, cpu, port, log, cwd=ROOT)
        m.startups_s.append(gw.startup_s)
        say(f"gateway start {i + 1}/{count}: ready in {gw.startup_s:.3f} s")
        if i == count - 1:
            return gw
        gw.stop()
    raise ValueError("count must be at least 1")


@dataclass(frozen=True)
class Target:
    """Where wrk sends each kind of request: the upstream itself, or the gateway."""

    name: str
    port: int
    paths: dict[str, str]
    pid: int | None = None  # the gateway's, for its CPU time and RSS


def measure(binary: str, cpu: int, target: Target, kind: str, conns: int, duration: float) -> wrk.WrkResult:
    """One wrk run against `target`, with a progress line on stderr."""
    result = wrk.run(binary, cpu, target.port, target.paths[kind], kind, conns, duration)
    flag = "" if result.ok else f"  ERRORS non-2xx={result.non_2xx} socket={result.socket_errors}"
    say(
        f"  {kind:6} c={conns:<2} {target.name:7} {result.rps:9,.0f} req/s  "
        f"p50 {result.p50_us / 1000:.3f} ms  p99 {result.p99_us / 1000:.3f} ms{flag}"
    )
    return result


def start_gateway(
    args: argparse.Namespace,
    stack: contextlib.ExitStack,
    workdir: Path,
    cpu: int,
    up_port: int,
    m: Measurements,
) -> Target | None:
    """Start (and time) the gateway and check its answers; None, with the reason in `m`, if it fails."""
    port = free_port()
    config = workdir / "gateway.yaml"
    config.write_text(gateway.config_yaml(port, up_port))
    argv = gateway.command(args.gateway_cmd, config, port)
    try:
        gw = time_startups(argv, max(1, args.starts), cpu, port, workdir / "gateway.log", m)
        stack.callback(gw.stop)
        problems = gateway.check(port, JSON_PATH)
        if problems:
            raise gateway.GatewayError("gateway answered wrongly:\n" + "\n".join(problems))
    except gateway.GatewayError as e:
        m.gateway_error = str(e)
        say(f"GATEWAY NOT MEASURED: {e}")
        return None
    # The gateway serves both kinds on one path; the model picks the upstream path.
    return Target("gateway", port, {"json": JSON_PATH, "stream": JSON_PATH}, gw.pid)


def run_rounds(args: argparse.Namespace, binary: str, cpu: int, targets: list[Target], m: Measurements) -> None:
    """Warm up, then `args.rounds` rounds, each running every target back to back per setting."""
    for target in targets:
        for kind in KINDS:
            wrk.run(binary, cpu, target.port, target.paths[kind], kind, 32, min(2.0, args.duration))
    for rnd in range(args.rounds):
        say(f"round {rnd + 1}/{args.rounds}")
        order = targets if rnd % 2 == 0 else targets[::-1]
        for kind in KINDS:
            for conns in CONNECTIONS:
                for target in order:
                    pid = target.pid if conns == 32 else None
                    before = cpu_seconds(pid) if pid is not None else 0.0
                    result = measure(binary, cpu, target, kind, conns, args.duration)
                    m.add(target.name, kind, conns, result)
                    if pid is not None and result.requests:
                        cpu_ms = (cpu_seconds(pid) - before) * 1000 / result.requests
                        m.cpu_ms_per_request.setdefault(kind, []).append(cpu_ms)


def benchmark(args: argparse.Namespace, workdir: Path, m: Measurements) -> dict[str, str]:
    """Everything between starting the processes and stopping them; returns machine notes."""
    wrk_bin = wrk.available()
    if wrk_bin is None:
        raise SystemExit("wrk is not installed: apt-get install -y wrk nginx-light")
    gw_cpu, load_cpu = (0, 1) if len(os.sched_getaffinity(0)) >= 2 else (0, 0)
    with contextlib.ExitStack() as stack:
        up_port, up_name = start_upstream(stack, workdir, load_cpu, not args.no_nginx)
        say(f"upstream: {up_name} on 127.0.0.1:{up_port}, core {load_cpu}")
        targets = [Target("direct", up_port, {"json": JSON_PATH, "stream": STREAM_PATH})]
        gw = start_gateway(args, stack, workdir, gw_cpu, up_port, m)
        if gw is not None:
            targets.append(gw)
        run_rounds(args, wrk_bin, load_cpu, targets, m)
        if gw is not None and gw.pid is not None:
            m.rss_mb = rss_bytes(gw.pid) / 2**20
            if not all(r.ok for key, runs in m.runs.items() if key.startswith("gateway/") for r in runs):
                m.gateway_log_tail = log_tail(workdir / "gateway.log", 40)
    return {"upstream": up_name, "wrk": f"wrk -t1, core {load_cpu}; gateway on core {gw_cpu}"}


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started with SIGINT ignored
    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGHUP, _terminate)
    m = Measurements()
    with tempfile.TemporaryDirectory(prefix="llm-gateway-bench-") as tmp:
        notes = benchmark(args, Path(tmp), m)
    settings = {"duration_s": args.duration, "rounds": args.rounds, "gateway_cmd": args.gateway_cmd}
    info = report.machine(notes["upstream"], notes["wrk"])
    table = report.rows(m)
    print(report.render(table, info, settings))
    if m.gateway_error:
        print(f"\ngateway not measured: {m.gateway_error}")
    if m.gateway_log_tail:
        print(f"\ngateway runs had errors; end of the gateway's log:\n{m.gateway_log_tail}")
    report.write_json(args.output, m, table, info, settings)
    print(f"\nwrote {args.output}")
    if any(r.verdict == "FAIL" for r in table):
        return 1
    return 2 if m.gateway_error else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        say("interrupted: the upstream and the gateway were stopped")
        sys.exit(130)
