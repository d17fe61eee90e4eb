"""An OpenAI chat request -> a Bedrock ``Converse`` request (pure).

The conversation goes through the Anthropic adapter's translation (``anthropic.messages``: system prompt,
turns, images, tool calls and results, thinking blocks) and its blocks are then rewritten in Converse's
shape (``{"text"}``, ``{"image": {"format", "source": {"bytes"}}}``, ``{"toolUse"}``, ``{"toolResult"}``,
``{"reasoningContent"}``), so Claude, Llama and Mistral models on Bedrock read one conversation the same
way. System messages all join ``system``. Bedrock cannot fetch images: an ``http(s)`` image URL is refused.

Parameters: ``max_tokens``/``max_completion_tokens``, ``temperature`` (0 to 1), ``top_p`` and ``stop`` ->
``inferenceConfig``; ``tools`` and ``tool_choice`` -> ``toolConfig`` (``none`` leaves the tools out, which
Bedrock requires to stay when the conversation already holds tool calls: then it is refused);
``response_format`` ``json_schema`` -> ``outputConfig.textFormat``; ``reasoning_effort`` -> Claude's
``thinking`` in ``additionalModelRequestFields`` (and ``outputConfig.effort`` for adaptive thinking),
decided per model as for Anthropic; ``user`` / ``safety_identifier`` -> ``requestMetadata.user`` (Bedrock's
per-request metadata, kept in its invocation logs); ``n`` only 1. Sampling parameters follow the catalog
as for Anthropic (``anthropic.models``). Everything else is refused with a 400 naming it.
"""

from __future__ import annotations

from typing import Any

import orjson

from gateway.config.model import Deployment
from gateway.errors import InvalidRequest
from gateway.providers.anthropic import messages
from gateway.providers.anthropic import request as anthropic_request
from gateway.providers.anthropic.models import facts
from gateway.providers.anthropic.request import thinking
from gateway.providers.base import Provider, UnsupportedParameter, UnsupportedValue, asks_nothing
from gateway.types import Endpoint

KIND = "bedrock"
# The conversation goes through the Anthropic adapter's translation, so its parameters too, but for
# parallel_tool_calls (Converse has no switch for it: refused).
SUPPORTED = anthropic_request.SUPPORTED - {"parallel_tool_calls"}
_CHOICES: dict[str, dict[str, Any]] = {"auto": {"auto": {}}, "required": {"any": {}}}


def to_request(body: dict[str, Any], deployment: Deployment, provider: Provider, endpoint: Endpoint) -> dict[str, Any]:
    kind = provider.kind
    if endpoint != "chat":
        raise UnsupportedValue("model", kind, "the embeddings endpoint (Bedrock's Converse API is chat only)")
    for name, value in body.items():
        if name not in SUPPORTED and not asks_nothing(name, value):
            raise UnsupportedParameter(name, kind)
    model = facts(kind, deployment.upstream_model)
    raw = body.get("messages")
    system, turns = messages.translate(raw if isinstance(raw, list) else [], False, kind)
    out: dict[str, Any] = {"messages": [_turn(t, n, kind) for n, t in enumerate(turns)]}
    if system:
        out["system"] = [{"text": b["text"]} for b in system if b.get("text")]
    inference = _inference(body, model.sampling, kind)
    if inference:
        out["inferenceConfig"] = inference
    tools = _tools(body, turns, kind)
    if tools:
        out["toolConfig"] = tools
    if body.get("n") not in (None, 1):
        raise UnsupportedValue("n", kind, "more than one choice (n > 1)")
    user = body.get("safety_identifier") or body.get("user")
    if user is not None:
        out["requestMetadata"] = {"user": str(user)}
    _response_format(out, body.get("response_format"), deployment, kind)
    effort = body.get("reasoning_effort")
    if effort is not None:
        fields = thinking(effort, inference.get("maxTokens", deployment.max_output_tokens), model, kind)
        if "output_config" in fields:
            out.setdefault("outputConfig", {})["effort"] = fields.pop("output_config")["effort"]
        if fields:
            out["additionalModelRequestFields"] = fields
    return out


def _inference(body: dict[str, Any], sampling: bool, kind: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    limit = body.get("max_completion_tokens", body.get("max_tokens"))
    if limit is not None:
        out["maxTokens"] = limit
    for name, target in (("temperature", "temperature"), ("top_p", "topP")):
        value = body.get(name)
        if value is None or asks_nothing(name, value):
            continue
        if not sampling:
            raise UnsupportedParameter(name, kind)
        if name == "temperature" and isinstance(value, int | float) and value > 1:
            raise UnsupportedValue(name, kind, f"temperature {value} (Bedrock's range is 0 to 1)")
        out[target] = value
    stop = body.get("stop")
    stops = [stop] if isinstance(stop, str) else stop
    if stops:
        out["stopSequences"] = stops
    return out


def _tools(body: dict[str, Any], turns: list[dict[str, Any]], kind: str) -> dict[str, Any] | None:
    tools = body.get("tools") or []
    choice = body.get("tool_choice")
    if not tools:
        if choice not in (None, "none", "auto"):
            raise InvalidRequest("tool_choice needs tools", param="tool_choice")
        return None
    if choice == "none":
        if any(isinstance(t["content"], list) and any("tool" in b["type"] for b in t["content"]) for t in turns):
            raise UnsupportedValue("tool_choice", kind, "tool_choice 'none' with tool calls in the conversation")
        return None
    specs = []
    for n, tool in enumerate(tools):
        function = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(function, dict) or tool.get("type") != "function":
            raise UnsupportedValue(f"tools[{n}]", kind, "a tool that is not a function")
        spec: dict[str, Any] = {"name": function.get("name")}
        if function.get("description"):
            spec["description"] = function["description"]
        spec["inputSchema"] = {"json": function.get("parameters") or {"type": "object", "properties": {}}}
        if function.get("strict") is not None:
            spec["strict"] = function["strict"]
        specs.append({"toolSpec": spec})
    out: dict[str, Any] = {"tools": specs}
    if isinstance(choice, str) and choice in _CHOICES:
        out["toolChoice"] = _CHOICES[choice]
    elif isinstance(choice, dict) and isinstance(choice.get("function"), dict):
        out["toolChoice"] = {"tool": {"name": choice["function"].get("name")}}
    elif choice is not None:
        raise UnsupportedValue("tool_choice", kind, f"tool_choice {choice!r}")
    return out


def _response_format(out: dict[str, Any], value: Any, deployment: Deployment, kind: str) -> None:
    kind_of = value.get("type") if isinstance(value, dict) else None
    if value is None or kind_of == "text":
        return
    spec = value.get("json_schema") if kind_of == "json_schema" else None
    if not isinstance(spec, dict) or not isinstance(spec.get("schema"), dict):
        raise UnsupportedValue("response_format", kind, f"response_format {kind_of!r} (json_schema with a schema is)")
    if "json_schema" not in deployment.capabilities:
        raise UnsupportedValue("response_format", kind, "structured output on this deployment (no json_schema)")
    definition: dict[str, Any] = {"schema": orjson.dumps(spec["schema"]).decode()}
    if spec.get("name"):
        definition["name"] = spec["name"]
    structure = {"jsonSchema": definition}
    out.setdefault("outputConfig", {})["textFormat"] = {"type": "json_schema", "structure": structure}


def _turn(turn: dict[str, Any], n: int, kind: str) -> dict[str, Any]:
    content = turn["content"]
    blocks = [{"text": content}] if isinstance(content, str) else [_block(b, n, kind) for b in content]
    return {"role": turn["role"], "content": blocks}


def _block(block: dict[str, Any], n: int, kind: str) -> dict[str, Any]:
    kind_of = block["type"]
    if kind_of == "text":
        return {"text": block["text"]}
    if kind_of == "image":
        source = block["source"]
        if source.get("type") != "base64":
            raise UnsupportedValue(f"messages[{n}]", kind, "an image by URL (Bedrock takes image bytes)")
        return {"image": {"format": source["media_type"].split("/")[1], "source": {"bytes": source["data"]}}}
    if kind_of == "document":
        source = block["source"]["data"]
        return {"document": {"format": "pdf", "name": f"document-{n}", "source": {"bytes": source}}}
    if kind_of == "tool_use":
        return {"toolUse": {"toolUseId": block["id"], "name": block["name"], "input": block["input"]}}
    if kind_of == "tool_result":
        content = block.get("content")
        parts = [{"text": content}] if isinstance(content, str) else [{"text": p["text"]} for p in content or []]
        return {"toolResult": {"toolUseId": block["tool_use_id"], "content": parts, "status": "success"}}
    if kind_of == "thinking":
        text = {"text": block.get("thinking", ""), "signature": block.get("signature", "")}
        return {"reasoningContent": {"reasoningText": text}}
    if kind_of == "redacted_thinking":
        return {"reasoningContent": {"redactedContent": block.get("data", "")}}
    raise UnsupportedValue(f"messages[{n}]", kind, f"a {kind_of!r} block")
