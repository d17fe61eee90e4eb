"""Bedrock's errors, before a stream and inside one, read as the gateway reads every provider's (pure).

An error answer names its exception in the ``x-amzn-ErrorType`` header (``ThrottlingException:http://...``),
or in the body's ``__type``; the body's ``message`` says why. Its HTTP status is the exception's, so the
usual mapping applies: ``ThrottlingException`` and ``ModelNotReadyException`` (429) are rate limits that
cool the deployment and fall back, ``ServiceUnavailableException`` (503) and ``InternalServerException``
(500) are 5xx failures that fall back, ``ModelTimeoutException`` (408) falls back on ``408``;
``ValidationException`` (400) reaches the client (``Input is too long`` is a context-length failure),
``AccessDeniedException`` (403) is the gateway's credential (502). Inside a stream, the same exceptions
arrive as event-stream messages (``throttlingException``, ``serviceUnavailableException``,
``modelStreamErrorException``...): before the client saw a byte they fall back like the HTTP ones.

Bedrock reports no remaining capacity in its headers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from gateway.config.model import MAX_RETRY_AFTER_SECONDS
from gateway.errors import UpstreamStatus, redact
from gateway.providers.openai_compat import retry_after

# Every exception ConverseStream can send mid-stream, with its HTTP status (botocore's service model).
STREAM_EXCEPTIONS = {
    "internalServerException": 500,
    "modelStreamErrorException": 424,
    "validationException": 400,
    "throttlingException": 429,
    "serviceUnavailableException": 503,
}


_TOO_LONG = ("too long", "context window", "context length", "maximum context")  # Bedrock's wordings


def _failure(status: int, name: str | None, message: str, wait: float | None = None) -> UpstreamStatus:
    code = name
    if status == 400 and any(sign in message.lower() for sign in _TOO_LONG):
        code = "context_length_exceeded"
    return UpstreamStatus(status, message, code=code, retry_after=wait)


def from_error(
    status: int,
    body: bytes,
    headers: Mapping[str, str],
    secrets: Sequence[str] = (),
    max_retry_after: float = MAX_RETRY_AFTER_SECONDS,
) -> UpstreamStatus:
    try:
        parsed = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        parsed = None
    parsed = parsed if isinstance(parsed, dict) else {}
    name = headers.get("x-amzn-errortype", "").split(":")[0] or str(parsed.get("__type", "")).split("#")[-1] or None
    message = str(parsed.get("message") or parsed.get("Message") or f"Bedrock answered HTTP {status}")
    return _failure(
        status, name[:128] if name else None, redact(message, secrets), retry_after(headers, max_retry_after)
    )


def stream_exception(name: str, body: Any) -> UpstreamStatus | None:
    """The failure an event-stream exception (or the stream protocol's own error) reports; None: not one."""
    if name == "streamError":
        message = str((body or {}).get("message", ""))
        return UpstreamStatus(500, f"Bedrock's event stream failed: {message}"[:1000], code=str(body.get("code")))
    status = STREAM_EXCEPTIONS.get(name)
    if status is None:
        return None
    message = str((body or {}).get("message", "")) if isinstance(body, dict) else ""
    return _failure(status, name[0].upper() + name[1:], f"Bedrock failed mid-stream: {message}"[:1000])


def rate_limits(headers: Mapping[str, str]) -> dict[str, float]:
    return {}
