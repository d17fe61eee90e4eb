"""One suite for every adapter in the registry, and the toy provider (tests/providers/toy.py) that
translates everything: parameter coverage, translation both ways (request, answer, stream) from recorded
fixtures, URLs, auth, errors."""

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
from gateway.sse import SSEDecoder
from gateway.types import Usage
from providers import toy

FIXTURES = Path(__file__).parent.parent / "fixtures"
SPEC = Path(__file__).resolve().parents[2].parent / "shared" / "openai-openapi-subset.json"
KINDS: dict[str, Provider] = {**REGISTRY, "toy": toy.PROVIDER}
PROVIDERS = sorted(KINDS)
OPENAI_SHAPED = sorted(REGISTRY)  # the kinds whose answers and errors are OpenAI's format
CASES = sorted(p for p in FIXTURES.glob("*/*") if p.is_dir())


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
    provider = KINDS[kind]
    for name in CHAT_PARAMS:
        assert (name in provider.chat_params) != (name in provider.unsupported), name
    for name in EMBEDDING_PARAMS if "embeddings" in provider.endpoints else ():
        assert name in provider.embedding_params or name in provider.unsupported, name


@pytest.mark.parametrize("kind", PROVIDERS)
def test_unsupported_parameters_are_refused_not_dropped(kind: str) -> None:
    provider = KINDS[kind]
    for name in provider.unsupported & set(CHAT_PARAMS):
        with pytest.raises(UnsupportedParameter) as info:
            provider.to_request({"model": "x", "messages": [], name: 2}, deployment(), provider, "chat")
        assert info.value.param == name and info.value.status == 400


@pytest.mark.parametrize("kind", OPENAI_SHAPED)
def test_values_that_ask_for_nothing_are_left_out_not_refused(kind: str) -> None:
    provider = REGISTRY[kind]
    asked = {"model": "x", "messages": [], "store": False, "logprobs": False, "n": None, "logit_bias": None}
    out = provider.to_request(asked, deployment(), provider, "chat")
    for name in ("store", "logprobs", "n", "logit_bias"):
        assert name in out or name in provider.unsupported or provider.chat_params[name].allowed is not None


@pytest.mark.parametrize("kind", OPENAI_SHAPED)
def test_model_is_replaced_and_stream_usage_requested(kind: str) -> None:
    provider = REGISTRY[kind]
    out = provider.to_request({"model": "fast", "messages": [], "stream": True}, deployment("up-1"), provider, "chat")
    assert out["model"] == "up-1"
    if provider.stream_usage:
        assert out["stream_options"] == {"include_usage": True}


@pytest.mark.parametrize("kind", PROVIDERS)
def test_auth_header_carries_the_account_key_only(kind: str) -> None:
    provider = KINDS[kind]
    headers = provider.auth(Secret("sk-secret"))
    assert list(headers.values()) in (["Bearer sk-secret"], ["sk-secret"])


@pytest.mark.parametrize("kind", OPENAI_SHAPED)
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


def _id(case: Path) -> str:
    return f"{case.parent.name}/{case.name}"


@pytest.mark.parametrize("case", CASES, ids=_id)
def test_recorded_request_translation(case: Path) -> None:
    provider = KINDS[case.parent.name]
    request = json.loads((case / "openai_request.json").read_text())
    expected = json.loads((case / "upstream_request.json").read_text())
    out = provider.to_request(request, deployment(expected.get("model", "gpt-4o-mini")), provider, "chat")
    assert out == expected


@pytest.mark.parametrize("case", [c for c in CASES if (c / "upstream_response.json").exists()], ids=_id)
def test_recorded_answer_translation(case: Path) -> None:
    """The other way: the provider's answer becomes OpenAI's (an OpenAI-shaped one passes untouched)."""
    provider = KINDS[case.parent.name]
    raw = (case / "upstream_response.json").read_bytes()
    answer = provider.from_response(raw, deployment()) if provider.from_response is not None else raw
    translated = orjson.loads(answer)
    translated.pop("created")
    expected = json.loads((case / "openai_response.json").read_text())
    expected.pop("created", None)
    assert translated == expected
    usage = expected["usage"]
    assert provider.usage(answer) == Usage(usage["prompt_tokens"], usage["completion_tokens"])


@pytest.mark.parametrize("case", [c for c in CASES if (c / "upstream.sse").exists()], ids=_id)
def test_recorded_stream_translation(case: Path) -> None:
    """Stream in, stream out, event by event, framed as the provider frames it."""
    provider = KINDS[case.parent.name]
    raw = (case / "upstream.sse").read_bytes()
    decoder = provider.decoder(1 << 20)
    events = [e for n in range(0, len(raw), 7) for e in decoder.feed(raw[n : n + 7])]  # in awkward pieces
    assert decoder.pending == b""
    if provider.stream is not None:
        translator = provider.stream(deployment())
        events = [chunk for e in events for chunk in translator.feed(e)] + translator.finish()
    expected = SSEDecoder(1 << 20).feed((case / "openai.sse").read_bytes())
    assert [orjson.loads(e) if e != b"[DONE]" else e for e in events] == [
        orjson.loads(e) if e != b"[DONE]" else e for e in expected
    ]
    assert events[-1] == b"[DONE]"


@pytest.mark.parametrize("kind", [k for k in PROVIDERS if (FIXTURES / k / "errors.json").exists()])
def test_recorded_errors(kind: str) -> None:
    provider = KINDS[kind]
    for case in json.loads((FIXTURES / kind / "errors.json").read_text()):
        error = provider.from_error(case["status"], orjson.dumps(case["body"]), case["headers"], (), 300.0)
        expect = case["expect"]
        assert (error.status, error.code, error.retry_after) == (
            expect["status"],
            expect["code"],
            expect["retry_after"],
        )
        assert sorted(failures.triggers(error)) == expect["triggers"]


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
