"""Failures on purpose, real rate limits and client disconnects, as the openai SDK sees them."""

import time
from collections.abc import Callable
from typing import Any

import httpx
import openai
import orjson
import pytest

from gateway.fake.testing import FakeUpstream

from .conftest import KEY

MESSAGES: list[Any] = [{"role": "user", "content": "hello"}]


def eventually(check: Callable[[], bool], timeout: float = 3.0) -> bool:
    """Disconnects reach the fake a moment after the client gives up."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.02)
    return check()


@pytest.mark.parametrize(
    ("kind", "error", "status"),
    [
        ("500", openai.InternalServerError, 500),
        ("503", openai.InternalServerError, 503),
        ("429", openai.RateLimitError, 429),
        ("insufficient_quota", openai.RateLimitError, 429),
        ("context_length", openai.BadRequestError, 400),
    ],
)
@pytest.mark.parametrize("stream", [False, True])
def test_error_statuses(
    client: openai.OpenAI,
    fake: FakeUpstream,
    kind: str,
    error: type[openai.APIStatusError],
    status: int,
    stream: bool,
) -> None:
    fake.configure(failure_kind=kind, failure_rate=1.0)
    with pytest.raises(error) as caught:
        client.chat.completions.create(model="m", messages=MESSAGES, stream=stream)
    assert caught.value.status_code == status
    body = caught.value.body
    assert isinstance(body, dict) and set(body) == {"message", "type", "param", "code"}
    assert fake.stats()["failures_injected"] == {kind: 1}


def test_injected_429_headers(client: openai.OpenAI, fake: FakeUpstream) -> None:
    fake.configure(failure_kind="429", failure_rate=1.0, retry_after_ms=2500)
    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(model="m", messages=MESSAGES)
    headers = caught.value.response.headers
    assert (headers["retry-after"], headers["retry-after-ms"]) == ("3", "2500")
    assert headers["x-ratelimit-remaining-requests"] == "0"
    assert headers["x-ratelimit-reset-requests"] == "2.5s"
    assert caught.value.code == "rate_limit_exceeded"
    assert fake.stats()["rate_limited"] == 1 and fake.stats()["limit_rejections"] == 0


def test_insufficient_quota_names_no_wait(client: openai.OpenAI, fake: FakeUpstream) -> None:
    fake.configure(failure_kind="insufficient_quota", failure_rate=1.0)
    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(model="m", messages=MESSAGES)
    assert caught.value.code == "insufficient_quota" and caught.value.type == "insufficient_quota"
    assert "retry-after" not in caught.value.response.headers  # spent credit does not come back by waiting


def test_context_window(client: openai.OpenAI, fake: FakeUpstream) -> None:
    fake.configure(model="small", context_window=50)
    assert client.chat.completions.create(model="small", messages=MESSAGES, max_tokens=10)
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="small", messages=MESSAGES, max_tokens=100)
    assert caught.value.code == "context_length_exceeded" and caught.value.param == "messages"


@pytest.mark.parametrize("stream", [False, True])
def test_reset_is_a_connection_error(client: openai.OpenAI, fake: FakeUpstream, stream: bool) -> None:
    fake.configure(failure_kind="reset", failure_rate=1.0)
    with pytest.raises(openai.APIConnectionError):
        client.chat.completions.create(model="m", messages=MESSAGES, stream=stream)
    assert fake.stats()["requests_by_status"] == {"reset": 1}
    assert fake.stats()["disconnects"] == 0  # the fake hung up, not the client


@pytest.mark.parametrize("kind", ["stall", "timeout"])
@pytest.mark.parametrize("stream", [False, True])
def test_stall_and_timeout_time_out(fake: FakeUpstream, kind: str, stream: bool) -> None:
    fake.configure(failure_kind=kind, failure_rate=1.0)
    with openai.OpenAI(base_url=fake.base_url, api_key=KEY, max_retries=0, timeout=0.2) as client:
        with pytest.raises(openai.APITimeoutError):
            if stream:  # a stalled stream has its headers: the timeout comes while reading
                list(client.chat.completions.create(model="m", messages=MESSAGES, stream=True))
            else:
                client.chat.completions.create(model="m", messages=MESSAGES)
    assert eventually(lambda: fake.stats()["disconnects"] == 1)
    assert fake.stats()["requests_by_status"] == ({"200": 1} if kind == "stall" else {"none": 1})


def test_cut_stream_fails_while_iterating(client: openai.OpenAI, fake: FakeUpstream) -> None:
    fake.configure(failure_kind="cut", failure_rate=1.0)
    stream = client.chat.completions.create(model="m", messages=MESSAGES, max_tokens=10, stream=True)
    received = []
    with pytest.raises((openai.APIConnectionError, httpx.RemoteProtocolError)):
        for chunk in stream:
            received.append(chunk)
    assert len(received) == 6  # half of role + 10 tokens + finish
    assert fake.stats()["disconnects"] == 0


def test_stream_error_is_a_200_whose_first_event_is_an_error(client: openai.OpenAI, fake: FakeUpstream) -> None:
    fake.configure(failure_kind="stream_error", failure_rate=1.0)
    stream = client.chat.completions.create(model="m", messages=MESSAGES, stream=True)
    assert stream.response.status_code == 200
    assert stream.response.headers["content-type"].startswith("text/event-stream")
    with pytest.raises(openai.APIError) as caught:  # the SDK raises the error event it reads
        list(stream)
    assert caught.value.type == "server_error" and "had an error" in caught.value.message
    with httpx.stream(
        "POST",
        f"{fake.base_url}/chat/completions",
        json={"model": "m", "messages": MESSAGES, "stream": True},
        headers={"authorization": f"Bearer {KEY}"},
    ) as raw:
        events = [line for line in raw.iter_lines() if line]
    assert len(events) == 1 and events[0].startswith("data: {")  # one event, then the end: no [DONE]
    error = orjson.loads(events[0][6:])["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["type"] == "server_error"
    stats = fake.stats()
    assert stats["requests_by_status"] == {"200": 2} and stats["failures_injected"] == {"stream_error": 2}
    assert stats["disconnects"] == 0


def test_stream_error_without_a_stream_is_a_500(client: openai.OpenAI, fake: FakeUpstream) -> None:
    fake.configure(failure_kind="stream_error", failure_rate=1.0)
    with pytest.raises(openai.InternalServerError) as caught:
        client.chat.completions.create(model="m", messages=MESSAGES)
    assert caught.value.status_code == 500 and caught.value.type == "server_error"


def test_cut_json_is_a_connection_error(client: openai.OpenAI, fake: FakeUpstream) -> None:
    fake.configure(failure_kind="cut", failure_rate=1.0)
    with pytest.raises(openai.APIConnectionError):
        client.embeddings.create(model="e", input="x")


def test_fail_next_then_recover(client: openai.OpenAI, fake: FakeUpstream) -> None:
    fake.configure(model="m", failure_kind="503", fail_next=2)
    for _ in range(2):
        with pytest.raises(openai.InternalServerError):
            client.chat.completions.create(model="m", messages=MESSAGES)
    assert client.chat.completions.create(model="m", messages=MESSAGES).choices
    assert fake.stats()["requests_by_status"] == {"503": 2, "200": 1}


def test_failure_rate_is_seeded_and_per_model(client: openai.OpenAI, fake: FakeUpstream) -> None:
    def outcomes() -> list[bool]:
        result = []
        for _ in range(12):
            try:
                client.chat.completions.create(model="flaky", messages=MESSAGES, max_tokens=1)
                result.append(True)
            except openai.InternalServerError:
                result.append(False)
        return result

    fake.configure(model="flaky", failure_rate=0.5)
    first = outcomes()
    assert True in first and False in first
    assert client.chat.completions.create(model="steady", messages=MESSAGES, max_tokens=1)
    fake.reset()
    fake.configure(model="flaky", failure_rate=0.5)
    assert outcomes() == first


def test_requests_per_minute(client: openai.OpenAI, fake: FakeUpstream) -> None:
    fake.set_limits(rpm=2)
    ok = client.chat.completions.with_raw_response.create(model="m", messages=MESSAGES)
    assert ok.headers["x-ratelimit-limit-requests"] == "2"
    assert ok.headers["x-ratelimit-remaining-requests"] == "1"
    assert ok.headers["x-ratelimit-reset-requests"].endswith("s")
    client.chat.completions.create(model="m", messages=MESSAGES)
    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(model="m", messages=MESSAGES)
    headers = caught.value.response.headers
    assert headers["x-ratelimit-remaining-requests"] == "0"
    assert headers["retry-after"] == "30" and 29000 < int(headers["retry-after-ms"]) <= 30000
    assert caught.value.type == "requests" and "(RPM): Limit 2, Used 2, Requested 1" in caught.value.message
    stats = fake.stats()
    assert (stats["rate_limited"], stats["limit_rejections"], stats["requests_by_status"]) == (
        1,
        1,
        {"200": 2, "429": 1},
    )


def test_tokens_per_minute(client: openai.OpenAI, fake: FakeUpstream) -> None:
    fake.set_limits(tpm=100)
    ok = client.chat.completions.with_raw_response.create(model="m", messages=MESSAGES, max_tokens=60)
    usage = ok.parse().usage
    assert usage is not None
    remaining = int(ok.headers["x-ratelimit-remaining-tokens"])
    assert remaining == 100 - usage.prompt_tokens - 60  # the estimate taken at admission
    assert ok.headers["x-ratelimit-limit-tokens"] == "100"
    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(model="m", messages=MESSAGES, max_tokens=60)
    assert caught.value.type == "tokens" and int(caught.value.response.headers["retry-after"]) >= 1
    with pytest.raises(openai.RateLimitError) as too_large:
        client.chat.completions.create(model="m", messages=MESSAGES, max_tokens=200)
    assert "Request too large" in too_large.value.message
    assert "retry-after" not in too_large.value.response.headers


def test_disconnect_during_latency(fake: FakeUpstream) -> None:
    fake.configure(latency_ms=5000)
    with openai.OpenAI(base_url=fake.base_url, api_key=KEY, max_retries=0, timeout=0.2) as client:
        with pytest.raises(openai.APITimeoutError):
            client.chat.completions.create(model="m", messages=MESSAGES)
    assert eventually(lambda: fake.stats()["disconnects"] == 1)
    assert fake.stats()["in_flight"] == 0


def test_disconnect_mid_stream(client: openai.OpenAI, fake: FakeUpstream) -> None:
    fake.configure(tokens_per_second=50, ttft_ms=10)
    stream = client.chat.completions.create(model="m", messages=MESSAGES, max_tokens=200, stream=True)
    for index, _ in enumerate(stream):
        if index == 3:
            break
    stream.close()
    assert eventually(lambda: fake.stats()["disconnects"] == 1)


def test_latency_and_pacing(client: openai.OpenAI, fake: FakeUpstream) -> None:
    fake.configure(latency_ms=100, ttft_ms=50, tokens_per_second=100)
    started = time.monotonic()
    stream = client.chat.completions.create(model="m", messages=MESSAGES, max_tokens=10, stream=True)
    first = next(iter(stream))
    first_at = time.monotonic() - started
    list(stream)
    total = time.monotonic() - started
    assert first.choices[0].delta.role == "assistant"
    assert 0.15 <= first_at < 1.0  # latency + ttft, with room for a busy machine
    assert first_at + 0.1 <= total < 2.0  # ten tokens at 100 per second after the first chunk
