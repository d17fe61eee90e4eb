"""Anthropic's stream events -> OpenAI chat completion chunks, one event at a time, as they arrive (pure).

==========================================  ==================================================================
Anthropic event                             OpenAI chunk(s)
==========================================  ==================================================================
``message_start``                           the first chunk: ``{"role": "assistant", "content": ""}``
``content_block_delta`` ``text_delta``      ``{"content": text}``
``content_block_start`` ``tool_use``        ``{"tool_calls": [{"index": i, "id", "type", "function": {name}}]}``
``content_block_delta`` ``input_json_delta``  ``{"tool_calls": [{"index": i, "function": {"arguments": part}}]}``
``content_block_delta`` ``thinking_delta``  ``{"reasoning_content": text}``
``content_block_stop`` (a thinking block)   ``{"thinking_blocks": [the block, with its signature]}``
``message_delta``                           ``finish_reason`` (``response.FINISH``); usage so far is kept
``message_stop``                            the usage chunk (``choices: []``), then ``[DONE]``
``ping``, other ``content_block_*``          nothing
``error``                                   raises its ``UpstreamStatus``: before the first byte reached the
                                            client that is a fallback, after it the stream's error event
==========================================  ==================================================================

``i`` counts the answer's tool calls from 0, whatever the Anthropic block index. Unknown event types are
skipped: Anthropic may add some. A chunk's envelope (id, model, creation time) is serialised once.
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from gateway.config.model import Deployment
from gateway.providers.anthropic.errors import error
from gateway.providers.anthropic.response import FINISH, usage

DONE = b"[DONE]"


class Translator:
    def __init__(self, deployment: Deployment) -> None:
        self._model = deployment.upstream_model
        self._head = b""  # '{"id":...,"choices":[{"index":0,"delta":' once message_start is here
        self._envelope: dict[str, Any] = {}
        self._usage: dict[str, Any] = {}
        self._tools: dict[int, int] = {}  # Anthropic block index -> OpenAI tool call index
        self._thinking: dict[int, dict[str, Any]] = {}  # block index -> the thinking block being built

    def feed(self, event: bytes) -> list[bytes]:
        data = orjson.loads(event)
        kind = data.get("type") if isinstance(data, dict) else None
        if kind == "content_block_delta":
            return self._delta(data.get("index"), data.get("delta") or {})
        if kind == "message_start":
            return self._start(data.get("message") or {})
        if kind == "content_block_start":
            return self._block(data.get("index"), data.get("content_block") or {})
        if kind == "content_block_stop":
            block = self._thinking.pop(data.get("index"), None)
            return [self._chunk({"thinking_blocks": [block]})] if block is not None else []
        if kind == "message_delta":
            self._usage.update({k: v for k, v in (data.get("usage") or {}).items() if v is not None})
            reason = (data.get("delta") or {}).get("stop_reason")
            return [self._chunk({}, FINISH.get(reason, "stop"))] if reason else []
        if kind == "message_stop":
            tail = {**self._envelope, "choices": [], "usage": usage(self._usage)}
            return [orjson.dumps(tail), DONE]
        if kind == "error":
            found = data.get("error") or {}
            raise error(found.get("type"), f"Anthropic failed mid-stream: {found.get('message', '')}"[:1000])
        return []  # ping, and event types added after this adapter

    def finish(self) -> list[bytes]:
        return []  # a stream without message_stop was cut: the relay says so

    def _start(self, message: dict[str, Any]) -> list[bytes]:
        self._envelope = {
            "id": message.get("id"),
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": message.get("model") or self._model,
        }
        self._head = orjson.dumps(self._envelope)[:-1] + b',"choices":[{"index":0,"delta":'
        self._usage.update({k: v for k, v in (message.get("usage") or {}).items() if v is not None})
        return [self._chunk({"role": "assistant", "content": ""})]

    def _block(self, index: int, block: dict[str, Any]) -> list[bytes]:
        kind = block.get("type")
        if kind == "tool_use":
            position = self._tools[index] = len(self._tools)
            call = {
                "index": position,
                "id": block.get("id"),
                "type": "function",
                "function": {"name": block.get("name"), "arguments": ""},
            }
            return [self._chunk({"tool_calls": [call]})]
        if kind == "thinking":
            self._thinking[index] = {"type": "thinking", "thinking": "", "signature": ""}
        elif kind == "redacted_thinking":
            return [self._chunk({"thinking_blocks": [{"type": "redacted_thinking", "data": block.get("data", "")}]})]
        elif kind == "text" and block.get("text"):
            return [self._chunk({"content": block["text"]})]
        return []

    def _delta(self, index: int, delta: dict[str, Any]) -> list[bytes]:
        kind = delta.get("type")
        if kind == "text_delta":
            return [self._chunk({"content": delta.get("text", "")})]
        if kind == "input_json_delta":
            part = delta.get("partial_json", "")
            if not part or index not in self._tools:
                return []
            return [self._chunk({"tool_calls": [{"index": self._tools[index], "function": {"arguments": part}}]})]
        block = self._thinking.get(index)
        if block is not None and kind == "thinking_delta":
            block["thinking"] += delta.get("thinking", "")
            return [self._chunk({"reasoning_content": delta.get("thinking", "")})]
        if block is not None and kind == "signature_delta":
            block["signature"] += delta.get("signature", "")
        return []

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> bytes:
        if not self._head:  # content before message_start: not a stream Anthropic sends, but stay well-formed
            self._start({})
        tail = (
            b',"logprobs":null,"finish_reason":null}]}'
            if finish is None
            else b',"logprobs":null,"finish_reason":"' + finish.encode() + b'"}]}'
        )
        return self._head + orjson.dumps(delta) + tail
