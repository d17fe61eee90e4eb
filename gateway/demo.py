"""The demo's fake providers: one ``gateway fake-upstream`` process serving every account of the example.

Started by ``gateway serve`` when no configuration and no provider key is given, stopped with it.
Each provider answers at its own pace (the small models fast, the large ones slower), so the
example policy's ``lowest-latency`` and ``least-loaded`` rules have something to choose between.

``GATEWAY_DEMO_FAIL`` injects failures, to watch a fallback happen: a comma-separated list of
``deployment[:kind[:rate]]``, e.g. ``openai-main/gpt-4o-mini`` (every call fails with a 500) or
``groq/llama-3.1-8b-instant:429:0.5`` (half of them are rate limited). Kinds are the fake's
(``gateway fake-upstream --help``).
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from typing import Any

import orjson

from gateway.config.defaults import DEMO_UPSTREAM_ENV, DEMO_UPSTREAM_KEY, demo_upstream_models

FAIL_ENV = "GATEWAY_DEMO_FAIL"

# Upstream model -> how the fake serves it (latency before headers, time to first token, pace).
PACE: dict[str, dict[str, float]] = {
    "llama-3.1-8b-instant": {"latency_ms": 10, "ttft_ms": 60, "tokens_per_second": 250},
    "gpt-4o-mini": {"latency_ms": 20, "ttft_ms": 150, "tokens_per_second": 80},
    "gemini-2.5-flash": {"latency_ms": 25, "ttft_ms": 120, "tokens_per_second": 120},
    "gpt-4o": {"latency_ms": 40, "ttft_ms": 300, "tokens_per_second": 50},
    "claude-sonnet-5-5": {"latency_ms": 50, "ttft_ms": 350, "tokens_per_second": 60},
    "prod-gpt4o": {"latency_ms": 45, "ttft_ms": 320, "tokens_per_second": 50},
    "meta-llama/Llama-3.1-70B-Instruct": {"latency_ms": 30, "ttft_ms": 250, "tokens_per_second": 40},
}


class DemoError(ValueError):
    """The demo's failure knob names something the demo does not have."""


def failures(spec: str, models: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    """Pure: ``GATEWAY_DEMO_FAIL`` -> upstream model -> the fake's behaviour fields.

    >>> failures("openai-main/gpt-4o-mini:429:0.5", {"openai-main/gpt-4o-mini": "gpt-4o-mini"})
    {'gpt-4o-mini': {'failure_kind': '429', 'failure_rate': 0.5}}
    """
    out: dict[str, dict[str, Any]] = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        deployment, _, rest = item.partition(":")
        kind, _, rate = rest.partition(":")
        if deployment not in models:
            raise DemoError(f"{FAIL_ENV}: no demo deployment {deployment!r} (known: {', '.join(sorted(models))})")
        try:
            share = float(rate) if rate else 1.0
        except ValueError:
            raise DemoError(f"{FAIL_ENV}: {item!r}: the rate must be a number between 0 and 1") from None
        out[models[deployment]] = {"failure_kind": kind or "500", "failure_rate": share}
    return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _configure(url: str, model: str, fields: Mapping[str, Any]) -> None:
    request = urllib.request.Request(
        f"{url}/_fake/behaviour",
        data=orjson.dumps({"model": model, **fields}),
        headers={"content-type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=5):
            pass
    except OSError as e:  # an HTTPError carries the fake's reason (a bad failure kind or rate)
        detail = e.read().decode(errors="replace") if isinstance(e, urllib.error.HTTPError) else str(e)
        raise DemoError(f"the demo's fake providers refused {model!r}: {detail}") from None


@contextlib.contextmanager
def fake_providers(env: Mapping[str, str]) -> Iterator[str]:
    """Start the fake providers, set their behaviours and failures, yield their URL; stop them after."""
    injected = failures(env.get(FAIL_ENV, ""), demo_upstream_models())
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    os.environ[DEMO_UPSTREAM_ENV] = url  # read by the default config, in this process and its workers
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway", "fake-upstream", "--port", str(port), "--api-key", DEMO_UPSTREAM_KEY],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        if "listening" not in proc.stdout.readline():
            raise DemoError(f"the demo's fake providers did not start (exit code {proc.wait()})")
        for model, pace in PACE.items():
            _configure(url, model, {**pace, **injected.pop(model, {})})
        for model, fields in injected.items():
            _configure(url, model, fields)
        yield url
    finally:
        proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(5)
