"""Every failure reaches the client in OpenAI's shape with the status the SDK expects."""

from __future__ import annotations

import httpx
import openai
import pytest
from harness import ADMIN_KEY, TEST_KEY, UPSTREAM_KEY, GatewayProcess

from gateway.fake.testing import FakeUpstream

pytestmark = pytest.mark.usefixtures("fresh_fakes")
MESSAGES = [{"role": "user", "content": "hi"}]


def post(gateway: GatewayProcess, content: bytes, key: str = TEST_KEY, **headers: str) -> httpx.Response:
    auth = {"authorization": f"Bearer {key}"} if key else {}
    return httpx.post(
        f"{gateway.base_url}/chat/completions",
        content=content,
        timeout=10,
        headers={**auth, "content-type": "application/json", **headers},
    )


def error_of(response: httpx.Response) -> dict[str, object]:
    body = response.json()
    assert set(body) == {"error"} and {"message", "type", "param", "code"} <= set(body["error"])
    assert response.headers["x-request-id"]
    return body["error"]  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    "content,param",
    [
        (b"{not json", None),
        (b"[1, 2]", None),
        (b'{"messages": [{"role": "user", "content": "x"}]}', "model"),
        (b'{"model": "gpt-4o-mini"}', "messages"),
    ],
)
def test_bad_requests_are_400(gateway: GatewayProcess, content: bytes, param: str | None) -> None:
    response = post(gateway, content)
    assert response.status_code == 400
    assert error_of(response)["param"] == param


def test_malformed_json_via_the_sdk_is_bad_request(gateway: GatewayProcess) -> None:
    with pytest.raises(openai.BadRequestError):
        gateway.client().chat.completions.create(model="gpt-4o-mini", messages=[])


def test_unknown_model_is_404(gateway: GatewayProcess) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        gateway.client().chat.completions.create(model="no-such-model", messages=MESSAGES)
    assert info.value.code == "model_not_found"


def test_body_over_the_limit_is_413(gateway: GatewayProcess) -> None:
    big = b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "' + b"x" * 70000 + b'"}]}'
    response = post(gateway, big)
    assert response.status_code == 413 and error_of(response)["code"] == "request_too_large"
    chunked = httpx.post(
        f"{gateway.base_url}/chat/completions",
        content=iter([big[:40000], big[40000:]]),
        headers={"authorization": f"Bearer {TEST_KEY}"},
        timeout=10,
    )
    assert chunked.status_code == 413


@pytest.mark.parametrize("key", ["", "wrong-key-abc123"])
def test_missing_or_wrong_key_is_401_and_never_echoed(gateway: GatewayProcess, key: str) -> None:
    response = post(gateway, b'{"model": "gpt-4o-mini", "messages": []}', key=key)
    assert response.status_code == 401
    assert error_of(response)["type"] == "authentication_error"
    if key:
        assert key not in response.text
    with pytest.raises(openai.AuthenticationError):
        gateway.client("wrong-key-abc123").chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)


def test_model_outside_the_keys_allowance_is_403(gateway: GatewayProcess) -> None:
    with pytest.raises(openai.PermissionDeniedError):
        gateway.client("limited-key").chat.completions.create(model="gpt-4o", messages=MESSAGES)


@pytest.mark.parametrize(
    "extra",
    [
        {"api_base": "http://attacker.example"},
        {"base_url": "http://attacker.example"},
        {"api_key": "sk-other"},
        {"custom_llm_provider": "openai"},
        {"extra_body": {"api_base": "http://attacker.example"}},
    ],
)
def test_upstream_steering_fields_are_refused(
    gateway: GatewayProcess, fake: FakeUpstream, extra: dict[str, object]
) -> None:
    before = fake.stats()["requests_total"]
    with pytest.raises(openai.BadRequestError) as info:
        gateway.client().chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, extra_body=extra)
    assert info.value.code == "forbidden_field"
    assert fake.stats()["requests_total"] == before  # nothing went upstream


def test_tool_schema_mentioning_steering_words_is_fine(gateway: GatewayProcess) -> None:
    tools = [
        {
            "type": "function",
            "function": {
                "name": "configure",
                "parameters": {
                    "type": "object",
                    "properties": {"api_base": {"type": "string"}, "api_key": {"type": "string"}},
                },
            },
        }
    ]
    gateway.client().chat.completions.create(model="gpt-4o", messages=MESSAGES, tools=tools)


def test_upstream_429_everywhere_is_429_with_retry_after(
    gateway: GatewayProcess, fake: FakeUpstream, fake2: FakeUpstream
) -> None:
    for f in (fake, fake2):
        f.configure(model="*", failure_kind="429", failure_rate=1.0)
    with pytest.raises(openai.RateLimitError) as info:
        gateway.client().chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    headers = info.value.response.headers
    assert int(headers["retry-after"]) >= 1 and "retry-after-ms" in headers
    assert headers["x-gateway-attempts"] == "2"


def test_upstream_500_is_502(gateway: GatewayProcess, fake: FakeUpstream) -> None:
    fake.configure(model="*", failure_kind="500", failure_rate=1.0)
    with pytest.raises(openai.InternalServerError) as info:
        gateway.client().chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert info.value.status_code == 502


def test_failing_deployment_falls_back_to_the_next(gateway: GatewayProcess, fake: FakeUpstream) -> None:
    fake.configure(model="*", failure_kind="503", failure_rate=1.0)
    raw = gateway.client().chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MESSAGES)
    assert raw.headers["x-gateway-deployment"] == "secondary/gpt-4o-mini"
    # One retry on the failing deployment (the default retries.same_deployment), then the next one.
    assert raw.headers["x-gateway-attempts"] == "3"


@pytest.mark.parametrize("kind,status", [("timeout", 504), ("stall", 504), ("reset", 502)])
def test_timeouts_and_resets(gateway: GatewayProcess, fake: FakeUpstream, kind: str, status: int) -> None:
    fake.configure(model="*", failure_kind=kind, failure_rate=1.0)
    with pytest.raises(openai.APIStatusError) as info:
        gateway.client().chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert info.value.status_code == status


def test_stream_cut_after_first_byte_ends_with_an_error_event(gateway: GatewayProcess, fake: FakeUpstream) -> None:
    fake.configure(model="*", failure_kind="cut", failure_rate=1.0)
    response = httpx.post(
        f"{gateway.base_url}/chat/completions",
        timeout=10,
        headers={"authorization": f"Bearer {TEST_KEY}"},
        json={"model": "gpt-4o", "messages": MESSAGES, "max_tokens": 10, "stream": True},
    )
    assert response.status_code == 200
    events = [line[6:] for line in response.text.split("\n") if line.startswith("data: ")]
    assert '"error"' in events[-1] and "[DONE]" not in events
    with pytest.raises(openai.APIError):
        list(gateway.client().chat.completions.create(model="gpt-4o", messages=MESSAGES, max_tokens=10, stream=True))


def test_stream_failing_before_the_first_byte_falls_back(gateway: GatewayProcess, fake: FakeUpstream) -> None:
    fake.configure(model="*", failure_kind="500", failure_rate=1.0)
    chunks = list(gateway.client().chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True))
    assert chunks and any(c.choices and c.choices[0].delta.content for c in chunks)


def test_provider_keys_never_appear_in_responses_or_logs(gateway: GatewayProcess, fake: FakeUpstream) -> None:
    fake.configure(model="*", failure_kind="500", failure_rate=1.0)
    bodies = [
        post(gateway, b'{"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}]}').text,
        httpx.get(f"{gateway.url}/metrics").text,
    ]
    fake.reset()
    bodies.append(post(gateway, b'{"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}]}').text)
    for text in bodies + [gateway.logs()]:
        assert UPSTREAM_KEY not in text


def test_unknown_route_and_method(gateway: GatewayProcess) -> None:
    response = httpx.get(f"{gateway.url}/v1/nothing-here")
    assert response.status_code == 404 and error_of_plain(response)
    assert httpx.get(f"{gateway.base_url}/chat/completions").status_code == 405


def error_of_plain(response: httpx.Response) -> bool:
    return set(response.json()["error"]) >= {"message", "type", "code"}


def test_admin_key_is_not_a_virtual_key(gateway: GatewayProcess) -> None:
    assert post(gateway, b"{}", key=ADMIN_KEY).status_code == 401
