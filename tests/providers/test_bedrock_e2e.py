"""Bedrock behind the gateway, end to end: the real gateway process signs its requests with SigV4 and the fake
Bedrock verifies every signature with botocore (a signing bug fails these tests), answers Converse in JSON and
ConverseStream in AWS's binary event stream; the official openai SDK is the client. The built-in default
configuration picks Anthropic and the AWS chain up from the environment."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from harness import NO_CIRCUIT, UPSTREAM_KEY, GatewayProcess, free_port, start_gateway

from gateway.auth import digest
from gateway.fake.testing import FakeUpstream

KEY = "bedrock-e2e-key"
CLAUDE = "us.anthropic.claude-haiku-4-5-20251001-v1:0"
PROVIDER_VARIABLES = ("AWS_", "OPENAI_", "GROQ_", "GEMINI_", "ANTHROPIC_")  # the default config reads these
HELLO: list[Any] = [{"role": "user", "content": "Hello"}]
WEATHER: Any = {
    "type": "function",
    "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}},
}


def config(port: int, upstream: str) -> str:
    return f"""
server: {{port: {port}, access_log: false, timeouts: {{connect: 1, first_byte: 3, total: 10, stream_idle: 2}}}}
{NO_CIRCUIT}
providers:
  bedrock:
    kind: bedrock
    region: eu-west-3
    base_url: {upstream}
    aws_access_key_id_env: TEST_AWS_KEY_ID
    aws_secret_access_key_env: FAKE_UPSTREAM_KEY
    aws_session_token_env: TEST_AWS_TOKEN
    models:
      claude: {{upstream_model: "{CLAUDE}", max_output_tokens: 256}}
      llama: {{upstream_model: meta.llama3-3-70b-instruct-v1:0}}
      shared: {{upstream_model: "{CLAUDE}"}}
  bedrock-wrong-secret:
    kind: bedrock
    region: eu-west-3
    base_url: {upstream}
    aws_access_key_id_env: TEST_AWS_KEY_ID
    aws_secret_access_key_env: WRONG_SECRET
    models:
      wrong: {{upstream_model: "{CLAUDE}"}}
  openai:
    kind: openai
    base_url: {upstream}/v1
    api_key_env: FAKE_UPSTREAM_KEY
    models:
      shared: {{upstream_model: gpt-4o-mini}}
keys: [{{name: agent, key_sha256: {digest(KEY)}, models: ["*"]}}]
policies: {{dir: ""}}
"""


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream(api_key=UPSTREAM_KEY) as fake:
        yield fake


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory, upstream: FakeUpstream) -> Iterator[GatewayProcess]:
    port = free_port()
    env = {"TEST_AWS_KEY_ID": "AKIAGATEWAYTEST", "TEST_AWS_TOKEN": "session-token-1", "WRONG_SECRET": "not-it-1234"}
    process = start_gateway(tmp_path_factory.mktemp("bedrock"), config(port, upstream.url), port, env)
    yield process
    process.stop()


@pytest.fixture
def fake(upstream: FakeUpstream) -> Iterator[FakeUpstream]:
    upstream.reset()
    yield upstream
    upstream.reset()


@pytest.fixture
def client(gateway: GatewayProcess) -> openai.OpenAI:
    return gateway.client(KEY)


def test_a_signed_converse_answer(client: openai.OpenAI, fake: FakeUpstream) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="claude", messages=[{"role": "system", "content": "Be brief."}, *HELLO], max_tokens=6
    )
    answer = raw.parse()
    assert raw.headers["x-gateway-deployment"] == "bedrock/claude"
    assert answer.choices[0].finish_reason == "length" and len((answer.choices[0].message.content or "").split()) == 6
    assert answer.usage is not None and answer.usage.completion_tokens == 6
    seen = fake.stats()["last_requests"][-1]
    assert seen["signature"] == "valid" and seen["path"] == f"/model/{CLAUDE}/converse"
    assert "Credential=AKIAGATEWAYTEST/" in seen["headers"]["authorization"]
    assert "/eu-west-3/bedrock/aws4_request" in seen["headers"]["authorization"]
    assert seen["headers"]["x-amz-security-token"] == "session-token-1"
    assert seen["body"]["system"] == [{"text": "Be brief."}] and seen["body"]["inferenceConfig"] == {"maxTokens": 6}


def test_a_stream_with_tool_call_deltas_and_usage(client: openai.OpenAI, fake: FakeUpstream) -> None:
    chunks = list(
        client.chat.completions.create(
            model="claude",
            messages=HELLO,
            tools=[WEATHER],
            tool_choice="required",
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert fake.stats()["last_requests"][-1]["path"] == f"/model/{CLAUDE}/converse-stream"
    assert fake.stats()["last_requests"][-1]["signature"] == "valid"
    deltas = [tc for c in chunks if c.choices for tc in (c.choices[0].delta.tool_calls or [])]
    assert deltas[0].id and deltas[0].id.startswith("tooluse_") and len(deltas) > 2
    assert '"city"' in "".join(d.function.arguments or "" for d in deltas if d.function is not None)
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0


def test_llama_and_text_streams(client: openai.OpenAI) -> None:
    chunks = list(client.chat.completions.create(model="llama", messages=HELLO, max_tokens=5, stream=True))
    assert len("".join(c.choices[0].delta.content or "" for c in chunks if c.choices).split()) == 5


def test_a_wrong_secret_is_the_gateways_credential_failing(client: openai.OpenAI, fake: FakeUpstream) -> None:
    with pytest.raises(openai.InternalServerError) as info:
        client.chat.completions.create(model="wrong", messages=HELLO)
    assert info.value.status_code == 502 and fake.stats()["last_requests"][-1]["signature"] == "mismatch"


@pytest.mark.parametrize("kind", ["429", "529", "stream_error"])
def test_throttling_and_unavailability_fall_back(client: openai.OpenAI, fake: FakeUpstream, kind: str) -> None:
    fake.configure(model=CLAUDE, failure_kind=kind, failure_rate=1.0)
    stream = kind == "stream_error"
    if stream:
        chunks = list(client.chat.completions.create(model="shared", messages=HELLO, max_tokens=3, stream=True))
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    else:
        raw = client.chat.completions.with_raw_response.create(model="shared", messages=HELLO, max_tokens=3)
        assert raw.headers["x-gateway-deployment"] == "openai/shared"
    assert fake.stats()["last_requests"][-1]["path"] == "/v1/chat/completions"


def _serve_default(env: dict[str, str], log: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    clean = {k: v for k, v in os.environ.items() if not k.startswith(PROVIDER_VARIABLES)}
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gateway", "serve", "--port", str(port)],
            env={**clean, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()
        try:
            if httpx.get(url + "/healthz", timeout=0.5).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.05)
    proc.kill()
    raise AssertionError(log.read_text())


def test_the_default_config_serves_anthropic_and_the_aws_chain(fake: FakeUpstream, tmp_path: Path) -> None:
    """No config file: ANTHROPIC_API_KEY and the AWS chain in the environment serve Claude twice over."""
    profile = f"[team]\naws_access_key_id = AKIAPROFILE\naws_secret_access_key = {UPSTREAM_KEY}\n"
    (tmp_path / "credentials").write_text(profile)
    env = {
        "GATEWAY_KEY": KEY,
        "ANTHROPIC_API_KEY": UPSTREAM_KEY,
        "ANTHROPIC_BASE_URL": fake.url,
        "AWS_PROFILE": "team",  # the chain: a profile in the shared credentials file
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "credentials"),
        "AWS_CONFIG_FILE": str(tmp_path / "no-config"),
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_REGION": "eu-west-3",
        "AWS_ENDPOINT_URL_BEDROCK_RUNTIME": fake.url,
    }
    proc, url = _serve_default(env, tmp_path / "gateway.log")
    try:
        client = openai.OpenAI(base_url=url + "/v1", api_key=KEY, max_retries=0)
        assert {"claude-sonnet-5-5", "claude-haiku-5-5"} <= {m.id for m in client.models.list()}
        ask: dict[str, Any] = {"model": "claude-sonnet-5-5", "messages": HELLO, "max_tokens": 2}
        first = client.chat.completions.with_raw_response.create(**ask)
        assert first.headers["x-gateway-deployment"] == "anthropic/claude-sonnet-5-5"
        fake.configure(model="claude-sonnet-5-5", failure_kind="529", failure_rate=1.0)
        second = client.chat.completions.with_raw_response.create(**ask)
        assert second.headers["x-gateway-deployment"] == "bedrock/claude-sonnet-5-5"
        seen = fake.stats()["last_requests"][-1]
        assert seen["path"] == "/model/global.anthropic.claude-sonnet-5-5/converse" and seen["signature"] == "valid"
        assert "Credential=AKIAPROFILE/" in seen["headers"]["authorization"]
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(15)
