"""A Bedrock ``Converse`` answer -> an OpenAI chat completion, and its usage in OpenAI's shape (pure).

Text blocks are the ``content``, ``toolUse`` blocks the ``tool_calls`` (``toolUseId`` kept), reasoning is
``reasoning_content`` plus ``thinking_blocks`` (as for Anthropic). ``stopReason``: ``end_turn`` and
``stop_sequence`` -> ``stop``, ``max_tokens`` and ``model_context_window_exceeded`` -> ``length``,
``tool_use`` -> ``tool_calls``, ``guardrail_intervened`` and ``content_filtered`` -> ``content_filter``,
``malformed_model_output`` and ``malformed_tool_use`` -> ``stop``. Usage as Anthropic's: ``prompt_tokens``
counts ``inputTokens`` plus cache reads (``prompt_tokens_details.cached_tokens``) and cache writes
(``prompt_tokens_details.cache_write_tokens``). Converse answers carry no id: one is made per answer.
"""

from __future__ import annotations

import secrets
import time
from typing import Any

import orjson

from gateway.config.model import Deployment

FINISH = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "guardrail_intervened": "content_filter",
    "content_filtered": "content_filter",
}


def new_id() -> str:
    return "chatcmpl-" + secrets.token_hex(12)


def usage(raw: Any) -> dict[str, Any]:
    """>>> usage({"inputTokens": 10, "outputTokens": 3, "totalTokens": 13, "cacheReadInputTokens": 90})["prompt_tokens"]
    100
    """
    raw = raw if isinstance(raw, dict) else {}
    read, write = _count(raw.get("cacheReadInputTokens")), _count(raw.get("cacheWriteInputTokens"))
    prompt = _count(raw.get("inputTokens")) + read + write
    completion = _count(raw.get("outputTokens"))
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": read, "cache_write_tokens": write},
    }


def _count(value: Any) -> int:
    return value if isinstance(value, int) and value > 0 else 0


def from_response(body: bytes, deployment: Deployment) -> bytes:
    answer = orjson.loads(body)
    output = (answer.get("output") or {}).get("message") or {}
    text: list[str] = []
    calls: list[dict[str, Any]] = []
    reasoning: list[str] = []
    blocks: list[dict[str, Any]] = []
    for block in output.get("content") or ():
        if "text" in block:
            text.append(block["text"])
        elif "toolUse" in block:
            use = block["toolUse"]
            function = {"name": use.get("name"), "arguments": orjson.dumps(use.get("input") or {}).decode()}
            calls.append({"id": use.get("toolUseId"), "type": "function", "function": function})
        elif "reasoningContent" in block:
            content = block["reasoningContent"]
            if "reasoningText" in content:
                said = content["reasoningText"]
                reasoning.append(said.get("text", ""))
                blocks.append(
                    {"type": "thinking", "thinking": said.get("text", ""), "signature": said.get("signature", "")}
                )
            elif "redactedContent" in content:
                blocks.append({"type": "redacted_thinking", "data": content["redactedContent"]})
    message: dict[str, Any] = {
        "role": "assistant",
        "content": "".join(text) if text or not calls else None,
        "refusal": None,
    }
    if calls:
        message["tool_calls"] = calls
    if reasoning:
        message["reasoning_content"] = "".join(reasoning)
    if blocks:
        message["thinking_blocks"] = blocks
    finish = FINISH.get(answer.get("stopReason"), "stop")
    completion = {
        "id": new_id(),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": deployment.upstream_model,
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
        "usage": usage(answer.get("usage")),
    }
    return orjson.dumps(completion)
