"""What each provider kind costs the gateway: `.venv/bin/python bench/providers.py`.

For the OpenAI pass-through, Anthropic (translated), Bedrock (translated and SigV4-signed) and the litellm
path (its OpenAI and Anthropic routes), JSON and streamed, against a static upstream answering each kind's
wire format (bench/static_upstream.py, the same nine words and usage for every kind): the gateway's CPU
per request at 32 connections (utime+stime of its process ÷ requests) and its added latency at one
connection (p50 through the gateway minus p50 of the same upstream path directly). Two gateways, pinned to
core 0: the native kinds in one, the litellm accounts in another (importing litellm changes the process);
the upstream and wrk on core 1. Rounds interleave every target; the table shows medians.

Targets: Anthropic's CPU per request at most 2x the OpenAI pass-through's, and its added p50 at most 1 ms
above the pass-through's (paired by round: the median of the per-round differences); exit 1 otherwise.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `bench` importable from the repo root
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import wrk  # noqa: E402
from bench.fixtures import HEALTH_PATH  # noqa: E402
from bench.processes import cpu_seconds, die_with_parent, free_port, pinned, spawn, stop, wait_ready  # noqa: E402
from bench.provider_fixtures import BEDROCK_MODEL  # noqa: E402
from gateway.auth import digest  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
GATEWAY_CPU, LOAD_CPU = 0, 1
SECRET = "bench-upstream-secret"
MAX_CPU_RATIO = 2.0  # the target for Anthropic against the pass-through
MAX_P50_MS = 1.0  # paired added latency over the pass-through's, at one connection


@dataclass(frozen=True)
class Target:
    kind: str  # the table's row
    gateway: str  # "native" or "litellm"
    json_model: str
    stream_model: str
    json_path: str  # the upstream path it reaches, for the direct baseline
    stream_path: str


TARGETS = (
    Target(
        "openai (pass-through)",
        "native",
        "openai-json",
        "openai-stream",
        "/v1/chat/completions",
        "/stream/v1/chat/completions",
    ),
    Target("anthropic", "native", "anthropic-json", "anthropic-stream", "/v1/messages", "/stream/v1/messages"),
    Target(
        "bedrock",
        "native",
        "bedrock",
        "bedrock",
        f"/model/{BEDROCK_MODEL}/converse",
        f"/model/{BEDROCK_MODEL}/converse-stream",
    ),
    Target(
        "litellm, openai route",
        "litellm",
        "litellm-openai-json",
        "litellm-openai-stream",
        "/v1/chat/completions",
        "/stream/v1/chat/completions",
    ),
    Target(
        "litellm, anthropic route",
        "litellm",
        "litellm-claude-json",
        "litellm-claude-stream",
        "/v1/messages",
        "/stream/v1/messages",
    ),
)


def _account(kind: str, base_url: str, model: str, upstream_model: str, **extra: object) -> dict[str, object]:
    spec: dict[str, object] = {"upstream_model": upstream_model}
    if "bench-model" in upstream_model:  # not in the catalog: priced explicitly
        spec["price"] = {"input_per_mtok": 0, "output_per_mtok": 0}
    return {"kind": kind, "base_url": base_url, "api_key_env": "BENCH_SECRET", "models": {model: spec}, **extra}


def config(port: int, accounts: dict[str, dict[str, object]]) -> str:
    """The gateway's config, as JSON (which YAML reads as it is)."""
    keys = [{"name": "bench", "key_sha256": digest("bench-key"), "models": ["*"]}]
    document = {"server": {"port": port, "access_log": False}, "policies": {"dir": ""}, "keys": keys}
    return json.dumps({**document, "providers": accounts}, indent=1)


def native_config(port: int, up: str) -> str:
    aws = {"region": "us-east-1", "aws_access_key_id_env": "BENCH_KEY_ID", "aws_secret_access_key_env": "BENCH_SECRET"}
    bedrock = _account("bedrock", up, "bedrock", BEDROCK_MODEL, **aws)
    del bedrock["api_key_env"]  # signed with SigV4, as a real account is
    return config(
        port,
        {
            "openai-json": _account("openai", f"{up}/v1", "openai-json", "bench-model"),
            "openai-stream": _account("openai", f"{up}/stream/v1", "openai-stream", "bench-model"),
            "anthropic-json": _account("anthropic", up, "anthropic-json", "claude-haiku-4-5"),
            "anthropic-stream": _account("anthropic", f"{up}/stream", "anthropic-stream", "claude-haiku-4-5"),
            "bedrock": bedrock,
        },
    )


def litellm_config(port: int, up: str) -> str:
    return config(
        port,
        {
            "litellm-openai-json": _account("litellm", f"{up}/v1", "litellm-openai-json", "openai/bench-model"),
            "litellm-openai-stream": _account(
                "litellm", f"{up}/stream/v1", "litellm-openai-stream", "openai/bench-model"
            ),
            "litellm-claude-json": _account("litellm", up, "litellm-claude-json", "anthropic/claude-haiku-4-5"),
            "litellm-claude-stream": _account(
                "litellm", f"{up}/stream", "litellm-claude-stream", "anthropic/claude-haiku-4-5"
            ),
        },
    )


def script(workdir: Path, model: str, stream: bool) -> Path:
    """A wrk script posting the bench's chat request for `model` (bench/post_json.lua's, with its model)."""
    body = {
        "model": model,
        "messages": [
            {"role": "system", "content": "You are a terse assistant."},
            {"role": "user", "content": "Say hello in a few words."},
        ],
        "max_tokens": 32,
        **({"stream": True, "stream_options": {"include_usage": True}} if stream else {}),
    }
    path = workdir / f"{model}-{'stream' if stream else 'json'}.lua"
    path.write_text(
        'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
        'wrk.headers["Authorization"] = "Bearer bench-key"\n'
        f"wrk.body = {json.dumps(json.dumps(body))}\n"
        f'dofile("{ROOT / "bench" / "wrk_summary.lua"}")\n'
    )
    return path


def run_wrk(port: int, path: str, lua: Path, connections: int, duration: float) -> wrk.WrkResult:
    binary = wrk.available()
    if binary is None:
        raise SystemExit("wrk is not installed (apt-get install -y wrk)")
    argv = [binary, "-t1", f"-c{connections}", f"-d{max(1, round(duration))}s", "--timeout", "10s", "-s", str(lua)]
    done = subprocess.run(
        pinned(LOAD_CPU, [*argv, f"http://127.0.0.1:{port}{path}"]),
        capture_output=True,
        text=True,
        timeout=duration + 60,
        check=False,
        preexec_fn=die_with_parent,
    )
    if done.returncode != 0:
        raise SystemExit(f"wrk failed: {done.stderr or done.stdout}")
    return wrk.parse(done.stdout)


@dataclass
class Samples:
    cpu_ms: list[float] = field(default_factory=list)
    p50_ms: list[float] = field(default_factory=list)
    direct_p50_ms: list[float] = field(default_factory=list)
    errors: int = 0


def start(stack: contextlib.ExitStack, workdir: Path, name: str, text: str, port: int) -> int:
    config = workdir / f"{name}.yaml"
    config.write_text(text)
    log = workdir / f"{name}.log"
    argv = [sys.executable, "-m", "gateway", "serve", "--config", str(config)]
    env_argv = ["env", f"BENCH_SECRET={SECRET}", "BENCH_KEY_ID=AKIABENCHBENCH", *argv]
    proc = spawn(pinned(GATEWAY_CPU, env_argv), log, cwd=ROOT)
    stack.callback(stop, proc)
    if wait_ready(proc, port, "/readyz", timeout=120.0) is None:
        raise SystemExit(f"the {name} gateway did not start:\n{log.read_text()[-3000:]}")
    return proc.pid


def measure(args: argparse.Namespace) -> dict[str, dict[str, Samples]]:
    results = {t.kind: {"json": Samples(), "stream": Samples()} for t in TARGETS}
    with contextlib.ExitStack() as stack, tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        up_port = free_port()
        upstream = spawn(
            pinned(LOAD_CPU, [sys.executable, "-m", "bench.static_upstream", "--port", str(up_port)]),
            workdir / "up.log",
            cwd=ROOT,
        )
        stack.callback(stop, upstream)
        if wait_ready(upstream, up_port, HEALTH_PATH, timeout=10.0) is None:
            raise SystemExit("the static upstream did not start")
        up = f"http://127.0.0.1:{up_port}"
        ports = {"native": free_port(), "litellm": free_port()}
        pids = {"native": start(stack, workdir, "native", native_config(ports["native"], up), ports["native"])}
        if not args.no_litellm:
            pids["litellm"] = start(stack, workdir, "litellm", litellm_config(ports["litellm"], up), ports["litellm"])
        targets = [t for t in TARGETS if t.gateway in pids]
        for n in range(args.rounds):
            order = targets if n % 2 == 0 else targets[::-1]
            for target in order:
                for shape in ("json", "stream"):
                    model = target.json_model if shape == "json" else target.stream_model
                    path = target.json_path if shape == "json" else target.stream_path
                    lua = script(workdir, model, shape == "stream")
                    port, pid = ports[target.gateway], pids[target.gateway]
                    samples = results[target.kind][shape]
                    direct = run_wrk(up_port, path, lua, 1, args.duration)
                    one = run_wrk(port, "/v1/chat/completions", lua, 1, args.duration)
                    before = cpu_seconds(pid)
                    loaded = run_wrk(port, "/v1/chat/completions", lua, args.connections, args.duration)
                    used = cpu_seconds(pid) - before
                    samples.direct_p50_ms.append(direct.p50_us / 1000)
                    samples.p50_ms.append(one.p50_us / 1000)
                    samples.cpu_ms.append(used * 1000 / max(1, loaded.requests))
                    samples.errors += one.non_2xx + one.socket_errors + loaded.non_2xx + loaded.socket_errors
                    print(
                        f"round {n + 1} {target.kind} {shape}: p50 {one.p50_us / 1000:.3f} ms "
                        f"(direct {direct.p50_us / 1000:.3f}), CPU {samples.cpu_ms[-1]:.3f} ms/request "
                        f"over {loaded.requests} requests, {loaded.rps:.0f} req/s",
                        file=sys.stderr,
                        flush=True,
                    )
                    time.sleep(0.2)
    return results


def _paired(samples: Samples, base: Samples) -> float:
    """Median over rounds of (this kind's added p50 - the pass-through's), each pair from the same round: the
    shared machine's load moves both alike, so the pair says more than two medians would."""
    added = [p - d for p, d in zip(samples.p50_ms, samples.direct_p50_ms, strict=True)]
    baseline = [p - d for p, d in zip(base.p50_ms, base.direct_p50_ms, strict=True)]
    return statistics.median(a - b for a, b in zip(added, baseline, strict=True))


def report(results: dict[str, dict[str, Samples]]) -> bool:
    base = results[TARGETS[0].kind]
    columns = ("kind", "CPU per request, JSON / stream", "vs pass-through", "added p50, JSON / stream")
    print("| " + " | ".join((*columns, "p50 vs pass-through", "errors")) + " |")
    print("|---|---|---|---|---|---|")
    ok = True
    for kind, shapes in results.items():
        if not shapes["json"].cpu_ms:
            continue
        cpu = {s: statistics.median(shapes[s].cpu_ms) for s in shapes}
        ratio = {s: cpu[s] / statistics.median(base[s].cpu_ms) for s in shapes}
        added = {s: statistics.median(shapes[s].p50_ms) - statistics.median(shapes[s].direct_p50_ms) for s in shapes}
        paired = {s: _paired(shapes[s], base[s]) for s in shapes}
        errors = shapes["json"].errors + shapes["stream"].errors
        print(
            f"| {kind} | {cpu['json']:.3f} / {cpu['stream']:.3f} ms | {ratio['json']:.2f}x / {ratio['stream']:.2f}x "
            f"| +{added['json']:.2f} / +{added['stream']:.2f} ms | {paired['json']:+.2f} / {paired['stream']:+.2f} ms "
            f"| {errors} |"
        )
        if kind == "anthropic" and (max(ratio.values()) > MAX_CPU_RATIO or max(paired.values()) > MAX_P50_MS):
            ok = False
        ok = ok and errors == 0
    print(
        f"\ntargets (Anthropic: CPU per request at most {MAX_CPU_RATIO:g}x the pass-through's, added p50 at most "
        f"{MAX_P50_MS:g} ms above it; no errors): {'met' if ok else 'MISSED'}"
    )
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per wrk run (default 5)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    parser.add_argument("--connections", type=int, default=32, help="connections of the CPU runs (default 32)")
    parser.add_argument("--no-litellm", action="store_true", help="skip the litellm gateway")
    parser.add_argument("--quick", action="store_true", help="smoke run: 2 s per run, 1 round")
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "providers.json")
    parser.add_argument("--report", type=Path, help="print the tables of a saved --output file, measure nothing")
    args = parser.parse_args()
    if args.report is not None:
        saved = json.loads(args.report.read_text())
        return 0 if report({k: {s: Samples(**v) for s, v in shapes.items()} for k, shapes in saved.items()}) else 1
    if args.quick:
        args.duration, args.rounds = 2.0, 1
    results = measure(args)
    args.output.write_text(
        json.dumps({k: {s: vars(v) for s, v in shapes.items()} for k, shapes in results.items()}, indent=1)
    )
    return 0 if report(results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
