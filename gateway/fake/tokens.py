"""Prompt token counting: tiktoken when its encodings load offline, else a len/4 estimate.

tiktoken downloads encodings at first use; the litellm package ships ``cl100k_base`` and
``o200k_base`` in ``litellm/litellm_core_utils/tokenizers``, so pointing ``TIKTOKEN_CACHE_DIR`` there
works without network. litellm is located with ``find_spec`` and never imported (6 s, 300 MB).
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import orjson

Encoder = Callable[[str], int]

# OpenAI's accounting for chat: each message costs a few framing tokens, the reply a few more.
_PER_MESSAGE = 3
_REPLY_PRIMING = 3
_IMAGE_TOKENS = 85  # a low-detail image, OpenAI's flat price


def _tokenizer_dir() -> str | None:
    spec = importlib.util.find_spec("litellm")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "litellm_core_utils" / "tokenizers"
    return str(path) if path.is_dir() else None


def _estimate(text: str) -> int:
    return (len(text) + 3) // 4


def _load(name: str) -> Encoder | None:
    directory = _tokenizer_dir()
    if directory is None and "TIKTOKEN_CACHE_DIR" not in os.environ:
        return None  # tiktoken would try the network
    if directory is not None:
        os.environ.setdefault("TIKTOKEN_CACHE_DIR", directory)
    try:
        import tiktoken

        encoding = tiktoken.get_encoding(name)
    except Exception:  # offline, missing file, or tiktoken missing: estimate instead
        return None
    return lambda text: len(encoding.encode(text, disallowed_special=()))


def encoding_name(model: str) -> str:
    """gpt-4o and newer use o200k_base; gpt-4, gpt-3.5 and the embedding models cl100k_base."""
    legacy = ("gpt-4-", "gpt-3.5", "text-embedding")
    return "cl100k_base" if model == "gpt-4" or model.startswith(legacy) else "o200k_base"


class TokenCounter:
    """Counts tokens; encoders are loaded once per counter (tiktoken caches them per process)."""

    def __init__(self) -> None:
        self._encoders: dict[str, Encoder | None] = {}

    def preload(self) -> None:
        """Load both encodings up front so the first request does not pay for it."""
        for name in ("o200k_base", "cl100k_base"):
            self._encoder(name)

    @property
    def exact(self) -> bool:
        return self._encoder("o200k_base") is not None

    def _encoder(self, name: str) -> Encoder | None:
        if name not in self._encoders:
            self._encoders[name] = _load(name)
        return self._encoders[name]

    def text(self, model: str, text: str) -> int:
        encoder = self._encoder(encoding_name(model))
        return encoder(text) if encoder is not None else _estimate(text)

    def messages(self, model: str, messages: Iterable[Any], tools: Iterable[Any] = ()) -> int:
        total = _REPLY_PRIMING
        for message in messages:
            total += _PER_MESSAGE
            if isinstance(message, dict):
                total += sum(self._value(model, v) for v in message.values())
        tool_list = list(tools)
        if tool_list:
            total += self.text(model, orjson.dumps(tool_list).decode())
        return total

    def _value(self, model: str, value: Any) -> int:
        if isinstance(value, str):
            return self.text(model, value)
        if isinstance(value, list):
            return sum(self._part(model, part) for part in value)
        if isinstance(value, dict):
            return self.text(model, orjson.dumps(value).decode())
        return 0

    def _part(self, model: str, part: Any) -> int:
        if isinstance(part, dict) and part.get("type") == "image_url":
            return _IMAGE_TOKENS
        if isinstance(part, dict) and isinstance(part.get("text"), str):
            return self.text(model, part["text"])
        return self._value(model, part)

    def embedding_input(self, model: str, item: str | list[int]) -> int:
        return len(item) if isinstance(item, list) else self.text(model, item)
