"""Token estimates for admission (pure). Cheap by design: they run on every request.

The estimate reserves capacity before the provider has counted anything, so it leans high: a byte
count over three (tokenizers average about four bytes per token for English, fewer for code and
other scripts) plus OpenAI's per-message framing. Reconciliation replaces it with the provider's
own count when the response ends.
"""

from __future__ import annotations

from typing import Any

_PER_MESSAGE = 4  # role and separators, as OpenAI's chat format counts them
_PER_REQUEST = 3  # the assistant reply's priming
# Both names set the answer's cap; OpenAI's newer one wins when both are sent.
OUTPUT_PARAMS = ("max_completion_tokens", "max_tokens")


def _text_bytes(value: Any) -> int:
    if isinstance(value, str):
        return len(value.encode())
    if isinstance(value, list):
        return sum(_text_bytes(v) for v in value)
    if isinstance(value, dict):
        if value.get("type") in ("image_url", "input_image"):
            return 85 * 3  # a low-detail image's token cost, in byte terms
        return sum(_text_bytes(v) for k, v in value.items() if k != "type")
    return 0


def prompt_tokens(body: dict[str, Any]) -> int:
    """
    >>> prompt_tokens({"messages": [{"role": "user", "content": "Hello there"}]})
    12
    """
    messages = body.get("messages")
    if isinstance(messages, list):
        size = sum(_text_bytes(m) for m in messages) + _text_bytes(body.get("tools") or [])
        return -(-size // 3) + _PER_MESSAGE * len(messages) + _PER_REQUEST
    return -(-_text_bytes(body.get("input")) // 3)


def output_tokens(body: dict[str, Any], default: int) -> int:
    """What the provider will reserve for the answer: the request's cap, else the configured default, for
    each of the ``n`` choices. The caller bounds both numbers first (``routing.bounds``, intake's ``n``)."""
    for name in OUTPUT_PARAMS:
        value = whole_number(body.get(name))
        if value is not None and value > 0:
            return value * _choices(body)
    return default * _choices(body)


def whole_number(value: Any) -> int | None:
    """An integer, or a float with an integral value (JSON ``16384.0``); None for anything else.

    >>> whole_number(3), whole_number(3.0), whole_number(2.5), whole_number(True), whole_number("3")
    (3, 3, None, None, None)
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def _choices(body: dict[str, Any]) -> int:
    n = whole_number(body.get("n"))
    return n if n is not None and n > 0 else 1
