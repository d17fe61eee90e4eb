"""Drop-in fidelity with the official Python SDK: what real agent code sends and calls works unchanged."""

from __future__ import annotations

from typing import Any

import httpx
import openai
import pytest
from harness import ADMIN_KEY, TEST_KEY, GatewayProcess

from gateway.fake.testing import FakeUpstream

MESSAGES = [{"role": "user", "content": "Hello"}]


def test_metadata_is_free_form_and_reaches_the_provider(gateway: GatewayProcess, fake: FakeUpstream) -> None:
    tags = {"project": "checkout", "endpoint": "/cart", "headers": "none", "proxy": "edge-1"}
    answer = gateway.client().chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, metadata=tags, store=True, max_tokens=3
    )
    assert answer.choices[0].message.content
    assert fake.stats()["last_requests"][-1]["body"]["metadata"] == tags


def test_models_retrieve(gateway: GatewayProcess) -> None:
    client = gateway.client()
    assert client.models.retrieve("gpt-4o-mini").id == "gpt-4o-mini"
    with pytest.raises(openai.NotFoundError) as info:
        client.models.retrieve("no-such-model")
    assert info.value.code == "model_not_found"
    with pytest.raises(openai.NotFoundError):  # a key sees only what it may use
        gateway.client("limited-key").models.retrieve("gpt-4o")
    with pytest.raises(openai.AuthenticationError):
        gateway.client("wrong-key").models.retrieve("gpt-4o-mini")


EXPLAIN = {"request": {"model": "gpt-4o-mini", "messages": MESSAGES}}


@pytest.mark.parametrize(
    ("method", "path", "key", "status"),
    [
        ("GET", "/v1/models", TEST_KEY, 200),
        ("GET", "/v1/models", "wrong-key", 401),
        ("GET", "/v1/models/gpt-4o-mini", TEST_KEY, 200),
        ("GET", "/v1/models/nope", TEST_KEY, 404),
        ("GET", "/v1/no-such-route", TEST_KEY, 404),
        ("POST", "/nowhere", None, 404),
        ("GET", "/v1/chat/completions", TEST_KEY, 405),
        ("DELETE", "/healthz", None, 405),
        ("GET", "/healthz", None, 200),
        ("GET", "/readyz", None, 200),
        ("GET", "/metrics", None, 200),
        ("GET", "/admin/config", ADMIN_KEY, 200),
        ("GET", "/admin/config", None, 401),
        ("GET", "/admin/config", TEST_KEY, 403),
        ("GET", "/admin/policies", ADMIN_KEY, 200),
        ("POST", "/admin/explain", ADMIN_KEY, 200),
        ("POST", "/admin/explain", TEST_KEY, 403),
        ("GET", "/admin/explain", ADMIN_KEY, 405),
        ("GET", "/admin/nothing-here", ADMIN_KEY, 404),
    ],
)
def test_every_answer_carries_a_request_id(
    gateway: GatewayProcess, method: str, path: str, key: str | None, status: int
) -> None:
    auth = {"authorization": f"Bearer {key}"} if key else {}
    body = EXPLAIN if path == "/admin/explain" and method == "POST" else None
    response = httpx.request(method, gateway.url + path, headers=auth, json=body)
    assert response.status_code == status, response.text
    assert response.headers["x-request-id"].startswith("req_")
    echoed = httpx.request(method, gateway.url + path, headers={**auth, "x-request-id": "r1"}, json=body)
    assert echoed.status_code == status and echoed.headers["x-request-id"] == "r1"
    if status >= 400:  # and errors keep OpenAI's shape
        assert set(response.json()["error"]) == {"message", "type", "param", "code"}


def test_a_request_id_that_is_not_valid_is_replaced(gateway: GatewayProcess) -> None:
    given: str | bytes
    for given in ("x" * 129, "bad\tid", "caf\u00e9".encode()):
        for path in ("/healthz", "/v1/nope"):
            answered = httpx.get(gateway.url + path, headers={"x-request-id": given})
            assert answered.headers["x-request-id"].startswith("req_"), (path, given)


def test_405_names_the_allowed_methods(gateway: GatewayProcess) -> None:
    refused = httpx.get(f"{gateway.base_url}/chat/completions", headers={"authorization": f"Bearer {TEST_KEY}"})
    assert refused.status_code == 405 and refused.headers["allow"] == "POST"
    assert refused.json()["error"]["code"] == "method_not_allowed"


# Parameters that ask for nothing (null, or the parameter's own default) are left out for a provider kind that
# lacks them, as real agent code sends them; a real request for one is still refused, naming it.
@pytest.mark.parametrize(
    "params",
    [{"store": False}, {"logprobs": False}, {"n": None}, {"n": 1}, {"store": False, "logprobs": False, "n": 1}],
    ids=["store_false", "logprobs_false", "n_null", "n_1", "all"],
)
def test_parameters_that_ask_for_nothing_reach_groq(
    gateway: GatewayProcess, fresh_fakes: tuple[FakeUpstream, FakeUpstream], params: dict[str, Any]
) -> None:
    fake, _ = fresh_fakes
    raw = gateway.client().chat.completions.with_raw_response.create(
        model="llama-3.1-8b-instant", messages=MESSAGES, max_tokens=3, **params
    )
    assert raw.headers["x-gateway-deployment"] == "groq/llama-3.1-8b-instant"
    assert raw.parse().choices[0].message.content
    sent = fake.stats()["last_requests"][-1]
    assert sent["path"] == "/openai/v1/chat/completions"
    assert "store" not in sent["body"] and "logprobs" not in sent["body"]  # left out: Groq has neither
    assert sent["body"].get("n") == params.get("n")  # null left out; 1 is Groq's one allowed value


def test_n_2_to_groq_is_still_refused(gateway: GatewayProcess, fresh_fakes: tuple[FakeUpstream, FakeUpstream]) -> None:
    fake, _ = fresh_fakes
    with pytest.raises(openai.BadRequestError) as refused:
        gateway.client().chat.completions.create(model="llama-3.1-8b-instant", messages=MESSAGES, n=2)
    assert refused.value.status_code == 400
    assert refused.value.code == "unsupported_parameter" and refused.value.param == "n"
    assert fake.stats()["requests_total"] == 0  # refused before anything was sent


def test_a_stream_that_opens_with_an_error_event_falls_back(
    gateway: GatewayProcess, fresh_fakes: tuple[FakeUpstream, FakeUpstream]
) -> None:
    """The primary answers 200 and then an error event as the stream's first event: the SDK's stream still
    completes, from the secondary, and never sees the error."""
    first, second = fresh_fakes
    first.configure(model="gpt-4o-mini", failure_kind="stream_error", failure_rate=1.0)
    with gateway.client().chat.completions.with_streaming_response.create(
        model="gpt-4o-mini", messages=MESSAGES, max_tokens=5, stream=True, stream_options={"include_usage": True}
    ) as response:
        chunks = list(response.parse())
        headers = response.headers
    assert headers["x-gateway-deployment"] == "secondary/gpt-4o-mini"
    # The shipped retries try a transient failure once more on the same deployment before moving on: two
    # attempts on the primary (each a 200 whose first event is an error), then the secondary's.
    assert headers["x-gateway-attempts"] == "3"
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 5
    assert first.stats()["failures_injected"] == {"stream_error": 2}
    assert first.stats()["requests_by_status"] == {"200": 2}
    assert second.stats()["requests_by_status"] == {"200": 1}
