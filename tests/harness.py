"""Starting the real gateway process for end-to-end tests, with a config pointing at fake providers."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import openai

from gateway.auth import digest

UPSTREAM_KEY = "sk-fake-upstream-secret-0123456789"
TEST_KEY = "test-key"
LIMITED_KEY = "limited-key"
ADMIN_KEY = "admin-key"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class GatewayProcess:
    url: str
    proc: subprocess.Popen[bytes]
    log_path: Path

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")

    def client(self, key: str = TEST_KEY, **kwargs: object) -> openai.OpenAI:
        return openai.OpenAI(base_url=self.base_url, api_key=key, max_retries=0, **kwargs)  # type: ignore[arg-type]

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                return self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise
        return self.proc.returncode


# Tests that inject failures would otherwise open circuits that later tests run into; the circuit
# breaker has its own tests with their own gateways.
NO_CIRCUIT = "circuit: {failure_threshold: 1000000, min_requests: 1000000}"


def config_text(
    port: int, primary: str, secondary: str, extra_server: str = "", state: str = "", extra: str = NO_CIRCUIT
) -> str:
    return f"""
server:
  port: {port}
  max_body_bytes: 65536
  shutdown_grace_seconds: 10
  drain_delay_seconds: 0.5
  timeouts: {{connect: 1, first_byte: 2, total: 8, stream_idle: 1.5}}
{extra_server}
{extra}
state:
  redis_url: "{state}"
providers:
  primary:
    kind: openai
    base_url: {primary}/v1
    api_key_env: FAKE_UPSTREAM_KEY
    models:
      gpt-4o-mini: {{}}
      gpt-4o: {{}}
      text-embedding-3-small: {{}}
  secondary:
    kind: openai
    base_url: {secondary}/v1
    api_key_env: FAKE_UPSTREAM_KEY
    models:
      gpt-4o-mini: {{}}
  azure-eu:
    kind: azure
    base_url: {primary}
    api_key_env: FAKE_UPSTREAM_KEY
    models:
      azure-gpt: {{upstream_model: my-gpt-deployment}}
  groq:
    kind: groq
    base_url: {primary}/openai/v1
    api_key_env: FAKE_UPSTREAM_KEY
    models:
      llama-3.1-8b-instant: {{}}
  gemini:
    kind: gemini
    base_url: {primary}/v1beta/openai
    api_key_env: FAKE_UPSTREAM_KEY
    models:
      gemini-2.5-flash: {{}}
  local:
    kind: openai-compatible
    base_url: {primary}/v1
    api_key_env: FAKE_UPSTREAM_KEY
    models:
      local-llama: {{}}
keys:
  - name: tester
    key_sha256: {digest(TEST_KEY)}
    tier: premium
    models: ["*"]
  - name: limited
    key_sha256: {digest(LIMITED_KEY)}
    models: [gpt-4o-mini]
admin:
  key_sha256: {digest(ADMIN_KEY)}
"""


def start_gateway(directory: Path, text: str, port: int, env: dict[str, str] | None = None) -> GatewayProcess:
    directory.mkdir(parents=True, exist_ok=True)
    config = directory / "gateway.yaml"
    config.write_text(text)
    log_path = directory / "gateway.log"
    environment = {**os.environ, "FAKE_UPSTREAM_KEY": UPSTREAM_KEY, **(env or {})}
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gateway", "serve", "--config", str(config)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=environment,
        )
    gateway = GatewayProcess(f"http://127.0.0.1:{port}", proc, log_path)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"gateway exited with {proc.returncode}:\n{gateway.logs()}")
        try:
            if httpx.get(f"{gateway.url}/healthz", timeout=0.5).status_code == 200:
                return gateway
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    gateway.stop(signal.SIGKILL)
    raise RuntimeError(f"gateway did not start:\n{gateway.logs()}")


EXAMPLE_CONFIG = Path(__file__).resolve().parents[1] / "config" / "gateway.yaml"


def example_config_env(directory: Path) -> dict[str, str]:
    """What the shipped config/gateway.yaml needs from the environment (fake credentials and digests)."""
    key_file = directory / "azure.key"
    key_file.write_text("azure-key")
    return {
        "OPENAI_API_KEY": "sk-a",
        "GROQ_API_KEY": "gsk-b",
        "GEMINI_API_KEY": "g-c",
        "ANTHROPIC_API_KEY": "sk-ant-d",
        "AZURE_OPENAI_KEY_FILE": str(key_file),
        "AGENT_KEY_SHA256": digest("a"),
        "BATCH_KEY_SHA256": digest("b"),
        "ADMIN_KEY_SHA256": digest("c"),
    }
