"""Drop-in fidelity with the official Python SDK: what real agent code sends and calls works unchanged."""

from __future__ import annotations

import httpx
import openai
import pytest
from harness import GatewayProcess

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


@pytest.mark.parametrize(
    ("method", "path", "key", "status"),
    [
        ("GET", "/v1/models", "test-key", 200),
        ("GET", "/v1/models", "wrong-key", 401),
        ("GET", "/v1/models/gpt-4o-mini", "test-key", 200),
        ("GET", "/v1/models/nope", "test-key", 404),
    ],
)
def test_every_answer_carries_a_request_id(
    gateway: GatewayProcess, method: str, path: str, key: str, status: int
) -> None:
    response = httpx.request(method, gateway.url + path, headers={"authorization": f"Bearer {key}"})
    assert response.status_code == status
    assert response.headers["x-request-id"].startswith("req_")
    echoed = httpx.request(method, gateway.url + path, headers={"authorization": f"Bearer {key}", "x-request-id": "r1"})
    assert echoed.headers["x-request-id"] == "r1"
