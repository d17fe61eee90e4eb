"""The `gateway` command: the demo a newcomer runs first, `check`, and `hash-key`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import openai
from harness import free_port

from gateway.auth import digest

PROVIDER_VARS = ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GROQ_API_KEY", "GEMINI_API_KEY", "GATEWAY_CONFIG")


def gateway(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gateway", *args], capture_output=True, text=True, timeout=30, env=env)


def test_demo_starts_with_no_configuration(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in PROVIDER_VARS} | {"GATEWAY_PORT": str(port)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway", "serve"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert proc.stdout is not None
        banner = proc.stdout.readline() + proc.stdout.readline()
        assert "demo" in banner and "demo-key" in banner
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz").status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.05)
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="demo-key", max_retries=0)
        assert "gpt-4o-mini" in {m.id for m in client.models.list()}
        chunks = list(
            client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], max_tokens=3, stream=True
            )
        )
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert "gateway_requests_total" in httpx.get(f"http://127.0.0.1:{port}/metrics").text
        children = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout.split()
        assert children  # the demo's fake providers
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
    for pid in children:  # stopped with the gateway
        assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text()


def test_check_lists_every_error_and_exits_non_zero(tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("server: {port: -1, colour: blue}\nproviders: {}\n")
    result = gateway("check", "--config", str(config))
    assert result.returncode == 1
    assert "server.port" in result.stderr and "server.colour: unknown key" in result.stderr
    assert "providers: declare at least one provider account" in result.stderr


def test_check_accepts_a_valid_file(tmp_path: Path) -> None:
    config = tmp_path / "ok.yaml"
    config.write_text(
        "providers:\n  local: {kind: openai-compatible, base_url: 'http://127.0.0.1:1/v1', models: {m: {}}}\n"
    )
    result = gateway("check", "--config", str(config))
    assert result.returncode == 0 and "ok" in result.stdout


def test_serve_refuses_an_invalid_config(tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("providers: {a: {kind: openai}}\n")
    result = gateway("serve", "--config", str(config), env={**os.environ, "OPENAI_API_KEY": ""})
    assert result.returncode == 2 and "providers.a" in result.stderr


def test_hash_key() -> None:
    assert gateway("hash-key", "abc").stdout.strip() == digest("abc")
