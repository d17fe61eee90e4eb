"""Token counts (gateway/tokens.py): the estimate every request gets, the exact count, what answers take."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from gateway import tokens

HELLO = {"model": "agent-default", "messages": [{"role": "user", "content": "Hello there"}]}
IMAGE = {
    "role": "user",
    "content": [{"type": "text", "text": "what?"}, {"type": "image_url", "image_url": {"url": "x"}}],
}


def test_the_estimate_leans_high_and_frames_like_the_exact_count() -> None:
    estimate = tokens.estimate_prompt(HELLO)
    assert estimate == -(-len("userHello there") // 3) + 3 + 3
    exact = tokens.count_prompt(HELLO)
    assert exact is not None and estimate >= exact
    assert tokens.estimate_prompt({"input": "Hello there"}) == 4


@pytest.mark.parametrize(
    ("body", "asked", "total"),
    [
        ({"max_tokens": 100}, ("max_tokens", 100), 100),
        ({"max_completion_tokens": 50, "max_tokens": 100}, ("max_completion_tokens", 50), 50),
        ({"max_tokens": 64.0, "n": 3}, ("max_tokens", 64), 192),
        ({"max_tokens": 0}, ("max_tokens", 0), 1024),
        ({"n": 2}, None, 2048),
        ({"max_tokens": "9"}, None, 1024),
    ],
)
def test_what_the_answers_may_take(body: dict[str, object], asked: tuple[str, int] | None, total: int) -> None:
    assert tokens.requested_output(body) == asked
    assert tokens.output_tokens(body, 1024) == total


def test_no_encoding_file_means_no_counting(
    fresh_encoding: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))  # empty: tiktoken would go to the network
    assert tokens.encoding() is None and tokens.count_prompt(HELLO) is None


def test_counts_follow_openai_chat_accounting(fresh_encoding: None) -> None:
    enc = tokens.encoding()
    assert enc is not None, "o200k_base loads offline from litellm's tokenizers directory"
    n = len(enc.encode("Hello there"))
    assert tokens.count_prompt(HELLO) == 3 + 3 + 1 + n  # priming, framing, "user", text
    named = {"messages": [{"role": "user", "name": "bo", "content": "Hello there"}]}
    assert tokens.count_prompt(named) == 3 + 3 + 1 + 1 + len(enc.encode("bo")) + n
    image = tokens.count_prompt({"messages": [IMAGE]})
    assert image == 3 + 3 + 1 + len(enc.encode("what?")) + 85
    with_tools = tokens.count_prompt({**HELLO, "tools": [{"type": "function", "function": {"name": "lookup"}}]})
    assert with_tools is not None and with_tools > 3 + 3 + 1 + n
    assert tokens.count_prompt({"input": "Hello there"}) == n
    assert tokens.count_prompt({"input": ["Hello there", "Hello there"]}) == 2 * n
    assert tokens.count_prompt({"input": [[1, 2, 3], [4]]}) == 4


def test_serving_never_waits_for_the_encoding_to_load(fresh_encoding: None) -> None:
    assert tokens.count_prompt(HELLO, wait=False) is None  # not loaded yet: the estimate stands, loading starts
    deadline = time.monotonic() + 30
    while tokens.loaded() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert tokens.count_prompt(HELLO, wait=False) == tokens.count_prompt(HELLO)  # loaded by the thread: counted


def test_the_encoding_keeps_no_python_copy_of_its_ranks(fresh_encoding: None) -> None:
    enc = tokens.encoding()
    assert enc is not None
    assert enc.n_vocab > 200_000 and enc.decode(enc.encode("Hello there")) == "Hello there"
    assert not enc._mergeable_ranks  # the encoder has its own copy: ~28 MB of Python objects are freed
