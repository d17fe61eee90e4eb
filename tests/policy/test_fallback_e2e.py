"""Fallback through a policy route, one test per trigger, against the fake providers.

Each test routes ``model: fb`` by a priority rule over ``a/<model>`` (the fake ``fake``) then ``b/<model>``
(``fake2``), makes the first fail in one way, and checks what the client sees, which deployment served
it, how many attempts it took and what reached each fake.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx
import openai
import orjson
import pytest
from harness import TEST_KEY, UPSTREAM_KEY, GatewayProcess
from policy.support import MESSAGES, Launch, account, chat, config, count, wait_for, write_policy

from gateway.fake.testing import FakeUpstream

# Short backoff between same-deployment retries keeps the tests quick; the mechanism is the same.
DEFAULTS = "defaults:\n  retries: {same_deployment: 1, backoff_ms: 50, backoff_max_ms: 100}\n"


def route(candidates: list[str], rule_extra: str = "") -> str:
    return DEFAULTS + (
        "routes:\n"
        "  fb:\n"
        "    - name: main\n"
        f"      candidates: [{', '.join(candidates)}]\n"
        + "".join(f"      {line}\n" for line in rule_extra.splitlines())
    )


def start(
    launch: Launch,
    policy_dir: Path,
    fake: FakeUpstream,
    fake2: FakeUpstream,
    model: str,
    rule_extra: str = "",
    providers: Mapping[str, Any] | None = None,
    candidates: list[str] | None = None,
    env: dict[str, str] | None = None,
) -> GatewayProcess:
    """A gateway whose route ``fb`` tries ``a/<model>`` (on ``fake``) and then ``b/<model>`` (on ``fake2``)."""
    providers = providers or {"a": account(fake.url, {model: {}}), "b": account(fake2.url, {model: {}})}
    write_policy(policy_dir, route(candidates or [f"a/{model}", f"b/{model}"], rule_extra))
    return launch(lambda port: config(port, providers, policy_dir), env=env)


def served_by(response: httpx.Response, deployment: str, attempts: int) -> None:
    assert response.status_code == 200, response.text
    assert response.headers["x-gateway-deployment"] == deployment
    assert response.headers["x-gateway-rule"] == "fb/main"
    assert response.headers["x-gateway-attempts"] == str(attempts)
    assert response.json()["choices"][0]["message"]["content"]


def sse(response: httpx.Response) -> list[str]:
    """The ``data:`` payloads of an event stream, in order."""
    return [line[len("data: ") :] for line in response.text.split("\n") if line.startswith("data: ")]


def text_of(events: list[str]) -> str:
    chunks = [orjson.loads(e) for e in events if e != "[DONE]" and '"error"' not in e]
    return "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c.get("choices"))


def direct_answer(fake: FakeUpstream, model: str, max_tokens: int) -> str:
    """What the provider answers this test's request with when nothing goes wrong (the fake is deterministic)."""
    client = openai.OpenAI(base_url=fake.base_url, api_key=UPSTREAM_KEY, max_retries=0)
    answer = client.chat.completions.create(model=model, messages=MESSAGES, max_tokens=max_tokens)
    return answer.choices[0].message.content or ""


def stream(gateway: GatewayProcess, model: str, max_tokens: int) -> httpx.Response:
    return httpx.post(
        f"{gateway.base_url}/chat/completions",
        json={
            "model": model,
            "messages": [{"role": "user", "content": "hi"}],
            "max_tokens": max_tokens,
            "stream": True,
        },
        headers={"authorization": f"Bearer {TEST_KEY}"},
        timeout=15,
    )


def test_429_falls_back_and_cools_the_deployment_for_its_retry_after(
    launch: Launch, policy_dir: Path, fake: FakeUpstream, fake2: FakeUpstream
) -> None:
    m = "fb-429"
    gateway = start(launch, policy_dir, fake, fake2, m)
    fake.configure(m, failure_kind="429", failure_rate=1.0, retry_after_ms=1500)
    first = chat(gateway, "fb", max_tokens=5)
    limited_at = time.monotonic()
    served_by(first, f"b/{m}", attempts=2)  # a 429 moves on at once: no same-deployment retry
    assert (count(fake.stats(), m), count(fake2.stats(), m)) == (1, 1)

    fake.configure(m, failure_rate=0.0)  # a would answer now, but it asked for 1.5 s
    second = chat(gateway, "fb", max_tokens=5)
    assert time.monotonic() - limited_at < 1.0, "too slow to observe the cooldown"
    served_by(second, f"b/{m}", attempts=1)  # the cooling deployment was not even tried
    assert count(fake.stats(), m) == 1

    back = wait_for(
        "the 429'd deployment to serve again after its Retry-After",
        lambda: (r := chat(gateway, "fb", max_tokens=5)).headers.get("x-gateway-deployment") == f"a/{m}" and r,
        timeout=5,
        interval=0.1,
    )
    waited = time.monotonic() - limited_at
    served_by(back, f"a/{m}", attempts=1)
    assert 1.0 <= waited <= 4.0, waited


@pytest.mark.parametrize("kind", ["500", "reset"])
def test_server_errors_and_resets_retry_once_then_fall_back(
    launch: Launch, policy_dir: Path, fake: FakeUpstream, fake2: FakeUpstream, kind: str
) -> None:
    m = f"fb-{kind}"
    gateway = start(launch, policy_dir, fake, fake2, m)
    fake.configure(m, failure_kind=kind, failure_rate=1.0)
    response = chat(gateway, "fb", max_tokens=5)
    served_by(response, f"b/{m}", attempts=3)  # a, a again (retries.same_deployment: 1), then b
    assert (count(fake.stats(), m), count(fake2.stats(), m)) == (2, 1)


@pytest.mark.parametrize("kind,stream_", [("timeout", False), ("stall", False), ("stall", True)])
def test_timeouts_fall_back(
    launch: Launch, policy_dir: Path, fake: FakeUpstream, fake2: FakeUpstream, kind: str, stream_: bool
) -> None:
    """No headers within first_byte (1 s), or headers and then nothing for stream_idle (1 s)."""
    m = f"fb-{kind}-{'stream' if stream_ else 'json'}"
    gateway = start(launch, policy_dir, fake, fake2, m, rule_extra="retries: {same_deployment: 0}")
    fake.configure(m, failure_kind=kind, failure_rate=1.0)
    started = time.monotonic()
    if stream_:
        response = stream(gateway, "fb", max_tokens=5)
        assert response.status_code == 200 and response.headers["x-gateway-deployment"] == f"b/{m}"
        assert response.headers["x-gateway-attempts"] == "2"
        assert sse(response)[-1] == "[DONE]" and text_of(sse(response))
    else:
        served_by(chat(gateway, "fb", max_tokens=5), f"b/{m}", attempts=2)
    assert 0.9 <= time.monotonic() - started < 4
    assert (count(fake.stats(), m), count(fake2.stats(), m)) == (1, 1)
    # The gateway gave up on the hanging upstream request: it closed that connection.
    wait_for("the abandoned upstream request to be closed", lambda: fake.stats()["disconnects"] >= 1, timeout=3)


@pytest.mark.parametrize("kind", ["500", "reset"])
def test_stream_failing_before_its_first_byte_falls_back_invisibly(
    launch: Launch, policy_dir: Path, fake: FakeUpstream, fake2: FakeUpstream, kind: str
) -> None:
    m = f"fb-stream-{kind}"
    gateway = start(launch, policy_dir, fake, fake2, m)
    fake.configure(m, failure_kind=kind, failure_rate=1.0)
    response = stream(gateway, "fb", max_tokens=12)
    assert response.status_code == 200
    assert response.headers["x-gateway-deployment"] == f"b/{m}" and response.headers["x-gateway-attempts"] == "3"
    events = sse(response)
    assert events[-1] == "[DONE]" and not any('"error"' in e for e in events)
    assert (count(fake.stats(), m), count(fake2.stats(), m)) == (2, 1)
    assert text_of(events) == direct_answer(fake2, m, 12)  # the whole answer, once


def test_stream_cut_after_its_first_byte_ends_with_an_error_event_and_no_fallback(
    launch: Launch, policy_dir: Path, fake: FakeUpstream, fake2: FakeUpstream
) -> None:
    m = "fb-cut"
    gateway = start(launch, policy_dir, fake, fake2, m)
    fake.configure(m, failure_kind="cut", failure_rate=1.0)
    response = stream(gateway, "fb", max_tokens=20)
    assert response.status_code == 200 and response.headers["x-gateway-deployment"] == f"a/{m}"
    events = sse(response)
    assert "[DONE]" not in events
    error = orjson.loads(events[-1])
    assert set(error) == {"error"} and error["error"]["message"]
    content = [orjson.loads(e) for e in events[:-1]]
    assert len({c["id"] for c in content}) == 1  # one completion: nothing was restarted elsewhere
    # Text already sent is never replayed: what arrived is a strict prefix of the answer, each piece once.
    assert (count(fake.stats(), m), count(fake2.stats(), m)) == (1, 0)
    partial = text_of(events)
    fake.configure(m, failure_rate=0.0)
    full = direct_answer(fake, m, 20)
    assert partial and full.startswith(partial) and len(partial) < len(full)
    fake.configure(m, failure_rate=1.0)
    with pytest.raises(openai.APIError):  # the SDK turns the error event into an exception
        list(gateway.client().chat.completions.create(model="fb", messages=MESSAGES, max_tokens=20, stream=True))


def test_context_length_error_jumps_to_a_larger_window(
    launch: Launch, policy_dir: Path, fake: FakeUpstream, fake2: FakeUpstream
) -> None:
    """The first deployment refuses the prompt as too long; the next one with a smaller window than the
    first's is skipped, and the first with a larger one serves."""
    first, smaller, larger = "fb-ctx-8k", "fb-ctx-4k", "fb-ctx-32k"
    providers = {
        "a": account(fake.url, {first: {"context_window": 8000}}),
        "b": account(fake2.url, {smaller: {"context_window": 4000}, larger: {"context_window": 32000}}),
    }
    gateway = start(
        launch,
        policy_dir,
        fake,
        fake2,
        first,
        providers=providers,
        candidates=[f"a/{first}", f"b/{smaller}", f"b/{larger}"],
    )
    fake.configure(first, context_window=50)  # the provider's real window is smaller than declared
    response = chat(gateway, "fb", max_tokens=100)
    served_by(response, f"b/{larger}", attempts=2)  # not retried on the same deployment either
    assert count(fake.stats(), first) == 1
    assert (count(fake2.stats(), smaller), count(fake2.stats(), larger)) == (0, 1)


def test_provider_400_is_neither_retried_nor_falls_back(
    launch: Launch, policy_dir: Path, fake: FakeUpstream, fake2: FakeUpstream
) -> None:
    m = "fb-400"
    gateway = start(launch, policy_dir, fake, fake2, m)
    # The fake (like OpenAI) refuses n=0; the gateway passes it through, so the 400 is the provider's.
    response = chat(gateway, "fb", max_tokens=5, n=0)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == "n"
    assert response.headers["x-gateway-attempts"] == "1"
    assert fake.stats()["requests_by_status"] == {"400": 1}  # once, on the first deployment only
    assert fake2.stats()["requests_total"] == 0


def test_upstream_401_is_neither_retried_nor_falls_back(
    launch: Launch, policy_dir: Path, fake: FakeUpstream, fake2: FakeUpstream
) -> None:
    m = "fb-401"
    providers = {
        "a": account(fake.url, {m: {}}, key_env="WRONG_UPSTREAM_KEY"),
        "b": account(fake2.url, {m: {}}),
    }
    gateway = start(
        launch, policy_dir, fake, fake2, m, providers=providers, env={"WRONG_UPSTREAM_KEY": "sk-wrong-key-0123456789"}
    )
    response = chat(gateway, "fb", max_tokens=5)
    assert response.status_code == 502, response.text  # the gateway's credential, not the caller's request
    assert "credential" in response.json()["error"]["message"]
    assert response.headers["x-gateway-attempts"] == "1"
    assert fake.stats()["requests_by_status"] == {"401": 1}
    assert count(fake2.stats(), m) == 0


def test_a_rules_own_retry_on_keeps_a_500_from_falling_back(
    launch: Launch, policy_dir: Path, fake: FakeUpstream, fake2: FakeUpstream
) -> None:
    m = "fb-retry-on"
    gateway = start(launch, policy_dir, fake, fake2, m, rule_extra="retry_on: [timeout]\nretries: {same_deployment: 0}")
    fake.configure(m, failure_kind="500", failure_rate=1.0)
    response = chat(gateway, "fb", max_tokens=5)
    assert response.status_code == 502, response.text
    assert response.headers["x-gateway-attempts"] == "1"
    assert (count(fake.stats(), m), count(fake2.stats(), m)) == (1, 0)
    fake.configure(m, failure_kind="timeout")  # a trigger it does list still falls back
    served_by(chat(gateway, "fb", max_tokens=5), f"b/{m}", attempts=2)
