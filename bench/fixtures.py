"""The fake upstream's response bodies: a small OpenAI chat completion and its SSE stream.

Both upstreams (nginx and the asyncio fallback) serve exactly these bytes, so the direct and the
gateway runs move the same payloads.
"""

from __future__ import annotations

import json
from typing import Any

JSON_PATH = "/v1/chat/completions"
STREAM_PATH = "/stream/v1/chat/completions"
HEALTH_PATH = "/healthz"

_CREATED = 1_750_000_000
_WORDS = ["Hello", " there", ",", " nice", " to", " meet", " you", " today", "!"]
_USAGE = {
    "prompt_tokens": 24,
    "completion_tokens": len(_WORDS),
    "total_tokens": 24 + len(_WORDS),
    "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
    "completion_tokens_details": {
        "reasoning_tokens": 0,
        "audio_tokens": 0,
        "accepted_prediction_tokens": 0,
        "rejected_prediction_tokens": 0,
    },
}


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def chat_completion() -> bytes:
    """A realistic non-streaming `chat.completion` with usage."""
    body = {
        "id": "chatcmpl-bench0001",
        "object": "chat.completion",
        "created": _CREATED,
        "model": "bench-model",
        "system_fingerprint": "fp_bench",
        "service_tier": "default",
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": "".join(_WORDS),
                    "refusal": None,
                    "annotations": [],
                },
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": _USAGE,
    }
    return _dumps(body).encode()


def _chunk(choices: list[dict[str, Any]], usage: dict[str, Any] | None = None) -> str:
    chunk = {
        "id": "chatcmpl-bench0002",
        "object": "chat.completion.chunk",
        "created": _CREATED,
        "model": "bench-stream-model",
        "system_fingerprint": "fp_bench",
        "service_tier": "default",
        "choices": choices,
        "usage": usage,
    }
    return f"data: {_dumps(chunk)}\n\n"


def _delta(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
    return {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}


def chat_completion_stream() -> bytes:
    """12 `chat.completion.chunk` events (role, 9 content deltas, finish, usage) and `[DONE]`."""
    events = [_chunk([_delta({"role": "assistant", "content": "", "refusal": None})])]
    events += [_chunk([_delta({"content": word})]) for word in _WORDS]
    events.append(_chunk([_delta({}, "stop")]))
    events.append(_chunk([], _USAGE))
    events.append("data: [DONE]\n\n")
    return "".join(events).encode()
