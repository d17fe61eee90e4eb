"""The gateway under test: its bench config, starting it pinned, readiness and a sanity check."""

from __future__ import annotations

import hashlib
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from bench.processes import http_post, log_tail, pinned, spawn, stop, wait_ready

DEFAULT_CMD = "{python} -m gateway serve --config {config}"
JSON_MODEL = "bench-model"
STREAM_MODEL = "bench-stream-model"
READY_PATH = "/readyz"
READY_TIMEOUT_S = 60.0


def config_yaml(port: int, upstream_port: int) -> str:
    """The gateway's YAML: one key, one provider per upstream path (JSON and stream)."""
    key_sha = hashlib.sha256(b"bench-key").hexdigest()
    upstream = f"http://127.0.0.1:{upstream_port}"
    return f"""\
server:
  host: 127.0.0.1
  port: {port}
  workers: 1
providers:
  bench:
    kind: openai-compatible
    base_url: {upstream}/v1
    models:
      {JSON_MODEL}: {{}}
  bench-stream:
    kind: openai-compatible
    base_url: {upstream}/stream/v1
    models:
      {STREAM_MODEL}: {{}}
keys:
  - name: bench
    key_sha256: {key_sha}
    tier: standard
    models: ["*"]
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
