"""litellm (seconds and ~150 MB to import) and botocore load only for the accounts that need them: the demo,
serving requests, never imports either; a Bedrock account imports botocore, and nothing imports litellm but a
``kind: litellm`` account (tests/providers/test_litellm_e2e.py serves one)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
from harness import free_port

from gateway.auth import digest

PROVIDER_VARIABLES = ("AWS_", "OPENAI_", "GROQ_", "GEMINI_", "ANTHROPIC_")  # the default config reads these
HELLO = [{"role": "user", "content": "Hello"}]


def imported_while_serving(args: list[str], env: dict[str, str], model: str, key: str, log: Path) -> set[str]:
    """The top-level packages the gateway process (and the demo's fake, its child) imported, through one answer."""
    port = free_port()
    clean = {k: v for k, v in os.environ.items() if not k.startswith(PROVIDER_VARIABLES)}
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gateway", "serve", "--port", str(port), *args],
            env={**clean, **env, "PYTHONPROFILEIMPORTTIME": "1"},
            stdout=subprocess.DEVNULL,
            stderr=out,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            try:
                if httpx.get(url + "/readyz", timeout=0.5).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.05)
        answer = httpx.post(
            url + "/v1/chat/completions",
            headers={"authorization": f"Bearer {key}"},
            json={"model": model, "messages": HELLO, "max_tokens": 2},
            timeout=10,
        )
        assert answer.status_code in (200, 502), answer.text  # 502: a Bedrock account with no real Bedrock behind
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(15)
    packages = set()
    for line in log.read_text().splitlines():
        if line.startswith("import time:") and "|" in line:
            packages.add(line.rsplit("|", 1)[1].strip().split(".")[0])
    return packages


def test_the_demo_never_imports_litellm_nor_botocore(tmp_path: Path) -> None:
    packages = imported_while_serving([], {}, "gpt-4o-mini", "demo-key", tmp_path / "imports.log")
    assert "gateway" in packages and "aiohttp" in packages  # the import log is read
    assert "litellm" not in packages and "botocore" not in packages


def test_a_bedrock_account_imports_botocore_and_still_not_litellm(tmp_path: Path) -> None:
    config = tmp_path / "gateway.yaml"
    config.write_text(
        "providers:\n"
        "  bedrock: {kind: bedrock, region: eu-west-3, base_url: 'http://127.0.0.1:9', "
        "aws_access_key_id_env: K, aws_secret_access_key_env: S, models: {claude: {upstream_model: x}}}\n"
        f"keys: [{{name: a, key_sha256: {digest('k')}}}]\npolicies: {{dir: ''}}\n"
    )
    env = {"K": "AKIAEXAMPLE", "S": "secret-value-123"}
    packages = imported_while_serving(["--config", str(config)], env, "claude", "k", tmp_path / "imports.log")
    assert "botocore" in packages and "litellm" not in packages
