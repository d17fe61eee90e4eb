"""Bedrock's ``ConverseStream`` events (decoded by ``eventstream``) -> OpenAI chunks, as they arrive (pure).

=============================================  =============================================================
Bedrock event                                  OpenAI chunk(s)
=============================================  =============================================================
``messageStart``                               the first chunk: ``{"role": "assistant", "content": ""}``
``contentBlockDelta`` ``text``                 ``{"content": text}``
``contentBlockStart`` ``toolUse``              ``{"tool_calls": [{"index": i, "id", "type", "function": {name}}]}``
``contentBlockDelta`` ``toolUse.input``        ``{"tool_calls": [{"index": i, "function": {"arguments": part}}]}``
``contentBlockDelta`` ``reasoningContent``     ``{"reasoning_content": text}``; a signed block, at its stop,
                                               ``{"thinking_blocks": [...]}``
``messageStop``                                ``finish_reason`` (``response.FINISH``)
``metadata``                                   the usage chunk (``choices: []``), then ``[DONE]``
an exception (``throttlingException``...)      raises its ``UpstreamStatus`` (``errors``)
=============================================  =============================================================

A stream that ends after ``messageStop`` without ``metadata`` still ends with ``[DONE]`` (its usage is then
estimated by the relay).
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from gateway.config.model import Deployment
from gateway.providers.bedrock.errors import stream_exception
from gateway.providers.bedrock.response import FINISH, new_id, usage

DONE = b"[DONE]"


class Translator:
    def __init__(self, deployment: Deployment) -> None:
        envelope = {"id": new_id(), "object": "chat.completion.chunk", "created": int(time.time())}
        self._envelope = {**envelope, "model": deployment.upstream_model}
        self._head = orjson.dumps(self._envelope)[:-1] + b',"choices":[{"index":0,"delta":'
        self._tools: dict[int, int] = {}  # Bedrock block index -> OpenAI tool call index
        self._thinking: dict[int, dict[str, Any]] = {}
        self._stopped = False
        self._done = False

    def feed(self, event: bytes) -> list[bytes]:
        data = orjson.loads(event)
        name: str = next(iter(data)) if isinstance(data, dict) and data else ""
        body: dict[str, Any] = data[name] if name and isinstance(data[name], dict) else {}
        if name == "contentBlockDelta":
            return self._delta(body.get("contentBlockIndex", -1), body.get("delta") or {})
        if name == "messageStart":
            return [self._chunk({"role": "assistant", "content": ""})]
        if name == "contentBlockStart":
            use = (body.get("start") or {}).get("toolUse")
            if use is None:
                return []
            index = self._tools[body.get("contentBlockIndex", -1)] = len(self._tools)
            call = {"index": index, "id": use.get("toolUseId"), "type": "function"}
            return [self._chunk({"tool_calls": [{**call, "function": {"name": use.get("name"), "arguments": ""}}]})]
        if name == "contentBlockStop":
            block = self._thinking.pop(body.get("contentBlockIndex", -1), None)
            return [self._chunk({"thinking_blocks": [block]})] if block is not None else []
        if name == "messageStop":
            self._stopped = True
            return [self._chunk({}, FINISH.get(str(body.get("stopReason")), "stop"))]
        if name == "metadata":
            self._done = True
            return [orjson.dumps({**self._envelope, "choices": [], "usage": usage(body.get("usage"))}), DONE]
        failure = stream_exception(name, body)
        if failure is not None:
            raise failure
        return []

    def finish(self) -> list[bytes]:
        return [DONE] if self._stopped and not self._done else []

    def _delta(self, index: int, delta: dict[str, Any]) -> list[bytes]:
        if "text" in delta:
            return [self._chunk({"content": delta["text"]})]
        if "toolUse" in delta:
            part = (delta["toolUse"] or {}).get("input", "")
            if not part or index not in self._tools:
                return []
            return [self._chunk({"tool_calls": [{"index": self._tools[index], "function": {"arguments": part}}]})]
        reasoning = delta.get("reasoningContent")
        if isinstance(reasoning, dict):
            block = self._thinking.setdefault(index, {"type": "thinking", "thinking": "", "signature": ""})
            if "text" in reasoning:
                block["thinking"] += reasoning["text"]
                return [self._chunk({"reasoning_content": reasoning["text"]})]
            if "signature" in reasoning:
                block["signature"] += reasoning["signature"]
        return []

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> bytes:
        reason = b"null" if finish is None else b'"' + finish.encode() + b'"'
        return self._head + orjson.dumps(delta) + b',"logprobs":null,"finish_reason":' + reason + b"}]}"
