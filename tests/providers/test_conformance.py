"""One suite for every adapter in the registry: parameter coverage, translation, URLs, auth, errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import pytest

from gateway import failures
from gateway.config.model import Account, Deployment, Limits, Secret
from gateway.errors import UpstreamStatus
from gateway.providers import REGISTRY
from gateway.providers.base import Provider, UnsupportedParameter
from gateway.providers.openai_compat import CHAT_PARAMS, EMBEDDING_PARAMS

FIXTURES = Path(__file__).parent.parent / "fixtures"
SPEC = Path(__file__).resolve().parents[2].parent / "shared" / "openai-openapi-subset.json"
PROVIDERS = sorted(REGISTRY)


def deployment(model: str = "gpt-4o-mini", account: str = "acct") -> Deployment:
    return Deployment(
        account=account,
        model="fast",
        upstream_model=model,
        mode="chat",
        limits=Limits(),
        price=None,
        context_window=None,
        max_output_tokens=None,
        capabilities=frozenset(),
    )


def account(kind: str, api_version: str | None = "2024-10-21") -> Account:
    return Account(
        name="acct",
        kind=kind,
        base_url="https://upstream.example/v1",
        api_key=Secret("sk-secret"),
        api_version=api_version,
        limits=Limits(),
        deployments=(),
    )


def spec_properties(schema: str) -> set[str]:
    if not SPEC.exists():
        pytest.skip("shared/openai-openapi-subset.json is not beside the project")
    schemas = json.loads(SPEC.read_text())["components"]["schemas"]

    def props(name: str) -> dict[str, Any]:
        node = schemas[name]
        out: dict[str, Any] = {}
        for part in node.get("allOf", [node]):
            if "$ref" in part:
                out.update(props(part["$ref"].split("/")[-1]))
            else:
                out.update(part.get("properties", {}))
        return out

    return set(props(schema))


def test_parameter_lists_match_the_openai_specification() -> None:
    assert set(CHAT_PARAMS) == spec_properties("CreateChatCompletionRequest")
    assert set(EMBEDDING_PARAMS) == spec_properties("CreateEmbeddingRequest")


@pytest.mark.parametrize("kind", PROVIDERS)
def test_every_openai_parameter_is_mapped_or_explicitly_unsupported(kind: str) -> None:
    provider = REGISTRY[kind]
    for name in CHAT_PARAMS:
        assert (name in provider.chat_params) != (name in provider.unsupported), name
    for name in EMBEDDING_PARAMS:
        assert name in provider.embedding_params or name in provider.unsupported, name


@pytest.mark.parametrize("kind", PROVIDERS)
def test_unsupported_parameters_are_refused_not_dropped(kind: str) -> None:
    provider = REGISTRY[kind]
    for name in provider.unsupported & set(CHAT_PARAMS):
        with pytest.raises(UnsupportedParameter) as info:
            provider.to_request({"model": "x", "messages": [], name: 1}, deployment(), provider, "chat")
        assert info.value.param == name and info.value.status == 400


@pytest.mark.parametrize("kind", PROVIDERS)
def test_model_is_replaced_and_stream_usage_requested(kind: str) -> None:
    provider = REGISTRY[kind]
    out = provider.to_request({"model": "fast", "messages": [], "stream": True}, deployment("up-1"), provider, "chat")
    assert out["model"] == "up-1"
    if provider.stream_usage:
        assert out["stream_options"] == {"include_usage": True}


@pytest.mark.parametrize("kind", PROVIDERS)
def test_auth_header_carries_the_account_key_only(kind: str) -> None:
    provider = REGISTRY[kind]
    headers = provider.auth(Secret("sk-secret"))
    assert list(headers.values()) in (["Bearer sk-secret"], ["sk-secret"])


@pytest.mark.parametrize("kind", PROVIDERS)
def test_error_translation(kind: str) -> None:
    provider = REGISTRY[kind]
    body = orjson.dumps(
        {
            "error": {
                "message": "Incorrect API key provided: sk-proj-abcdefghijklmnopqrstu",
                "type": "invalid_request_error",
                "param": None,
                "code": "invalid_api_key",
            }
        }
    )
    error = provider.from_error(401, body, {})
    assert isinstance(error, UpstreamStatus) and error.status == 502 and "sk-proj" not in error.message
    limited = provider.from_error(
        429,
        b'{"error":{"message":"slow down","code":"rate_limit_exceeded"}}',
        {"retry-after-ms": "1500", "retry-after": "2"},
    )
    assert limited.status == 429 and limited.retry_after == 1.5 and failures.triggers(limited) == {"429"}
    server = provider.from_error(503, b"<html>bad gateway</html>", {})
    assert server.status == 502 and failures.retry_here(server)
    ctx = provider.from_error(
        400,
        b'{"error":{"message":"This model\'s maximum context length is 8192","code":"context_length_exceeded"}}',
        {},
    )
    assert ctx.status == 400 and ctx.code == "context_length_exceeded"


def _case(provider: Provider, case: Path) -> None:
    request = json.loads((case / "openai_request.json").read_text())
    expected = json.loads((case / "upstream_request.json").read_text())
    out = provider.to_request(request, deployment(expected["model"]), provider, "chat")
    assert out == expected


@pytest.mark.parametrize("case", sorted(p for p in FIXTURES.glob("*/*") if p.is_dir()), ids=lambda p: p.name)
def test_recorded_request_translation(case: Path) -> None:
    _case(REGISTRY[case.parent.name], case)


def test_groq_refuses_n_above_one() -> None:
    groq = REGISTRY["groq"]
    with pytest.raises(UnsupportedParameter):
        groq.to_request({"model": "m", "messages": [], "n": 2}, deployment(), groq, "chat")


def test_openai_compatible_forwards_extensions() -> None:
    provider = REGISTRY["openai-compatible"]
    out = provider.to_request({"model": "m", "messages": [], "top_k": 5}, deployment("llama"), provider, "chat")
    assert out["top_k"] == 5
    openai = REGISTRY["openai"]
    with pytest.raises(UnsupportedParameter):
        openai.to_request({"model": "m", "messages": [], "top_k": 5}, deployment(), openai, "chat")


def test_urls() -> None:
    d = deployment("my-deploy")
    assert REGISTRY["openai"].url(account("openai"), d, "chat") == "https://upstream.example/v1/chat/completions"
    assert REGISTRY["groq"].url(account("groq"), d, "embeddings") == "https://upstream.example/v1/embeddings"
    azure = REGISTRY["azure"]
    assert azure.url(account("azure"), d, "chat") == (
        "https://upstream.example/v1/openai/deployments/my-deploy/chat/completions?api-version=2024-10-21"
    )
    assert azure.url(account("azure", "v1"), d, "embeddings") == "https://upstream.example/v1/openai/v1/embeddings"
    assert azure.auth(Secret("k")) == {"api-key": "k"}
