"""Every failure the gateway reports, its one rendering in OpenAI's error shape, and secret redaction.

Exception tree::

    GatewayError                 status, type, code; rendered by to_openai_error()
    ├── InvalidRequest           400 invalid_request_error (malformed JSON, missing field, bad value)
    │   └── ForbiddenField       400 a field or header that would steer the upstream URL or credential
    ├── AuthenticationFailed     401 missing or unknown virtual key
    ├── PermissionDenied         403 the key may not use this model or route
    ├── ModelNotFound            404 no deployment serves this model
    ├── PayloadTooLarge          413 body over server.max_body_bytes
    ├── RateLimited              429 carries retry_after seconds
    ├── ServiceUnavailable       503 draining, or nothing can serve right now
    └── UpstreamError            a provider failed (gateway.failures says what that means for the request)
        ├── UpstreamStatus       the provider answered an error status (429 → 429, 5xx → 502, 4xx kept)
        ├── UpstreamTimeout      504 connect, first-byte, idle or total timeout
        ├── UpstreamConnection   502 refused, reset, or cut before a complete answer
        │   └── UpstreamProtocol 502 broke HTTP or the wire format: a bad status line, a header line over
        │                        server.max_response_header_bytes, a 2xx that is not JSON (or not SSE for a
        │                        stream), a body, event or stream over its bound; falls back and counts
        │                        against the circuit like any connection failure
        └── UpstreamPoolExhausted 503 no free connection to the account within timeouts.pool: the gateway's own
                                 queue, nothing was sent; it falls back on the ``connection`` trigger but is
                                 neither retried on the same deployment nor counted against its circuit

Messages never contain provider credentials: upstream text passes through ``redact`` with every configured
secret (``Settings.secrets()``) first.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable

import orjson


class GatewayError(Exception):
    status = 500
    type = "api_error"
    code: str | None = None

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code

    def headers(self) -> dict[str, str]:
        return {}


class InvalidRequest(GatewayError):
    status = 400
    type = "invalid_request_error"


class ForbiddenField(InvalidRequest):
    code = "forbidden_field"


class AuthenticationFailed(GatewayError):
    status = 401
    type = "authentication_error"
    code = "invalid_api_key"


class PermissionDenied(GatewayError):
    status = 403
    type = "permission_error"
    code = "model_not_allowed"


class ModelNotFound(GatewayError):
    status = 404
    type = "invalid_request_error"
    code = "model_not_found"


class PayloadTooLarge(GatewayError):
    status = 413
    type = "invalid_request_error"
    code = "request_too_large"


class RateLimited(GatewayError):
    status = 429
    type = "rate_limit_error"
    code = "rate_limit_exceeded"

    def __init__(self, message: str, *, retry_after: float, code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.retry_after = max(0.0, retry_after)

    def headers(self) -> dict[str, str]:
        return retry_after_headers(self.retry_after)


class ServiceUnavailable(GatewayError):
    status = 503
    type = "service_unavailable"
    code = "service_unavailable"

    def __init__(self, message: str, *, retry_after: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after

    def headers(self) -> dict[str, str]:
        return retry_after_headers(self.retry_after)


class UpstreamError(GatewayError):
    status = 502
    type = "upstream_error"


class UpstreamStatus(UpstreamError):
    """The provider answered with an error status; what the client sees depends on it."""

    def __init__(
        self,
        upstream_status: int,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, param=param, code=code)
        self.upstream_status = upstream_status
        self.retry_after = retry_after
        if upstream_status == 429:
            self.status, self.type = 429, "rate_limit_error"
        elif upstream_status >= 500:
            self.status = 502
        elif upstream_status in (401, 403):
            # The gateway's own credential was refused: the caller's request is fine, ours is not.
            self.status = 502
            self.message = "the upstream provider rejected the gateway's credentials for this deployment"
        else:
            self.status, self.type = upstream_status, "invalid_request_error"

    def headers(self) -> dict[str, str]:
        if self.status == 429:
            return retry_after_headers(self.retry_after if self.retry_after is not None else 1.0)
        return {}


class UpstreamTimeout(UpstreamError):
    status = 504
    type = "timeout_error"
    code = "upstream_timeout"


class UpstreamConnection(UpstreamError):
    code = "upstream_connection_error"


class UpstreamProtocol(UpstreamConnection):
    code = "upstream_protocol_error"


class UpstreamPoolExhausted(UpstreamError):
    status = 503
    type = "service_unavailable"
    code = "upstream_pool_exhausted"

    def headers(self) -> dict[str, str]:
        return retry_after_headers(1.0)


# No Retry-After leaves the gateway above this, whatever its source forgot: the configured cap
# (limits.max_retry_after_seconds) applies where each value is made.
RETRY_AFTER_CEILING = 86_400.0


def bounded_seconds(seconds: float, cap: float) -> float:
    """A duration from anywhere (a provider's header, a refill computation) made usable: NaN and negatives
    are 0, anything above ``cap`` (infinity included) is ``cap``.

    >>> bounded_seconds(float("inf"), 300.0), bounded_seconds(-5.0, 300.0), bounded_seconds(2.5, 300.0)
    (300.0, 0.0, 2.5)
    """
    if not seconds > 0:  # NaN compares false
        return 0.0
    return min(seconds, cap)


def retry_after_headers(seconds: float) -> dict[str, str]:
    """``Retry-After`` in whole seconds (rounded up, as HTTP requires) and ``retry-after-ms``."""
    seconds = bounded_seconds(seconds, RETRY_AFTER_CEILING)
    return {"retry-after": str(max(1, math.ceil(seconds))), "retry-after-ms": str(round(seconds * 1000))}


def to_openai_error(error: GatewayError) -> bytes:
    body = {"error": {"message": error.message, "type": error.type, "param": error.param, "code": error.code}}
    return orjson.dumps(body)


REDACTED = "[redacted]"
# The second net, for keys the gateway was never given: OpenAI and Anthropic (sk-), Groq (gsk_), Google
# (AIza), xAI (xai-) and generic key- / key_ shapes, not inside a word. Each contains one of the literal
# prefixes below, whose absence (str's fast substring search) skips the slower regex on most text.
_KEY_LIKE = re.compile(r"(?<![A-Za-z0-9])(?:g?sk[-_]|AIza|xai-|key[-_])[-_A-Za-z0-9]{12,}")
_KEY_PREFIXES = ("sk-", "sk_", "AIza", "xai-", "key-", "key_")


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` without any of ``secrets`` (by value: every configured credential, see ``Settings.secrets``)
    and without anything shaped like a provider key.

    >>> redact("Incorrect API key provided: 3f9c2a7d1b8e4f6a9c0d2e1f3a5b7c9d", ["3f9c2a7d1b8e4f6a9c0d2e1f3a5b7c9d"])
    'Incorrect API key provided: [redacted]'
    >>> redact("Incorrect API key provided: sk-proj-abcdefghijklmnop")
    'Incorrect API key provided: [redacted]'

    It runs on every access-log line: about 2 µs for a clean 400-character line and 6 secrets.
    """
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    for prefix in _KEY_PREFIXES:
        if prefix in text:
            return _KEY_LIKE.sub(REDACTED, text)
    return text


def redact_bytes(data: bytes, secrets: Iterable[str] = ()) -> bytes:
    """``redact`` for a payload relayed as bytes (a stream's error event); invalid UTF-8 is replaced."""
    return redact(data.decode("utf-8", "replace"), secrets).encode()
