"""Exact prompt token counts (tiktoken ``o200k_base``), for requests whose estimate sits near a threshold.

tiktoken downloads its encodings at first use, which fails offline or stalls a request. The litellm
package ships ``o200k_base`` in ``litellm_core_utils/tokenizers`` under the file name tiktoken's
cache uses, so ``TIKTOKEN_CACHE_DIR`` is pointed there (litellm is located, never imported). When
the encoding file is not on disk, counting is refused rather than risking the network, and callers
keep their estimate.
"""

from __future__ import annotations

import functools
import hashlib
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import orjson

from gateway import catalog

if TYPE_CHECKING:
    from tiktoken import Encoding

_URL = "https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken"
_CACHE_ENV = "TIKTOKEN_CACHE_DIR"
# OpenAI's chat accounting: framing per message, one more for a `name`, and the reply's priming.
_PER_MESSAGE = 3
_PER_NAME = 1
_REPLY_PRIMING = 3
_IMAGE_TOKENS = 85  # a low-detail image's flat price


def _cache_dir() -> str | None:
    if os.environ.get(_CACHE_ENV):
        return os.environ[_CACHE_ENV]
    base = catalog.litellm_dir()
    return os.path.join(base, "litellm_core_utils", "tokenizers") if base is not None else None


@functools.cache
def encoding() -> Encoding | None:
    """The o200k_base encoding, loaded once per process; None when it cannot load offline."""
    directory = _cache_dir()
    if directory is None or not os.path.isfile(os.path.join(directory, hashlib.sha1(_URL.encode()).hexdigest())):
        return None  # tiktoken would go to the network
    os.environ.setdefault(_CACHE_ENV, directory)
    try:
        import tiktoken

        return tiktoken.get_encoding("o200k_base")
    except Exception:  # a corrupt file or a tiktoken that changed its cache layout: keep estimating
        return None


def _text(enc: Encoding, text: str) -> int:
    return len(enc.encode(text, disallowed_special=()))


def _value(enc: Encoding, value: Any) -> int:
    if isinstance(value, str):
        return _text(enc, value)
    if isinstance(value, list):
        return sum(_part(enc, part) for part in value)
    if value is None:
        return 0
    return _text(enc, orjson.dumps(value).decode())  # tool calls and other structured fields


def _part(enc: Encoding, part: Any) -> int:
    if isinstance(part, dict):
        if part.get("type") in ("image_url", "input_image"):
            return _IMAGE_TOKENS
        if isinstance(part.get("text"), str):
            return _text(enc, part["text"])
    return _value(enc, part)


def count_prompt(body: Mapping[str, Any]) -> int | None:
    """Prompt tokens as OpenAI counts them for a chat or embeddings body; None without tiktoken.

    >>> count_prompt({"messages": [{"role": "user", "content": "Hello there"}]})
    9
    """
    enc = encoding()
    if enc is None:
        return None
    messages = body.get("messages")
    if isinstance(messages, list):
        total = _REPLY_PRIMING
        for message in messages:
            total += _PER_MESSAGE
            if isinstance(message, dict):
                for name, value in message.items():
                    total += _value(enc, value) + (_PER_NAME if name == "name" else 0)
        tools = body.get("tools") or body.get("functions")
        return total + (_value(enc, tools) if tools else 0)
    return _embedding_input(enc, body.get("input"))


def _embedding_input(enc: Encoding, value: Any) -> int:
    if isinstance(value, str):
        return _text(enc, value)
    if isinstance(value, list) and value and all(isinstance(v, int) for v in value):
        return len(value)  # already tokens
    if isinstance(value, list):
        return sum(_embedding_input(enc, v) for v in value)
    return 0
