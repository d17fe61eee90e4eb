"""Static answers for bench/providers.py, one per provider kind and shape: the same nine words and usage as
bench/fixtures.py's OpenAI answer, in Anthropic's Messages format (JSON and SSE) and Bedrock's Converse
format (JSON and the binary event stream), so each kind moves the same content through the gateway.

ROUTES maps a request path to (content type, body); bench/static_upstream.py serves them.
"""

from __future__ import annotations

import json
from typing import Any

from bench.fixtures import HEALTH_PATH, chat_completion, chat_completion_stream
from gateway.fake.eventstream import event

_WORDS = ["Hello", " there", ",", " nice", " to", " meet", " you", " today", "!"]
MODEL = "bench-model"
BEDROCK_MODEL = "meta.llama3-3-70b-instruct-v1:0"


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def anthropic_message() -> bytes:
    body = {
        "id": "msg_bench0001",
        "type": "message",
        "role": "assistant",
        "model": "claude-haiku-4-5",
        "content": [{"type": "text", "text": "".join(_WORDS)}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": 24, "output_tokens": len(_WORDS), "cache_read_input_tokens": 0},
    }
    return _dumps(body).encode()


def _sse(event_type: str, data: dict[str, Any]) -> str:
    return f"event: {event_type}\ndata: {_dumps({'type': event_type, **data})}\n\n"


def anthropic_stream() -> bytes:
    start = json.loads(anthropic_message())
    start.update(content=[], stop_reason=None, usage={"input_tokens": 24, "output_tokens": 1})
    events = [_sse("message_start", {"message": start})]
    events.append(_sse("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}}))
    events.append(_sse("ping", {}))
    events += [_sse("content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": w}}) for w in _WORDS]
    events.append(_sse("content_block_stop", {"index": 0}))
    delta = {"delta": {"stop_reason": "end_turn", "stop_sequence": None}, "usage": {"output_tokens": len(_WORDS)}}
    events.append(_sse("message_delta", delta))
    events.append(_sse("message_stop", {}))
    return "".join(events).encode()


_BEDROCK_USAGE = {"inputTokens": 24, "outputTokens": len(_WORDS), "totalTokens": 24 + len(_WORDS)}


def converse() -> bytes:
    body = {
        "output": {"message": {"role": "assistant", "content": [{"text": "".join(_WORDS)}]}},
        "stopReason": "end_turn",
        "usage": _BEDROCK_USAGE,
        "metrics": {"latencyMs": 1},
    }
    return _dumps(body).encode()


def converse_stream() -> bytes:
    frames = [event("messageStart", {"role": "assistant"})]
    frames += [event("contentBlockDelta", {"delta": {"text": w}, "contentBlockIndex": 0}) for w in _WORDS]
    frames.append(event("contentBlockStop", {"contentBlockIndex": 0}))
    frames.append(event("messageStop", {"stopReason": "end_turn"}))
    frames.append(event("metadata", {"usage": _BEDROCK_USAGE, "metrics": {"latencyMs": 1}}))
    return b"".join(frames)


ROUTES: dict[str, tuple[str, bytes]] = {
    "/v1/chat/completions": ("application/json", chat_completion()),
    "/stream/v1/chat/completions": ("text/event-stream", chat_completion_stream()),
    "/v1/messages": ("application/json", anthropic_message()),
    "/stream/v1/messages": ("text/event-stream", anthropic_stream()),
    f"/model/{BEDROCK_MODEL}/converse": ("application/json", converse()),
    f"/model/{BEDROCK_MODEL}/converse-stream": ("application/vnd.amazon.eventstream", converse_stream()),
    HEALTH_PATH: ("text/plain", b"ok"),
}
