"""The OpenAI wire format as a parameter map, and the pure translators every compatible provider shares.

A compatible provider is ``PROVIDER`` built from ``chat_params(exclude=..., restrict=...)``, the way
Groq or Gemini differ from OpenAI only by what they refuse.
"""

from __future__ import annotations

import email.utils
import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Final

import orjson

from gateway.config.model import MAX_RETRY_AFTER_SECONDS, Account, Deployment, Secret
from gateway.errors import UpstreamError, UpstreamProtocol, UpstreamStatus, bounded_seconds, redact
from gateway.providers.base import Param, Provider, UnsupportedParameter, asks_nothing
from gateway.types import Endpoint

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
OPENAI_ONLY: tuple[str, ...] = (
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

    For a deployment ``fast`` whose upstream model is ``gpt-4o-mini``, a stream request
    ``{"model": "fast", "messages": [], "stream": True}`` becomes
    ``{"model": "gpt-4o-mini", "messages": [], "stream": True, "stream_options": {"include_usage": True}}``.

    Usage is always requested on streams so tokens can be accounted; the relay drops the extra
    usage chunk when the client did not ask for it. A parameter the provider cannot express is refused
    (``UnsupportedParameter``), unless its value asks for nothing (``base.asks_nothing``: null, or the
    parameter's own default), which is left out.
    """
    params = provider.params(endpoint)
    out: dict[str, Any] = {}
    for name, value in body.items():
        rule = params.get(name)
        if rule is None:
            if name in provider.unsupported or not provider.passthrough_unknown:
                if asks_nothing(name, value):  # e.g. store=false to a provider that stores nothing
                    continue
                raise UnsupportedParameter(name, provider.kind)
            out[name] = value
            continue
        if rule.allowed is not None and not rule.allowed(value):
            if asks_nothing(name, value):  # n=null or n=1 where only one choice is possible
                continue
            raise UnsupportedParameter(name, provider.kind)
        out[rule.target or name] = value
    out["model"] = deployment.upstream_model
    if endpoint == "chat" and body.get("stream") and provider.stream_usage:
        options = body.get("stream_options")
        out["stream_options"] = {**(options if isinstance(options, dict) else {}), "include_usage": True}
    return out


def retry_after(headers: Mapping[str, str], cap: float) -> float | None:
    """Pure: the seconds a provider asks for, from ``retry-after-ms`` (finer; OpenAI and Azure send it) or
    ``retry-after`` (seconds, or an HTTP date read against the answer's own ``Date``, so the two clocks
    need not agree); None when neither says anything usable. Whatever they say comes out finite, at least
    0 and at most ``cap`` (``limits.max_retry_after_seconds``): a deployment is never cooled for longer.

    >>> retry_after({"retry-after": "inf"}, 300.0), retry_after({"retry-after-ms": "1e15"}, 300.0)
    (300.0, 300.0)
    >>> retry_after({"retry-after": "-5"}, 300.0), retry_after({"retry-after": "nan"}, 300.0)
    (0.0, None)
    """
    for name, scale in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        raw = headers.get(name)
        if not raw:
            continue
        seconds = _number(raw)
        if seconds is None and name == "retry-after":
            seconds = _date_delay(raw, headers.get("date"))
        if seconds is not None and not math.isnan(seconds):
            return bounded_seconds(seconds / scale, cap)
    return None


def _number(raw: str) -> float | None:
    try:
        return float(raw)
    except ValueError:
        return None


def _date_delay(raw: str, date: str | None) -> float | None:
    """Seconds from the answer's ``Date`` to the HTTP date ``raw``; None without a ``Date`` to read it against."""
    if date is None:
        return None
    try:
        until, now = email.utils.parsedate_to_datetime(raw), email.utils.parsedate_to_datetime(date)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return (_utc(until) - _utc(now)).total_seconds()


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def from_error(
    status: int,
    body: bytes,
    headers: Mapping[str, str],
    secrets: Sequence[str] = (),
    max_retry_after: float = MAX_RETRY_AFTER_SECONDS,
) -> UpstreamStatus:
    """Pure: an OpenAI-style error answer -> UpstreamStatus. Everything taken from it is redacted of every
    configured secret and anything key-shaped (providers echo the credential they refused); the code and
    param are kept to 128 characters, as they end up in logs."""
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
        raw_code, raw_param = error.get("code"), error.get("param")
        code = redact(raw_code[:128], secrets) if isinstance(raw_code, str) else None
        param = redact(raw_param[:128], secrets) if isinstance(raw_param, str) else None
    if code is None and "context length" in message.lower():
        code = "context_length_exceeded"
    return UpstreamStatus(
        status, redact(message, secrets), code=code, param=param, retry_after=retry_after(headers, max_retry_after)
    )


def stream_error(payload: bytes) -> UpstreamError | None:
    """Pure: the failure a stream event reports when it is an error object rather than a chunk.

    >>> stream_error(b'{"error": {"message": "overloaded", "type": "server_error"}}').message
    'the upstream stream opened with an error: overloaded'
    """
    if b'"error"' not in payload:
        return None
    try:
        parsed = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return None
    error = parsed.get("error") if isinstance(parsed, dict) and not parsed.get("choices") else None
    if not error:
        return None
    message = error.get("message") if isinstance(error, dict) else error
    return UpstreamProtocol(f"the upstream stream opened with an error: {str(message)[:1000]}")


# (kind, header): the names spelled out once, as every answer is read for them
_REMAINING: Final = (("requests", "x-ratelimit-remaining-requests"), ("tokens", "x-ratelimit-remaining-tokens"))


def rate_limits(headers: Mapping[str, str]) -> dict[str, float]:
    """The provider's own remaining capacity: OpenAI's ``x-ratelimit-remaining-{requests,tokens}`` (Azure,
    Groq and most compatible servers send the same). Read defensively: NaN and infinity are ignored and
    a negative count is 0.

    >>> rate_limits({"x-ratelimit-remaining-requests": "12", "x-ratelimit-remaining-tokens": "nan"})
    {'requests': 12.0}
    """
    found: dict[str, float] = {}
    for kind, name in _REMAINING:
        raw = headers.get(name)
        if raw is None:
            continue
        try:
            value = float(raw)
        except ValueError:
            continue
        if math.isfinite(value):
            found[kind] = value if value > 0.0 else 0.0
    return found
