"""An Anthropic Message -> an OpenAI chat completion, and Anthropic's usage in OpenAI's shape (pure).

- Text blocks are the message's ``content``; ``tool_use`` blocks its ``tool_calls`` (ids kept, ``input``
  as the JSON ``arguments``); thinking is ``reasoning_content`` (its text), and ``thinking_blocks`` carries
  the blocks with their signatures for a client to pass back (``messages``). Server-tool blocks, which
  this adapter never asks for, are left out.
- ``stop_reason``: ``end_turn``/``stop_sequence``/``pause_turn`` -> ``stop``, ``max_tokens`` and
  ``model_context_window_exceeded`` -> ``length``, ``tool_use`` -> ``tool_calls``, ``refusal`` ->
  ``content_filter``.
- Usage: ``prompt_tokens`` counts every input token, as OpenAI's does: ``input_tokens`` plus the tokens
  read from the prompt cache (``prompt_tokens_details.cached_tokens``) plus those written to it
  (``prompt_tokens_details.cache_write_tokens``, priced as cache writes); ``completion_tokens`` is
  ``output_tokens``, thinking included (``completion_tokens_details.reasoning_tokens`` when reported).

>>> usage({"input_tokens": 10, "output_tokens": 5, "cache_read_input_tokens": 100})["prompt_tokens"]
110
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from gateway.config.model import Deployment

FINISH = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}


def usage(raw: Any) -> dict[str, Any]:
    """Anthropic's ``usage`` (a message's, or a stream's accumulated) in OpenAI's shape."""
    raw = raw if isinstance(raw, dict) else {}
    read, write = _count(raw.get("cache_read_input_tokens")), _count(raw.get("cache_creation_input_tokens"))
    prompt = _count(raw.get("input_tokens")) + read + write
    completion = _count(raw.get("output_tokens"))
    out: dict[str, Any] = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": read, "cache_write_tokens": write},
    }
    details = raw.get("output_tokens_details")
    if isinstance(details, dict) and isinstance(details.get("thinking_tokens"), int):
        out["completion_tokens_details"] = {"reasoning_tokens": details["thinking_tokens"]}
    return out


def _count(value: Any) -> int:
    return value if isinstance(value, int) and value > 0 else 0


def from_response(body: bytes, deployment: Deployment) -> bytes:
    answer = orjson.loads(body)
    text: list[str] = []
    calls: list[dict[str, Any]] = []
    reasoning: list[str] = []
    thinking_blocks: list[dict[str, Any]] = []
    for block in answer.get("content") or ():
        kind = block.get("type")
        if kind == "text":
            text.append(block.get("text", ""))
        elif kind == "tool_use":
            arguments = orjson.dumps(block.get("input") or {}).decode()
            calls.append(
                {
                    "id": block.get("id"),
                    "type": "function",
                    "function": {"name": block.get("name"), "arguments": arguments},
                }
            )
        elif kind == "thinking":
            reasoning.append(block.get("thinking", ""))
            thinking_blocks.append(
                {"type": "thinking", "thinking": block.get("thinking", ""), "signature": block.get("signature", "")}
            )
        elif kind == "redacted_thinking":
            thinking_blocks.append({"type": "redacted_thinking", "data": block.get("data", "")})
    message: dict[str, Any] = {
        "role": "assistant",
        "content": "".join(text) if text or not calls else None,
        "refusal": None,
    }
    if calls:
        message["tool_calls"] = calls
    if reasoning:
        message["reasoning_content"] = "".join(reasoning)
    if thinking_blocks:
        message["thinking_blocks"] = thinking_blocks
    completion = {
        "id": answer.get("id"),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": answer.get("model") or deployment.upstream_model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": FINISH.get(answer.get("stop_reason"), "stop"),
            }
        ],
        "usage": usage(answer.get("usage")),
    }
    return orjson.dumps(completion)
