"""The official OpenAI Node SDK as a second client: chat, stream, tools, embeddings (base64, its default)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from harness import TEST_KEY, GatewayProcess

NODE = Path(__file__).resolve().parents[1] / "node"


def node_sdk(gateway: GatewayProcess, scenario: str) -> dict[str, Any]:
    if shutil.which("node") is None or not (NODE / "node_modules" / "openai").is_dir():
        pytest.fail("the Node SDK is not installed: `make test` runs `npm ci --prefix tests/node`")
    result = subprocess.run(
        ["node", str(NODE / "sdk.mjs"), scenario, gateway.base_url, TEST_KEY],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    parsed: dict[str, Any] = json.loads(result.stdout)
    return parsed


def test_chat(gateway: GatewayProcess) -> None:
    seen = node_sdk(gateway, "chat")
    assert seen["content"] and seen["finish_reason"] == "length"
    assert seen["usage"]["completion_tokens"] == 5 and seen["deployment"].endswith("/gpt-4o-mini")
    assert seen["request_id"].startswith("req_")


def test_stream_with_usage(gateway: GatewayProcess) -> None:
    seen = node_sdk(gateway, "stream")
    assert seen["text"] and seen["chunks"] >= 6
    assert seen["usage"]["completion_tokens"] == 6


def test_tools_round_trip(gateway: GatewayProcess) -> None:
    seen = node_sdk(gateway, "tools")
    assert seen["finish_reason"] == "tool_calls" and seen["name"] == "get_weather"
    assert isinstance(seen["arguments"]["city"], str)
    assert seen["answer"] and seen["second_finish"] in ("stop", "length")


def test_embeddings_in_base64(gateway: GatewayProcess) -> None:
    seen = node_sdk(gateway, "embeddings")
    assert seen["count"] == 2 and seen["dimensions"] == 1536
    assert abs(seen["norm"] - 1.0) < 1e-3  # the SDK decoded real float32 vectors
    assert seen["usage"]["prompt_tokens"] == 2


def test_errors_raise_the_sdk_classes(gateway: GatewayProcess) -> None:
    assert node_sdk(gateway, "bad_key") == {"raised": "AuthenticationError", "status": 401, "code": "invalid_api_key"}


def test_models_retrieve(gateway: GatewayProcess) -> None:
    seen = node_sdk(gateway, "retrieve")
    assert seen["id"] == "gpt-4o-mini" and seen["object"] == "model"
    assert seen["missing"] == {"raised": "NotFoundError", "status": 404}
