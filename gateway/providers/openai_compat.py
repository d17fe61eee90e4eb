"""The OpenAI wire format as a parameter map, and the pure translators every compatible provider shares.

A compatible provider is ``PROVIDER`` built from ``chat_params(exclude=..., restrict=...)``, the way
Groq or Gemini differ from OpenAI only by what they refuse.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import orjson

from gateway.config.model import Account, Deployment, Secret
from gateway.errors import UpstreamStatus, redact
from gateway.providers.base import Endpoint, Param, Provider, UnsupportedParameter

# Every parameter of CreateChatCompletionRequest in the OpenAI API specification.
CHAT_PARAMS: tuple[str, ...] = (
    "audio",
    "frequency_penalty",
    "function_call",
    "functions",
    "logit_bias",
    "logprobs",
    "max_completion_tokens",
    "max_tokens",
    "messages",
    "metadata",
    "modalities",
    "model",
    "moderation",
    "n",
    "parallel_tool_calls",
    "prediction",
    "presence_penalty",
    "prompt_cache_key",
    "prompt_cache_options",
    "prompt_cache_retention",
    "reasoning_effort",
    "response_format",
    "safety_identifier",
    "seed",
    "service_tier",
    "stop",
    "store",
    "stream",
    "stream_options",
    "temperature",
    "tool_choice",
    "tools",
    "top_logprobs",
    "top_p",
    "user",
    "verbosity",
    "web_search_options",
)
EMBEDDING_PARAMS: tuple[str, ...] = ("dimensions", "encoding_format", "input", "model", "user")

# OpenAI platform features that other providers' OpenAI-compatible endpoints do not take: stored
# completions, predicted outputs, audio, built-in tools, prompt caching keys and the legacy
# function-calling fields (each adapter adds its own on top).
OPENAI_ONLY = (
    "audio",
    "modalities",
    "prediction",
    "web_search_options",
    "store",
    "metadata",
    "prompt_cache_key",
    "prompt_cache_options",
    "prompt_cache_retention",
    "safety_identifier",
    "verbosity",
    "moderation",
    "functions",
    "function_call",
)


def chat_params(exclude: Iterable[str] = (), restrict: Mapping[str, Param] | None = None) -> dict[str, Param]:
    """OpenAI's chat parameters minus ``exclude``, with ``restrict`` replacing individual rules."""
    excluded = set(exclude)
    params = {name: Param() for name in CHAT_PARAMS if name not in excluded}
    params.update(restrict or {})
    return params


def embedding_params(exclude: Iterable[str] = ()) -> dict[str, Param]:
    return {name: Param() for name in EMBEDDING_PARAMS if name not in set(exclude)}


def bearer(secret: Secret | None) -> dict[str, str]:
    return {"authorization": f"Bearer {secret.reveal()}"} if secret is not None else {}


def path_url(account: Account, deployment: Deployment, endpoint: Endpoint) -> str:
    return f"{account.base_url}/{'chat/completions' if endpoint == 'chat' else 'embeddings'}"


def to_request(body: dict[str, Any], deployment: Deployment, provider: Provider, endpoint: Endpoint) -> dict[str, Any]:
    """Pure: the client's OpenAI body -> the body this provider receives.

    >>> to_request({"model": "fast", "messages": [], "stream": True}, dep, OPENAI, "chat")
    {'model': 'gpt-4o-mini', 'messages': [], 'stream': True, 'stream_options': {'include_usage': True}}

    Usage is always requested on streams so tokens can be accounted; the relay drops the extra
    usage chunk when the client did not ask for it.
    """
    params = provider.params(endpoint)
    out: dict[str, Any] = {}
    for name, value in body.items():
        rule = params.get(name)
        if rule is None:
            if name in provider.unsupported or not provider.passthrough_unknown:
                raise UnsupportedParameter(name, provider.kind)
            out[name] = value
            continue
        if rule.allowed is not None and not rule.allowed(value):
            raise UnsupportedParameter(name, provider.kind)
        out[rule.target or name] = value
    out["model"] = deployment.upstream_model
    if endpoint == "chat" and body.get("stream") and provider.stream_usage:
        options = body.get("stream_options")
        out["stream_options"] = {**(options if isinstance(options, dict) else {}), "include_usage": True}
    return out


def retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds from ``retry-after-ms`` (preferred, finer) or ``retry-after``; HTTP dates are ignored."""
    for name, scale in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        raw = headers.get(name)
        if raw:
            try:
                return max(0.0, float(raw) / scale)
            except ValueError:
                continue
    return None


def from_error(status: int, body: bytes, headers: Mapping[str, str]) -> UpstreamStatus:
    """Pure: an OpenAI-style error answer -> UpstreamStatus (message redacted of anything key-like)."""
    message, code, param = f"upstream answered HTTP {status}", None, None
    try:
        parsed = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        parsed = None
    if isinstance(parsed, list) and parsed:  # Gemini's compatible endpoint wraps errors in a list
        parsed = parsed[0]
    error = parsed.get("error") if isinstance(parsed, dict) else None
    if isinstance(error, dict):
        message = str(error.get("message") or message)
        raw_code = error.get("code")
        code = str(raw_code) if isinstance(raw_code, str) else None
        param = error.get("param") if isinstance(error.get("param"), str) else None
    if code is None and "context length" in message.lower():
        code = "context_length_exceeded"
    return UpstreamStatus(status, redact(message), code=code, param=param, retry_after=retry_after(headers))
