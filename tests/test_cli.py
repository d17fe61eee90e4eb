"""The `gateway` command: the demo a newcomer runs first, `check`, and `hash-key`."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import openai
from fresh import user_env
from harness import free_port

from gateway.auth import digest


def gateway(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gateway", *args], capture_output=True, text=True, timeout=30, env=env)


def test_demo_starts_with_no_configuration_from_any_directory(tmp_path: Path) -> None:
    port = free_port()
    env = user_env(GATEWAY_PORT=str(free_port()))  # the flag wins over the environment
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway", "serve", "--port", str(port)],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert proc.stdout is not None
        banner = "".join(proc.stdout.readline() for _ in range(3))
        assert "demo" in banner and "demo-key" in banner
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz").status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.05)
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="demo-key", max_retries=0)
        assert {"gpt-4o-mini", "agent-default"} <= {m.id for m in client.models.list()}
        chunks = list(
            client.chat.completions.create(
                model="agent-default", messages=[{"role": "user", "content": "hi"}], max_tokens=3, stream=True
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
    result = gateway("serve", "--config", str(config), env=user_env())
    assert result.returncode == 2 and "providers.a" in result.stderr


def test_hash_key() -> None:
    assert gateway("hash-key", "abc").stdout.strip() == digest("abc")


def test_version_and_help_list_every_command() -> None:
    version = gateway("--version")
    assert version.returncode == 0 and version.stdout.startswith("llm-gateway 0.")
    shown = gateway("--help").stdout
    for command in ("serve", "check", "explain", "hash-key", "fake-upstream"):
        line = next((ln for ln in shown.splitlines() if ln.strip().startswith(command + " ")), "")
        assert len(line.split()) > 2, f"{command} has no one-line description in --help"
    serve = gateway("serve", "--help").stdout
    assert all(flag in serve for flag in ("--config", "--host", "--port", "--workers"))


def test_serve_flags_override_the_config(tmp_path: Path) -> None:
    port = free_port()
    config = tmp_path / "gateway.yaml"
    config.write_text(
        f"server: {{host: 0.0.0.0, port: {free_port()}, workers: 1}}\n"
        "providers:\n  local: {kind: openai-compatible, base_url: 'http://127.0.0.1:1/v1', models: {m: {}}}\n"
        f"admin: {{key_sha256: {digest('adm')}}}\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway", "serve", "--config", str(config), "--host", "127.0.0.1"]
        + ["--port", str(port), "--workers", "2"],
        env=user_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert f"http://127.0.0.1:{port}/v1" in proc.stdout.readline()
        deadline = time.monotonic() + 15
        shown: dict[str, object] = {}
        while time.monotonic() < deadline and not shown:
            try:
                shown = httpx.get(
                    f"http://127.0.0.1:{port}/admin/config", headers={"authorization": "Bearer adm"}
                ).json()
            except httpx.HTTPError:
                time.sleep(0.05)
        assert shown["server"] == {**shown["server"], "host": "127.0.0.1", "port": port, "workers": 2}  # type: ignore[index,dict-item]
        workers = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout.split()
        assert len(workers) >= 2
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(20)


def test_serve_refuses_a_bad_flag() -> None:
    result = gateway("serve", "--port", "70000")
    assert result.returncode == 2 and "expected an integer from 0 to 65535" in result.stderr


def test_the_demo_refuses_an_unknown_failure_kind() -> None:
    env = user_env(GATEWAY_DEMO_FAIL="gemini/gemini-2.5-flash:bogus", GATEWAY_PORT=str(free_port()))
    result = gateway("serve", env=env)
    assert result.returncode == 2 and "failure_kind must be one of" in result.stderr


def test_serve_reports_aws_credentials_it_cannot_find_without_a_traceback(tmp_path: Path) -> None:
    config = tmp_path / "gateway.yaml"
    config.write_text(
        f"server: {{port: {free_port()}}}\n"
        "providers:\n  br: {kind: bedrock, region: us-east-1,"
        " models: {m: {upstream_model: meta.llama3-3-70b-instruct-v1:0}}}\n"
    )
    home = tmp_path / "home"  # no ~/.aws files; no instance metadata to ask
    env = user_env(HOME=str(home), AWS_EC2_METADATA_DISABLED="true", AWS_CONFIG_FILE=str(home / "c"))
    env = {
        k: v
        for k, v in env.items()
        if not k.startswith("AWS_") or k in ("AWS_EC2_METADATA_DISABLED", "AWS_CONFIG_FILE")
    }
    result = gateway("serve", "--config", str(config), env=env)
    assert result.returncode == 2 and "providers.br: no AWS credentials found" in result.stderr
    assert "Traceback" not in result.stderr
