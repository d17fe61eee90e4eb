"""The Bedrock adapter beyond the recorded fixtures: every fixture checked against botocore's service model
(what goes upstream and comes back) and the openai SDK's types (what the client gets), refusals by name,
URLs, and signing with credentials from the account's config or the standard AWS chain."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import botocore.session
import openai.types.chat
import orjson
import pytest
from botocore.validate import ParamValidator

from gateway.config.model import CAPABILITIES, Account, AwsCredentials, Deployment, Limits, Secret
from gateway.config.source import ConfigError
from gateway.fake import eventstream
from gateway.fake.sdk_shapes import bedrock_request_problems
from gateway.providers import REGISTRY
from gateway.providers.base import UnsupportedParameter, UnsupportedValue
from gateway.providers.bedrock.signing import signer
from gateway.providers.bedrock.stream import Translator

BEDROCK = REGISTRY["bedrock"]
CASES = sorted(p for p in (Path(__file__).parent.parent / "fixtures" / "bedrock").iterdir() if p.is_dir())
SERVICE = botocore.session.get_session().get_service_model("bedrock-runtime")
HELLO: list[Any] = [{"role": "user", "content": "Hello"}]
CLAUDE = "us.anthropic.claude-haiku-4-5-20251001-v1:0"


def deployment(model: str = CLAUDE, caps: frozenset[str] = CAPABILITIES) -> Deployment:
    return Deployment("acct", "m", model, "chat", Limits(), None, None, None, caps)


def account(aws: AwsCredentials | None = None, api_key: Secret | None = None) -> Account:
    return Account(
        "br",
        "bedrock",
        "https://bedrock-runtime.eu-west-3.amazonaws.com",
        api_key,
        None,
        Limits(),
        (),
        "eu-west-3",
        aws,
    )


def translate(body: dict[str, Any], d: Deployment | None = None) -> dict[str, Any]:
    return BEDROCK.to_request({"model": "m", "messages": HELLO, **body}, d or deployment(), BEDROCK, "chat")


def shape_problems(value: Any, shape_name: str) -> str | None:
    report = ParamValidator().validate(value, SERVICE.shape_for(shape_name))
    return str(report.generate_report()) if report.has_errors() else None


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_every_fixture_has_the_service_models_shapes(case: Path) -> None:
    model = json.loads((case / "deployment.json").read_text())["upstream_model"]
    streamed = json.loads((case / "openai_request.json").read_text()).get("stream", False)
    assert bedrock_request_problems(model, json.loads((case / "upstream_request.json").read_text()), streamed) == []
    if (case / "upstream_response.json").exists():
        raw = (case / "upstream_response.json").read_bytes()
        assert shape_problems(orjson.loads(raw), "ConverseResponse") is None
        assert BEDROCK.from_response is not None
        openai.types.chat.ChatCompletion.model_validate_json(BEDROCK.from_response(raw, deployment(model)))
    if (case / "upstream_events.json").exists():
        members = SERVICE.shape_for("ConverseStreamOutput").members
        translator = Translator(deployment(model))
        for name, payload in json.loads((case / "upstream_events.json").read_text()):
            assert shape_problems(payload, members[name].name) is None
            event = orjson.dumps({name: payload})
            for chunk in translator.feed(event):
                if chunk != b"[DONE]":
                    openai.types.chat.ChatCompletionChunk.model_validate_json(chunk)


def test_urls_name_the_model_and_the_stream() -> None:
    assert BEDROCK.url(account(), deployment(), "chat").endswith(f"/model/{CLAUDE}/converse")
    assert BEDROCK.stream_url is not None
    assert BEDROCK.stream_url(account(), deployment()).endswith(f"/model/{CLAUDE}/converse-stream")


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"parallel_tool_calls": False}, "parallel_tool_calls"),
        ({"logprobs": True}, "logprobs"),
        ({"n": 3}, "n"),
        ({"response_format": {"type": "json_object"}}, "response_format"),
        (
            {
                "messages": [
                    {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x/y.png"}}]}
                ]
            },
            "messages[0]",
        ),
        ({"temperature": 1.7}, "temperature"),
    ],
)
def test_what_bedrock_cannot_express_is_refused_by_name(body: dict[str, Any], param: str) -> None:
    with pytest.raises(UnsupportedParameter) as info:
        translate(body)
    assert info.value.param == param and info.value.status == 400


def test_the_per_model_rules_follow_the_catalog() -> None:
    with pytest.raises(UnsupportedParameter):  # current Claude on Bedrock refuses sampling parameters
        translate({"temperature": 0.2}, deployment("us.anthropic.claude-opus-4-7"))
    adaptive = translate({"reasoning_effort": "high"}, deployment("us.anthropic.claude-opus-4-7"))
    assert adaptive["additionalModelRequestFields"] == {"thinking": {"type": "adaptive"}}
    assert adaptive["outputConfig"] == {"effort": "high"}
    with pytest.raises(UnsupportedParameter):  # Llama does not reason
        translate({"reasoning_effort": "low"}, deployment("meta.llama3-3-70b-instruct-v1:0"))


def test_tool_choice_none() -> None:
    tools = [{"type": "function", "function": {"name": "f"}}]
    assert "toolConfig" not in translate({"tools": tools, "tool_choice": "none"})
    history = [
        {
            "role": "assistant",
            "tool_calls": [{"id": "t1", "type": "function", "function": {"name": "f", "arguments": "{}"}}],
        },
        {"role": "tool", "tool_call_id": "t1", "content": "ok"},
    ]
    with pytest.raises(UnsupportedValue):  # Bedrock needs the tools while the conversation holds tool calls
        translate({"tools": tools, "tool_choice": "none", "messages": HELLO + history})


def test_an_exception_in_the_stream_is_its_failure() -> None:
    translator = Translator(deployment())
    translator.feed(b'{"messageStart":{"role":"assistant"}}')
    with pytest.raises(Exception) as info:
        translator.feed(b'{"throttlingException":{"message":"slow down"}}')
    assert getattr(info.value, "status", None) == 429 and getattr(info.value, "code", None) == "ThrottlingException"
    cut = Translator(deployment())
    cut.feed(b'{"messageStart":{"role":"assistant"}}')
    assert cut.finish() == []  # no messageStop: the stream was cut


def test_signing_with_the_accounts_keys_includes_the_session_token() -> None:
    aws = AwsCredentials(Secret("AKIDEXAMPLE"), Secret("wJalrXUtnFEMI/K7MDENG"), Secret("token-1"))
    sign = signer(account(aws))
    assert sign is not None
    headers = sign(
        "https://bedrock-runtime.eu-west-3.amazonaws.com/model/m/converse", {"content-type": "application/json"}, b"{}"
    )
    assert headers["authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/")
    assert "/eu-west-3/bedrock/aws4_request" in headers["authorization"]
    assert headers["x-amz-security-token"] == "token-1" and "x-amz-date" in headers


def test_a_bedrock_api_key_replaces_signing() -> None:
    assert signer(account(api_key=Secret("ABSK-key"))) is None
    assert BEDROCK.auth(Secret("ABSK-key")) == {"authorization": "Bearer ABSK-key"}


def test_the_standard_chain_is_read_and_its_absence_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    with pytest.raises(ConfigError, match="no AWS credentials found"):
        signer(account(AwsCredentials()))
    (tmp_path / "credentials").write_text("[team]\naws_access_key_id = AKIDPROFILE\naws_secret_access_key = s3cr3t\n")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    sign = signer(account(AwsCredentials(profile="team")))
    assert sign is not None
    assert (
        "Credential=AKIDPROFILE/"
        in sign("https://h/model/m/converse", {"content-type": "application/json"}, b"{}")["authorization"]
    )
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDENV")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "env-secret")
    from_env = signer(account(AwsCredentials()))
    assert from_env is not None
    assert (
        "Credential=AKIDENV/"
        in from_env("https://h/model/m/converse", {"content-type": "application/json"}, b"{}")["authorization"]
    )


def test_the_event_stream_fixture_encoder_is_aws_framing() -> None:
    """Fixtures are written with the fake's encoder; it must be the framing botocore reads."""
    from botocore.eventstream import EventStreamBuffer

    buffer = EventStreamBuffer()
    buffer.add_data(eventstream.event("messageStop", {"stopReason": "end_turn"}))
    message = next(iter(buffer))
    assert message.headers[":event-type"] == "messageStop" and orjson.loads(message.payload) == {
        "stopReason": "end_turn"
    }
