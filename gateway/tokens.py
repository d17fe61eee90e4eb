"""Token counts, one home for every rule about them (pure): the cheap estimate every request gets, the
exact count where it matters, and what an answer may take. Routing's features, admission's reservation
and the per-deployment bounds read them from here.

The estimate reserves capacity before the provider has counted anything, so it leans high: a byte count
over three (tokenizers average about four bytes per token for English, fewer for code and other scripts)
plus OpenAI's framing of a chat (the same constants the exact count uses). Reconciliation replaces it
with the provider's own count when the response ends.

The exact count is tiktoken's ``o200k_base``. tiktoken downloads its encodings at first use, which fails
offline or stalls a request. The litellm package ships ``o200k_base`` in ``litellm_core_utils/tokenizers``
under the file name tiktoken's cache uses, so ``TIKTOKEN_CACHE_DIR`` is pointed there (litellm is
located, never imported). When the encoding file is not on disk, counting is refused rather than risking
the network, and callers keep their estimate.
"""

from __future__ import annotations

import functools
import hashlib
import os
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

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
_IMAGE_TYPES = ("image_url", "input_image")
# Both names set the answer's cap; OpenAI's newer one wins when both are sent.
OUTPUT_PARAMS: Final = ("max_completion_tokens", "max_tokens")


def _text_bytes(value: Any) -> int:
    # Loops, not sum() over generators: every request's messages pass here, and a generator costs more to
    # make than a short message's few fields cost to add up.
    if isinstance(value, str):
        return len(value.encode())
    total = 0
    if isinstance(value, list):
        for item in value:
            total += _text_bytes(item)
    elif isinstance(value, dict):
        if value.get("type") in _IMAGE_TYPES:
            return _IMAGE_TOKENS * 3  # in byte terms
        for name, item in value.items():
            if name != "type":
                total += _text_bytes(item)
    return total


def estimate_prompt(body: Mapping[str, Any]) -> int:
    """The cheap estimate of a chat or embeddings body's prompt tokens (leans high).

    >>> estimate_prompt({"messages": [{"role": "user", "content": "Hello there"}]})
    11
    """
    messages = body.get("messages")
    if isinstance(messages, list):
        size = _text_bytes(messages) + _text_bytes(body.get("tools"))
        return -(-size // 3) + _PER_MESSAGE * len(messages) + _REPLY_PRIMING
    return -(-_text_bytes(body.get("input")) // 3)


def whole_number(value: Any) -> int | None:
    """An integer, or a float with an integral value (JSON ``16384.0``); None for anything else.

    >>> whole_number(3), whole_number(3.0), whole_number(2.5), whole_number(True), whole_number("3")
    (3, 3, None, None, None)
    """
    kind = type(value)  # JSON's types exactly: a bool is not a number here
    if kind is int:
        return value  # type: ignore[no-any-return]
    if kind is float and value.is_integer():
        return int(value)
    return None


def requested_output(body: Mapping[str, Any]) -> tuple[str, int] | None:
    """The answer's cap the client set, as (parameter name, value), whatever its value.

    >>> requested_output({"max_tokens": 100.0}), requested_output({"max_completion_tokens": 5, "max_tokens": 9})
    (('max_tokens', 100), ('max_completion_tokens', 5))
    """
    for name in OUTPUT_PARAMS:
        given = body.get(name)
        if given is not None and (value := whole_number(given)) is not None:
            return name, value
    return None


def choices(body: Mapping[str, Any]) -> int:
    """``n``, the answers asked for (1 unless a positive whole number says otherwise)."""
    n = whole_number(body.get("n"))
    return n if n is not None and n > 0 else 1


def output_tokens(body: Mapping[str, Any], default: int) -> int:
    """What the provider may generate: the request's cap (else ``default``, ``limits.default_output_tokens``)
    for each of the ``n`` choices. The caller bounds both numbers first (``routing.bounds``, intake's ``n``).

    >>> output_tokens({"max_tokens": 100, "n": 2}, 1024), output_tokens({}, 1024)
    (200, 1024)
    """
    asked = requested_output(body)
    cap = asked[1] if asked is not None and asked[1] > 0 else default
    return cap * choices(body)


def _cache_dir() -> str | None:
    if os.environ.get(_CACHE_ENV):
        return os.environ[_CACHE_ENV]
    base = catalog.litellm_dir()
    return os.path.join(base, "litellm_core_utils", "tokenizers") if base is not None else None


@functools.cache
def encoding() -> Encoding | None:
    """The o200k_base encoding, loaded once per process (0.2 s or more: see ``loaded``); None when it cannot
    load offline.

    It is made from tiktoken's own constructor arguments rather than its registry, so that the Python copy of
    the 200,000 merge ranks can be emptied once the encoder has its own (in Rust): that copy alone is ~28 MB of
    a process's memory, used by nothing but pickling.
    """
    directory = _cache_dir()
    if directory is None or not os.path.isfile(os.path.join(directory, hashlib.sha1(_URL.encode()).hexdigest())):
        return None  # tiktoken would go to the network
    os.environ.setdefault(_CACHE_ENV, directory)
    try:
        import tiktoken
        from tiktoken_ext import openai_public

        made = openai_public.o200k_base()
        enc = tiktoken.Encoding(**made)
        made["mergeable_ranks"].clear()
        return enc
    except Exception:  # a corrupt file or a tiktoken that changed its cache layout: keep estimating
        return None


def loaded() -> Encoding | None:
    """The encoding if it is loaded; otherwise None at once, and it starts loading in a thread.

    The request path counts with this: the first long prompt is reserved on its estimate (as when tiktoken is
    missing) rather than wait for the load, and a process that never sees a prompt long enough to count never
    holds the encoding's ~45 MB.
    """
    if encoding.cache_info().currsize:
        return encoding()
    _start_loading()
    return None


@functools.cache  # once per process, like the encoding it loads
def _start_loading() -> None:
    threading.Thread(target=encoding, name="tiktoken-load", daemon=True).start()


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
        if part.get("type") in _IMAGE_TYPES:
            return _IMAGE_TOKENS
        if isinstance(part.get("text"), str):
            return _text(enc, part["text"])
    return _value(enc, part)


def count_prompt(body: Mapping[str, Any], wait: bool = True) -> int | None:
    """Exact prompt tokens as OpenAI counts them for a chat or embeddings body; None without tiktoken, or,
    with ``wait`` false, while it is still loading (``loaded``).

    >>> count_prompt({"messages": [{"role": "user", "content": "Hello there"}]})
    9
    """
    enc = encoding() if wait else loaded()
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
