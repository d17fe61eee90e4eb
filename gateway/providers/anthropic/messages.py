"""OpenAI chat messages -> Anthropic's ``system`` and ``messages`` (pure).

>>> system, turns = translate([
...     {"role": "system", "content": "Be brief."},
...     {"role": "user", "content": "Weather?"},
...     {"role": "assistant", "content": None, "tool_calls": [
...         {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": "{}"}}]},
...     {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
... ], mid_system=False, kind="anthropic")
>>> system
[{'type': 'text', 'text': 'Be brief.'}]
>>> [t["role"] for t in turns], turns[2]["content"][0]["type"]
(['user', 'assistant', 'user'], 'tool_result')

The rules, each a row of the conformance fixtures:

- ``system`` and ``developer`` messages before the conversation become the ``system`` prompt; later ones
  stay in place as ``{"role": "system"}`` turns where the model takes them (``models.ClaudeFacts``),
  else they join the ``system`` prompt.
- User content: text, images (a ``data:`` URL becomes a base64 source, an ``http(s)`` URL a url source;
  ``detail`` has no Anthropic equivalent and is ignored), PDF files given as ``file_data``. Audio, file
  ids and other media are refused, naming the part.
- Assistant turns: text (and refusal text), ``tool_calls`` as ``tool_use`` blocks with their ids, and
  ``thinking_blocks`` (as this adapter returns them) passed back first, as Anthropic requires when tools
  and thinking meet. ``reasoning_content`` cannot be passed back without its signature and is ignored.
- ``tool`` messages become ``tool_result`` blocks in the next user turn; consecutive turns of one role are
  merged, tool results first, as Anthropic expects. A message's ``name`` is ignored (Anthropic has none).
"""

from __future__ import annotations

from typing import Any

import orjson

from gateway.errors import InvalidRequest
from gateway.providers.base import UnsupportedValue

Block = dict[str, Any]
IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})


def translate(messages: list[Any], mid_system: bool, kind: str) -> tuple[list[Block] | None, list[Block]]:
    """(the system prompt's text blocks or None, the conversation's turns)."""
    system: list[Block] = []
    turns: list[Block] = []
    for n, message in enumerate(messages):
        at = f"messages[{n}]"
        role = message.get("role")
        if role in ("system", "developer"):
            blocks = _text_blocks(message.get("content"), at, kind)
            if turns and mid_system:
                turns.append({"role": "system", "content": blocks})
            else:
                system.extend(blocks)
        elif role == "user":
            _add(turns, "user", _user_content(message.get("content"), at, kind))
        elif role == "assistant":
            _add(turns, "assistant", _assistant_content(message, at, kind))
        elif role == "tool":
            _add(turns, "user", [_tool_result(message, at, kind)])
        elif role == "function":
            raise UnsupportedValue(f"{at}.role", kind, "the legacy 'function' role (use 'tool')")
        else:
            raise InvalidRequest(f"unknown message role {role!r}", param=f"{at}.role")
    return (system or None), turns


def _add(turns: list[Block], role: str, content: str | list[Block]) -> None:
    """Append a turn, merging it into the previous one of the same role (tool results stay first)."""
    if turns and turns[-1]["role"] == role:
        previous = turns[-1]
        previous["content"] = _blocks(previous["content"]) + _blocks(content)
        return
    turns.append({"role": role, "content": content})


def _blocks(content: str | list[Block]) -> list[Block]:
    return [{"type": "text", "text": content}] if isinstance(content, str) else content


def _text_blocks(content: Any, at: str, kind: str) -> list[Block]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if isinstance(content, list):
        out = []
        for n, part in enumerate(content):
            if not isinstance(part, dict) or part.get("type") != "text":
                raise UnsupportedValue(f"{at}.content[{n}]", kind, "a non-text part in this message")
            out.append({"type": "text", "text": part.get("text", "")})
        return out
    raise InvalidRequest("the message content must be a string or an array of parts", param=f"{at}.content")


def _user_content(content: Any, at: str, kind: str) -> str | list[Block]:
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise InvalidRequest("the message content must be a string or an array of parts", param=f"{at}.content")
    return [_user_part(part, f"{at}.content[{n}]", kind) for n, part in enumerate(content)]


def _user_part(part: Any, at: str, kind: str) -> Block:
    kind_of = part.get("type") if isinstance(part, dict) else None
    if kind_of == "text":
        return {"type": "text", "text": part.get("text", "")}
    if kind_of == "image_url":
        image = part.get("image_url")
        url = image.get("url") if isinstance(image, dict) else None
        if not isinstance(url, str):
            raise InvalidRequest("an image part needs image_url.url", param=at)
        return {"type": "image", "source": _image_source(url, at, kind)}
    if kind_of == "file":
        file = part.get("file") if isinstance(part, dict) else None
        data = file.get("file_data") if isinstance(file, dict) else None
        media, payload = _data_url(data, at) if isinstance(data, str) else (None, None)
        if media != "application/pdf" or payload is None:
            raise UnsupportedValue(at, kind, "a file other than a PDF given as file_data")
        return {"type": "document", "source": {"type": "base64", "media_type": media, "data": payload}}
    raise UnsupportedValue(at, kind, f"a content part of type {kind_of!r}")


def _image_source(url: str, at: str, kind: str) -> Block:
    if url.startswith(("http://", "https://")):
        return {"type": "url", "url": url}
    media, payload = _data_url(url, at)
    if media is None or payload is None:
        raise UnsupportedValue(at, kind, "an image URL that is neither http(s) nor a base64 data URL")
    if media not in IMAGE_TYPES:
        raise UnsupportedValue(at, kind, f"an image of type {media!r} (jpeg, png, gif and webp are)")
    return {"type": "base64", "media_type": media, "data": payload}


def _data_url(url: str, at: str) -> tuple[str | None, str | None]:
    """``data:image/png;base64,AAAA`` -> ("image/png", "AAAA"); (None, None) for anything else."""
    if not url.startswith("data:"):
        return None, None
    head, comma, payload = url[5:].partition(",")
    media, _, encoding = head.partition(";")
    if not comma or encoding != "base64":
        return None, None
    return media.lower(), payload


def _assistant_content(message: dict[str, Any], at: str, kind: str) -> list[Block]:
    for name in ("function_call", "audio"):
        if message.get(name) is not None:
            raise UnsupportedValue(f"{at}.{name}", kind, f"an assistant message's {name!r}")
    blocks: list[Block] = []
    thinking = message.get("thinking_blocks")
    if isinstance(thinking, list):
        blocks += [dict(b) for b in thinking if isinstance(b, dict) and b.get("type") in _THINKING]
    content = message.get("content")
    if isinstance(content, str):
        if content:  # Anthropic refuses empty text blocks
            blocks.append({"type": "text", "text": content})
    elif isinstance(content, list):
        for n, part in enumerate(content):
            text = part.get("text", part.get("refusal")) if isinstance(part, dict) else None
            if not isinstance(text, str):
                raise UnsupportedValue(f"{at}.content[{n}]", kind, "a non-text part in an assistant message")
            if text:
                blocks.append({"type": "text", "text": text})
    for n, call in enumerate(message.get("tool_calls") or ()):
        blocks.append(_tool_use(call, f"{at}.tool_calls[{n}]", kind))
    if not blocks:
        raise InvalidRequest("an assistant message needs content or tool_calls", param=f"{at}.content")
    return blocks


_THINKING = frozenset({"thinking", "redacted_thinking"})


def _tool_use(call: Any, at: str, kind: str) -> Block:
    function = call.get("function") if isinstance(call, dict) else None
    if not isinstance(function, dict) or call.get("type", "function") != "function":
        raise UnsupportedValue(at, kind, "a tool call that is not a function call")
    raw = function.get("arguments") or "{}"
    try:
        arguments = orjson.loads(raw)
    except (orjson.JSONDecodeError, TypeError):
        raise InvalidRequest(
            "a tool call's arguments must be a JSON object", param=f"{at}.function.arguments"
        ) from None
    if not isinstance(arguments, dict):
        raise InvalidRequest("a tool call's arguments must be a JSON object", param=f"{at}.function.arguments")
    return {"type": "tool_use", "id": call.get("id"), "name": function.get("name"), "input": arguments}


def _tool_result(message: dict[str, Any], at: str, kind: str) -> Block:
    content = message.get("content")
    result: Block = {"type": "tool_result", "tool_use_id": message.get("tool_call_id")}
    if isinstance(content, str):
        result["content"] = content
    elif isinstance(content, list):
        result["content"] = _text_blocks(content, at, kind)
    else:
        raise InvalidRequest("a tool message's content must be a string or text parts", param=f"{at}.content")
    return result
