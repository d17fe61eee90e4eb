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
    """>>> prompt_tokens({"messages": [{"role": "user", "content": "Hello there"}]})
    12
    """
    messages = body.get("messages")
    if isinstance(messages, list):
        size = sum(_text_bytes(m) for m in messages) + _text_bytes(body.get("tools") or [])
        return -(-size // 3) + _PER_MESSAGE * len(messages) + _PER_REQUEST
    return -(-_text_bytes(body.get("input")) // 3)


def output_tokens(body: dict[str, Any], default: int) -> int:
    """What the provider will reserve for the answer: the request's cap, else the configured default."""
    for name in ("max_completion_tokens", "max_tokens"):
        value = body.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value * max(1, _choices(body))
    return default * max(1, _choices(body))


def _choices(body: dict[str, Any]) -> int:
    n = body.get("n")
    return n if isinstance(n, int) and not isinstance(n, bool) and n > 0 else 1
