"""The gateway under test: its bench config, starting it pinned, readiness and a sanity check."""

from __future__ import annotations

import collections
import hashlib
import http.client
import json
import re
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from bench.processes import http_get, http_post, log_tail, pinned, spawn, stop, wait_ready

DEFAULT_CMD = "{python} -m gateway serve --config {config}"
JSON_MODEL = "bench-model"
STREAM_MODEL = "bench-stream-model"
READY_PATH = "/readyz"
METRICS_PATH = "/metrics"
READY_TIMEOUT_S = 60.0


# Never binding (100 M requests, 100 G tokens a minute): the benchmark measures what the Redis
# limiter costs per request, not throttling.
NEVER_BINDING = "{rpm: 100000000, tpm: 100000000000}"


def config_yaml(port: int, upstream_port: int, redis_url: str | None = None) -> str:
    """The gateway's YAML: one key, one provider per upstream path (JSON and stream).

    Without `redis_url` nothing has limits (the in-process limiter holds no buckets). With it, the
    state is in that Redis and every level has a limit: account, model and the key's own quota, so
    each request charges all of them (in one script call).
    """
    key_sha = hashlib.sha256(b"bench-key").hexdigest()
    upstream = f"http://127.0.0.1:{upstream_port}"
    state = f"state:\n  redis_url: {redis_url}\n" if redis_url else ""
    account = f"\n    limits: {NEVER_BINDING}" if redis_url else ""
    model = f"{{limits: {NEVER_BINDING}}}" if redis_url else "{}"
    key = f"\n    limits: {NEVER_BINDING}" if redis_url else ""
    return f"""\
server:
  host: 127.0.0.1
  port: {port}
  workers: 1
{state}providers:
  bench:
    kind: openai-compatible
    base_url: {upstream}/v1{account}
    models:
      {JSON_MODEL}: {model}
  bench-stream:
    kind: openai-compatible
    base_url: {upstream}/stream/v1{account}
    models:
      {STREAM_MODEL}: {model}
keys:
  - name: bench
    key_sha256: {key_sha}
    tier: standard
    models: ["*"]{key}
"""


def command(template: str, config: Path, port: int) -> list[str]:
    """The gateway argv from `--gateway-cmd` ({python}, {config} and {port} are filled in)."""
    text = template.format(python=shlex.quote(sys.executable), config=shlex.quote(str(config)), port=port)
    return shlex.split(text)


@dataclass
class Gateway:
    """A running gateway process and how long it took to become ready."""

    proc: subprocess.Popen[bytes]
    port: int
    startup_s: float

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self) -> None:
        stop(self.proc)


class GatewayError(RuntimeError):
    pass


def start(argv: list[str], cpu: int, port: int, log: Path, cwd: Path) -> Gateway:
    """Spawn the gateway pinned to `cpu`; return once GET /readyz answers 200."""
    spawned = time.monotonic()
    proc = spawn(pinned(cpu, argv), log, cwd=cwd)
    ready = wait_ready(proc, port, READY_PATH, READY_TIMEOUT_S)
    if ready is None:
        code = proc.poll()
        stop(proc)
        why = f"exited with {code}" if code is not None else f"not ready after {READY_TIMEOUT_S:.0f} s"
        raise GatewayError(f"gateway {why}; end of its log:\n{log_tail(log)}")
    return Gateway(proc=proc, port=port, startup_s=ready - spawned)


def limiter_mode(port: int) -> str:
    """The limiter's mode from GET /readyz: "local", "redis" or "degraded" (Redis failed)."""
    try:
        _, body = http_get(port, READY_PATH, timeout=2.0)
        return str(json.loads(body)["checks"]["limits"])
    except (OSError, http.client.HTTPException, ValueError, KeyError, TypeError) as e:
        return f"unknown ({e.__class__.__name__})"


def requests_served(port: int) -> int | None:
    """The gateway's own count of requests answered (all series of gateway_requests_total in
    GET /metrics; a client that went away counts too, as 499); None if it cannot be read."""
    try:
        status, body = http_get(port, METRICS_PATH, timeout=5.0)
    except (OSError, http.client.HTTPException):
        return None
    lines = body.decode(errors="replace").splitlines() if status == 200 else []
    values = [
        float(line.rsplit(" ", 1)[1])
        for line in lines
        if line.startswith(("gateway_requests_total{", "gateway_requests_total "))
    ]
    return round(sum(values)) if values else None


def wait_for_mode(port: int, want: str, timeout: float = 5.0) -> str:
    """Poll the limiter's mode until it is `want` (Redis is connected in the background); the last seen."""
    deadline = time.monotonic() + timeout
    mode = limiter_mode(port)
    while mode != want and time.monotonic() < deadline:
        time.sleep(0.05)
        mode = limiter_mode(port)
    return mode


# What the gateway logs (a warning) each time its limiter falls back from Redis to local buckets.
DEGRADED_MARK = b"degraded to local buckets"
_STATUS = re.compile(r'"status":(\d+)')


def log_size(log: Path) -> int:
    try:
        return log.stat().st_size
    except OSError:
        return 0


def degradations(log: Path, offset: int) -> int:
    """How often the limiter fell back from Redis to local buckets since byte `offset` of the log."""
    try:
        with log.open("rb") as f:
            f.seek(offset)
            return f.read().count(DEGRADED_MARK)
    except OSError:
        return 0


def notable_lines(log: Path, count: int = 20) -> str:
    """From the gateway's log: how many responses had each status other than 200 and 499 (wrk
    closing its connections at the end of a run), the last few of them, and the last `count` lines
    that are not access lines (warnings, errors, limiter mode changes)."""
    statuses: collections.Counter[str] = collections.Counter()
    failed: collections.deque[str] = collections.deque(maxlen=3)
    other: collections.deque[str] = collections.deque(maxlen=count)
    try:
        with log.open(errors="replace") as f:
            for line in f:
                found = _STATUS.search(line) if '"msg":"request"' in line else None
                if found is None:
                    other.append(line.rstrip("\n")[:400])
                elif found[1] not in ("200", "499"):
                    statuses[found[1]] += 1
                    failed.append(line.rstrip("\n")[:400])
    except OSError:
        return "(no log)"
    counts = ", ".join(f"{status}: {n:,}" for status, n in sorted(statuses.items())) or "none"
    return "\n".join([f"responses other than 200/499: {counts}", *failed, "other log lines:", *other])


def request_body(model: str, stream: bool) -> bytes:
    extra = ',"stream":true,"stream_options":{"include_usage":true}' if stream else ""
    return (
        f'{{"model":"{model}","messages":[{{"role":"system","content":"You are a terse assistant."}},'
        f'{{"role":"user","content":"Say hello in a few words."}}],"max_tokens":32{extra}}}'
    ).encode()


def check(port: int, path: str) -> list[str]:
    """Send one JSON and one streaming request; the problems found (empty when both look right)."""
    headers = {"Authorization": "Bearer bench-key", "Content-Type": "application/json"}
    problems = []
    for model, stream in ((JSON_MODEL, False), (STREAM_MODEL, True)):
        try:
            status, ctype, body = http_post(port, path, request_body(model, stream), headers)
        except OSError as e:
            problems.append(f"{model}: {e}")
            continue
        want_type, want_text = ("text/event-stream", b"data: [DONE]") if stream else ("json", b"chat.completion")
        if status != 200 or want_type not in ctype or want_text not in body:
            problems.append(f"{model} stream={stream}: HTTP {status} {ctype}: {body[:300]!r}")
    return problems
