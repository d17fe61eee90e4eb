"""One suite for every adapter in the registry, and the toy provider (tests/providers/toy.py) that
translates everything: parameter coverage, translation both ways (request, answer, stream) from recorded
fixtures, URLs, auth, errors."""

from __future__ import annotations

import json
import typing
from pathlib import Path
from typing import Any

import orjson
import pytest
from openai.types import embedding_create_params
from openai.types.chat import completion_create_params

from gateway import failures
from gateway.config.model import CAPABILITIES, Account, Deployment, Limits, Secret
from gateway.errors import UpstreamStatus
from gateway.fake import eventstream
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
# The kinds whose requests, answers and errors are OpenAI's format (the others translate everything).
OPENAI_SHAPED = sorted(k for k, p in REGISTRY.items() if p.from_response is None and p.sdk is None)
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
        capabilities=CAPABILITIES,
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


def test_parameter_lists_match_the_openai_sdks_types() -> None:
    """The official SDK this project locks (the e2e tests' client) types every parameter it sends; the
    streaming variant of the chat request holds them all."""
    assert set(CHAT_PARAMS) == set(typing.get_type_hints(completion_create_params.CompletionCreateParamsStreaming))
    assert set(EMBEDDING_PARAMS) == set(typing.get_type_hints(embedding_create_params.EmbeddingCreateParams))


def test_parameter_lists_match_the_openai_specification() -> None:
    """The same against the published OpenAPI subset, where the workplace keeps one beside the project."""
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


@pytest.mark.parametrize("kind", PROVIDERS)
def test_routing_tags_in_metadata_never_make_a_request_fail(kind: str) -> None:
    provider = KINDS[kind]
    tags = {"task": "classify", "tags": "batch"}
    body = provider.to_request({"model": "x", "messages": [], "metadata": tags}, deployment(), provider, "chat")
    # Passed on as data where the kind takes it, left out where it cannot (it never changes an answer).
    assert body.get("metadata", tags) == tags
    assert ("metadata" in body) == ("metadata" in provider.chat_params)


@pytest.mark.parametrize("kind", sorted(REGISTRY))
def test_values_that_ask_for_nothing_are_left_out_not_refused(kind: str) -> None:
    provider = REGISTRY[kind]
    asked = {"model": "x", "messages": [], "store": False, "logprobs": False, "n": None, "logit_bias": None}
    asked |= {"temperature": 1, "top_p": 1.0, "presence_penalty": 0, "response_format": {"type": "text"}}
    out = provider.to_request(asked, deployment(), provider, "chat")
    for name in ("store", "logprobs", "n", "logit_bias") if kind in OPENAI_SHAPED else ():
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
    carried = [v for v in headers.values() if "sk-secret" in v]
    if provider.sdk is not None:  # a library call (litellm): the key goes to the library, never into headers
        assert carried == []
    else:
        assert carried in (["Bearer sk-secret"], ["sk-secret"])


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


def case_deployment(case: Path) -> Deployment:
    """The deployment a case runs on: ``deployment.json``'s upstream model (a provider that names the model
    in its URL, as Bedrock does), else the upstream request's ``model``."""
    given = case / "deployment.json"
    if given.exists():
        return deployment(json.loads(given.read_text())["upstream_model"])
    request = case / "upstream_request.json"
    return deployment(json.loads(request.read_text()).get("model", "gpt-4o-mini"))


@pytest.mark.parametrize("case", CASES, ids=_id)
def test_recorded_request_translation(case: Path) -> None:
    provider = KINDS[case.parent.name]
    request = json.loads((case / "openai_request.json").read_text())
    expected = json.loads((case / "upstream_request.json").read_text())
    out = provider.to_request(request, case_deployment(case), provider, "chat")
    assert out == expected


@pytest.mark.parametrize("case", [c for c in CASES if (c / "upstream_response.json").exists()], ids=_id)
def test_recorded_answer_translation(case: Path) -> None:
    """The other way: the provider's answer becomes OpenAI's (an OpenAI-shaped one passes untouched)."""
    provider = KINDS[case.parent.name]
    raw = (case / "upstream_response.json").read_bytes()
    answer = provider.from_response(raw, case_deployment(case)) if provider.from_response is not None else raw
    translated = orjson.loads(answer)
    translated.pop("created")
    expected = json.loads((case / "openai_response.json").read_text())
    expected.pop("created", None)
    if "id" not in expected:  # a provider whose answers carry no id (Bedrock): the adapter makes one
        assert translated.pop("id").startswith("chatcmpl-")
    assert translated == expected
    usage = expected["usage"]
    assert provider.usage(answer) == Usage(usage["prompt_tokens"], usage["completion_tokens"])


def upstream_stream(case: Path) -> bytes:
    """The provider's stream as it is on the wire: ``upstream.sse``, or ``upstream_events.json`` (a binary event
    stream's messages, as [name, payload] pairs) written in AWS's event-stream framing."""
    if (case / "upstream.sse").exists():
        return (case / "upstream.sse").read_bytes()
    events = json.loads((case / "upstream_events.json").read_text())
    return b"".join(eventstream.event(name, payload) for name, payload in events)


STREAM_CASES = [c for c in CASES if (c / "upstream.sse").exists() or (c / "upstream_events.json").exists()]


@pytest.mark.parametrize("case", STREAM_CASES, ids=_id)
def test_recorded_stream_translation(case: Path) -> None:
    """Stream in, stream out, event by event, framed as the provider frames it."""
    provider = KINDS[case.parent.name]
    raw = upstream_stream(case)
    decoder = provider.decoder(1 << 20)
    events = [e for n in range(0, len(raw), 7) for e in decoder.feed(raw[n : n + 7])]  # in awkward pieces
    assert decoder.pending == b""
    if provider.stream is not None:
        translator = provider.stream(case_deployment(case))
        events = [chunk for e in events for chunk in translator.feed(e)] + translator.finish()
    expected = [_chunk(e) for e in SSEDecoder(1 << 20).feed((case / "openai.sse").read_bytes())]
    actual = [_chunk(e) for e in events]
    ids = {
        chunk.pop("id")
        for chunk, want in zip(actual, expected, strict=False)
        if isinstance(want, dict) and "id" not in want
    }
    assert len(ids) <= 1  # a stream whose provider names no id gets one, the same in every chunk
    assert actual == expected
    assert events[-1] == b"[DONE]"


def _chunk(event: bytes) -> Any:
    """A chunk as compared: its creation time is the translator's clock, not the provider's."""
    if event == b"[DONE]":
        return event
    chunk = orjson.loads(event)
    chunk.pop("created", None)
    return chunk


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
    assert REGISTRY["anthropic"].url(account("anthropic"), d, "chat") == "https://upstream.example/v1/v1/messages"
    bedrock = REGISTRY["bedrock"]
    assert bedrock.url(account("bedrock"), d, "chat") == "https://upstream.example/v1/model/my-deploy/converse"
    assert bedrock.stream_url is not None
    assert bedrock.stream_url(account("bedrock"), d) == "https://upstream.example/v1/model/my-deploy/converse-stream"
    assert {k for k, p in REGISTRY.items() if p.stream_url is not None} == {"bedrock"}  # the others: one URL
