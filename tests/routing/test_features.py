"""Request features: where each one comes from, who may assert tier and end user, exact counts near thresholds."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gateway import tokens
from gateway.config.model import VirtualKey
from gateway.routing.features import COUNTED_FROM, Features, features_from, refine, required_capabilities

KEY = VirtualKey(name="agents", key_sha256="0" * 64, tier="standard", models=frozenset({"*"}))
HELLO = {"model": "agent-default", "messages": [{"role": "user", "content": "Hello there"}]}


def chat(body: dict[str, Any], headers: dict[str, str] | None = None, trusted: bool = False) -> Features:
    return features_from({"model": "agent-default", **body}, KEY, headers or {}, "chat", trusted)


def test_basic_features() -> None:
    body = {**HELLO, "max_tokens": 50, "user": "u-1"}
    f = features_from(body, KEY, {}, "chat", False)
    assert (f.model, f.endpoint, f.key_name, f.tier, f.end_user) == (
        "agent-default",
        "chat",
        "agents",
        "standard",
        "u-1",
    )
    assert f.prompt_tokens == tokens.estimate_prompt(body) and not f.prompt_exact
    assert f.max_tokens == 50 and f.total_tokens == f.prompt_tokens + 50
    assert f.allowed == frozenset({"*"}) and f.capabilities == frozenset() and not f.stream
    assert f.task is None and f.tags == frozenset()


TRUST = {"x-gateway-tier": "premium", "x-gateway-end-user": "alice"}


@pytest.mark.parametrize(
    "trusted,body,expected",
    [
        (True, {}, ("premium", "alice")),
        (True, {"user": "bob"}, ("premium", "alice")),  # the service key speaks for its user
        (False, {}, ("standard", None)),  # an ordinary key cannot promote itself
        (False, {"user": "bob"}, ("standard", "bob")),
        (False, {"safety_identifier": "carol"}, ("standard", "carol")),
    ],
)
def test_only_trusted_keys_assert_tier_and_end_user(
    trusted: bool, body: dict[str, Any], expected: tuple[str, str]
) -> None:
    f = chat(body, TRUST, trusted)
    assert (f.tier, f.end_user) == expected


def test_a_trusted_key_without_the_headers_keeps_its_own() -> None:
    f = chat({"user": "bob"}, {"x-gateway-tier": "  "}, trusted=True)
    assert (f.tier, f.end_user) == ("standard", "bob")


@pytest.mark.parametrize(
    "headers,metadata,task,tags",
    [
        ({}, {}, None, set()),
        ({"x-gateway-task": "simple"}, {"task": "classify"}, "simple", set()),  # the header wins
        ({}, {"task": "classify"}, "classify", set()),
        ({"x-gateway-tags": "urgent, eu,,"}, {"tags": "batch,eu"}, None, {"urgent", "eu", "batch"}),
        ({}, {"tags": ["a", " b ", 3]}, None, {"a", "b"}),
    ],
)
def test_task_and_tags(headers: dict[str, str], metadata: dict[str, Any], task: str | None, tags: set[str]) -> None:
    f = chat({"metadata": metadata}, headers)  # untrusted: task and tags are hints anyone may give
    assert f.task == task and f.tags == frozenset(tags)


IMAGE = {
    "role": "user",
    "content": [{"type": "text", "text": "what?"}, {"type": "image_url", "image_url": {"url": "x"}}],
}


@pytest.mark.parametrize(
    "body,expected",
    [
        ({"tools": [{"type": "function", "function": {"name": "f"}}]}, {"tools"}),
        ({"functions": [{"name": "f"}]}, {"tools"}),
        ({"tools": []}, set()),
        ({"messages": [IMAGE]}, {"vision"}),
        ({"messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]}, set()),
        ({"response_format": {"type": "json_schema", "json_schema": {"name": "s"}}}, {"json_schema"}),
        ({"response_format": {"type": "json_object"}}, set()),
        ({"stream": True}, {"streaming"}),
        ({"logprobs": True, "top_logprobs": 2}, {"logprobs"}),
    ],
)
def test_required_capabilities(body: dict[str, Any], expected: set[str]) -> None:
    assert required_capabilities(body) == frozenset(expected)


@pytest.mark.parametrize(
    "body,expected",
    [
        ({"max_completion_tokens": 10, "max_tokens": 99}, 10),
        ({"max_tokens": 99}, 99),
        ({"max_tokens": 0}, None),
        ({"max_tokens": True}, None),
        ({}, None),
    ],
)
def test_max_tokens(body: dict[str, Any], expected: int | None) -> None:
    assert chat(body).max_tokens == expected


def test_embeddings_need_no_chat_capabilities() -> None:
    f = features_from({"model": "e", "input": "hi", "stream": True, "max_tokens": 5}, KEY, {}, "embeddings", False)
    assert f.endpoint == "embeddings" and f.capabilities == frozenset() and not f.stream and f.max_tokens is None
    assert f.prompt_tokens == tokens.estimate_prompt({"input": "hi"})


def long_body(words: int) -> dict[str, Any]:
    return {"model": "agent-default", "messages": [{"role": "user", "content": "word " * words}]}


def test_refine_counts_a_short_prompt_exactly_only_near_a_threshold() -> None:
    f = features_from(long_body(300), KEY, {}, "chat", False)
    assert f.prompt_tokens < COUNTED_FROM
    exact = tokens.count_prompt(f.body)
    assert exact is not None and exact < f.prompt_tokens  # the estimate leans high
    near = refine(f, [f.prompt_tokens + f.prompt_tokens // 10])  # 10% away
    assert near.prompt_exact and near.prompt_tokens == exact
    assert refine(f, [f.prompt_tokens * 2, f.prompt_tokens // 2]) is f  # far from both: the estimate decides
    assert refine(f, []) is f
    assert refine(near, [near.prompt_tokens]) is near  # counted once


def test_refine_counts_a_long_prompt_exactly_for_what_it_reserves() -> None:
    english = features_from(long_body(3000), KEY, {}, "chat", False)
    counted = refine(english, [])
    assert counted.prompt_exact and counted.prompt_tokens == tokens.count_prompt(english.body)
    assert counted.prompt_tokens < 0.7 * english.prompt_tokens  # what the estimate would have held back


def test_refine_compares_prompt_plus_max_tokens_too() -> None:
    f = features_from({**long_body(300), "max_tokens": 100_000}, KEY, {}, "chat", False)
    assert refine(f, [f.prompt_tokens]).prompt_exact
    assert refine(f, [f.total_tokens + 1000]).prompt_exact
    assert not refine(f, [f.total_tokens * 3]).prompt_exact


def test_refine_keeps_the_estimate_when_tiktoken_cannot_load(
    fresh_encoding: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))  # no encoding file: tiktoken would go to the network
    f = chat(HELLO)
    assert refine(f, [f.prompt_tokens]) is f
