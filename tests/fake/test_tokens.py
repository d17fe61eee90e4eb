import pytest

from gateway.fake import tokens
from gateway.fake.tokens import TokenCounter, encoding_name


def test_counts_with_tiktoken_offline() -> None:
    counter = TokenCounter()
    assert counter.exact
    assert counter.text("gpt-4o", "hello world") == 2
    messages = [{"role": "user", "content": "hello world"}]
    assert counter.messages("gpt-4o", messages) == 3 + 3 + 1 + 2  # priming, framing, role, content


def test_parts_and_tools_count() -> None:
    counter = TokenCounter()
    text = [{"role": "user", "content": "hello world"}]
    parts = [{"role": "user", "content": [{"type": "text", "text": "hello world"}]}]
    image = [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:..."}}]}]
    assert counter.messages("gpt-4o", parts) == counter.messages("gpt-4o", text)
    assert counter.messages("gpt-4o", image) == 3 + 3 + 1 + 85
    assert counter.messages("gpt-4o", text, tools=[{"type": "function"}]) > counter.messages("gpt-4o", text)
    assert counter.embedding_input("text-embedding-3-small", [1, 2, 3]) == 3


def test_falls_back_to_an_estimate(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tokens, "_load", lambda name: None)
    counter = TokenCounter()
    assert not counter.exact
    assert counter.text("gpt-4o", "x" * 40) == 10


@pytest.mark.parametrize(
    ("model", "name"),
    [
        ("gpt-4o-mini", "o200k_base"),
        ("gpt-4", "cl100k_base"),
        ("gpt-4-turbo", "cl100k_base"),
        ("text-embedding-3-small", "cl100k_base"),
        ("llama-3", "o200k_base"),
    ],
)
def test_encoding_per_model(model: str, name: str) -> None:
    assert encoding_name(model) == name
