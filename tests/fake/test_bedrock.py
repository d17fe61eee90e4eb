"""The fake's Bedrock Converse mode, as botocore's own client sees it: botocore signs the requests (the fake
verifies the signature), serialises them from its service model and parses the answers, JSON and the binary
event stream, into that model's shapes."""

from collections.abc import Iterator
from typing import Any

import botocore.session
import httpx
import pytest
from botocore.config import Config
from botocore.eventstream import EventStreamBuffer
from botocore.exceptions import ClientError, EventStreamError

from gateway.fake.eventstream import event, exception
from gateway.fake.testing import FakeUpstream
from gateway.providers.bedrock.eventstream import EventStreamDecoder

from .conftest import KEY

MODEL = "anthropic.claude-haiku-4-5-20251001-v1:0"
HELLO: list[Any] = [{"role": "user", "content": [{"text": "Hello"}]}]
WEATHER: Any = {
    "toolSpec": {
        "name": "get_weather",
        "inputSchema": {"json": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}},
    }
}


def client(fake: FakeUpstream, secret: str = KEY) -> Any:
    return botocore.session.get_session().create_client(
        "bedrock-runtime",
        region_name="eu-west-3",
        endpoint_url=fake.url,
        aws_access_key_id="AKIAFAKEFAKEFAKE",
        aws_secret_access_key=secret,
        config=Config(retries={"max_attempts": 1}),
    )


@pytest.fixture
def bedrock(fake: FakeUpstream) -> Iterator[Any]:
    c = client(fake)
    yield c
    c.close()


def test_converse(bedrock: Any, fake: FakeUpstream) -> None:
    answer = bedrock.converse(
        modelId=MODEL,
        messages=HELLO,
        system=[{"text": "Be brief."}],
        inferenceConfig={"maxTokens": 5, "stopSequences": ["zzz"]},
    )
    assert answer["stopReason"] == "max_tokens"
    assert len(answer["output"]["message"]["content"][0]["text"].split()) == 5
    assert answer["usage"]["outputTokens"] == 5 and answer["usage"]["inputTokens"] > 0
    seen = fake.stats()["last_requests"][-1]
    assert seen["signature"] == "valid" and seen["path"] == f"/model/{MODEL}/converse"


def test_a_wrong_secret_fails_the_signature(fake: FakeUpstream) -> None:
    wrong = client(fake, secret="not-the-secret")
    with pytest.raises(ClientError) as info:
        wrong.converse(modelId=MODEL, messages=HELLO)
    assert info.value.response["Error"]["Code"] == "InvalidSignatureException"
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    unsigned = httpx.post(f"{fake.url}/model/{MODEL}/converse", json={"messages": HELLO})
    assert unsigned.status_code == 403 and unsigned.headers["x-amzn-errortype"].startswith("MissingAuthentication")


def test_a_tool_use(bedrock: Any) -> None:
    answer = bedrock.converse(
        modelId=MODEL,
        messages=HELLO,
        toolConfig={"tools": [WEATHER], "toolChoice": {"any": {}}},
        inferenceConfig={"maxTokens": 100},
    )
    use = answer["output"]["message"]["content"][0]["toolUse"]
    assert answer["stopReason"] == "tool_use" and use["name"] == "get_weather" and "city" in use["input"]


def test_converse_stream(bedrock: Any) -> None:
    answer = bedrock.converse_stream(modelId=MODEL, messages=HELLO, inferenceConfig={"maxTokens": 6})
    events = list(answer["stream"])
    kinds = [next(iter(e)) for e in events]
    assert kinds[0] == "messageStart" and kinds[-2:] == ["messageStop", "metadata"]
    text = "".join(e["contentBlockDelta"]["delta"]["text"] for e in events if "contentBlockDelta" in e)
    assert len(text.split()) == 6 and events[-1]["metadata"]["usage"]["outputTokens"] == 6


def test_a_streamed_tool_use(bedrock: Any) -> None:
    answer = bedrock.converse_stream(
        modelId=MODEL, messages=HELLO, toolConfig={"tools": [WEATHER], "toolChoice": {"any": {}}}
    )
    events = list(answer["stream"])
    start = next(e["contentBlockStart"] for e in events if "contentBlockStart" in e)
    pieces = [e["contentBlockDelta"]["delta"]["toolUse"]["input"] for e in events if "contentBlockDelta" in e]
    assert start["start"]["toolUse"]["name"] == "get_weather" and len(pieces) > 1 and '"city"' in "".join(pieces)


def test_requests_outside_the_service_model_are_refused(fake: FakeUpstream) -> None:
    """botocore refuses these before sending; the fake refuses them as Bedrock would (a Bedrock API key here)."""
    headers = {"authorization": f"Bearer {KEY}"}
    url = f"{fake.url}/model/{MODEL}/converse"
    assert httpx.post(url, headers=headers, json={"messages": HELLO}).status_code == 200
    for body in ({"messages": HELLO, "n": 2}, {"messages": [{"role": "user", "content": [{"txt": "x"}]}]}):
        answer = httpx.post(url, headers=headers, json=body)
        assert answer.status_code == 400 and answer.headers["x-amzn-errortype"].startswith("ValidationException")


@pytest.mark.parametrize(
    ("kind", "code", "status"),
    [
        ("429", "ThrottlingException", 429),
        ("529", "ServiceUnavailableException", 503),
        ("500", "InternalServerException", 500),
        ("context_length", "ValidationException", 400),
    ],
)
def test_injected_failures_speak_bedrock(bedrock: Any, fake: FakeUpstream, kind: str, code: str, status: int) -> None:
    fake.configure(failure_kind=kind, failure_rate=1.0)
    with pytest.raises(ClientError) as info:
        bedrock.converse(modelId=MODEL, messages=HELLO)
    assert info.value.response["Error"]["Code"] == code
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == status


@pytest.mark.parametrize(
    ("kind", "code"), [("stream_error", "throttlingException"), ("mid_stream_error", "serviceUnavailableException")]
)
def test_exceptions_in_the_stream(bedrock: Any, fake: FakeUpstream, kind: str, code: str) -> None:
    fake.configure(failure_kind=kind, failure_rate=1.0)
    answer = bedrock.converse_stream(modelId=MODEL, messages=HELLO, inferenceConfig={"maxTokens": 8})
    seen: list[str] = []
    with pytest.raises(EventStreamError) as info:
        for item in answer["stream"]:
            seen.append(next(iter(item)))
    assert code in str(info.value) and ("messageStart" in seen) == (kind == "mid_stream_error")


def test_the_frames_decode_the_same_with_botocore_and_the_gateway() -> None:
    """The fake writes the framing, the gateway reads it: botocore's parser is the referee."""
    data = event("messageStart", {"role": "assistant"}) + event("contentBlockDelta", {"delta": {"text": "é"}})
    data += exception("throttlingException", "slow down")
    reference = EventStreamBuffer()
    reference.add_data(data)
    expected = [(m.headers.get(":event-type") or m.headers[":exception-type"], m.payload) for m in reference]
    decoder = EventStreamDecoder()
    ours = [e for n in range(0, len(data), 3) for e in decoder.feed(data[n : n + 3])]
    assert ours == [b'{"' + name.encode() + b'":' + payload + b"}" for name, payload in expected]
    assert decoder.pending == b""


def test_cached_tokens_are_reported_as_cache_reads(bedrock: Any, fake: FakeUpstream) -> None:
    fake.configure(cached_tokens=3)
    answer = bedrock.converse(modelId=MODEL, messages=HELLO, inferenceConfig={"maxTokens": 2})
    assert answer["usage"]["cacheReadInputTokens"] == 3
