"""Every failure the gateway reports, and its one rendering in OpenAI's error shape.

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
    └── UpstreamError            a provider failed; .retryable says whether another deployment may try
        ├── UpstreamStatus       the provider answered an error status (429 → 429, 5xx → 502, 4xx kept)
        ├── UpstreamTimeout      504 connect, first-byte, idle or total timeout
        └── UpstreamConnection   502 refused, reset, or cut before a complete answer

Messages never contain provider credentials: upstream text passes through ``redact`` first.
"""

from __future__ import annotations

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
    retryable = True


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
            self.retryable = True
        elif upstream_status >= 500:
            self.status = 502
            self.retryable = True
        elif upstream_status in (401, 403):
            # The gateway's own credential was refused: the caller's request is fine, ours is not.
            self.status = 502
            self.retryable = True
            self.message = "the upstream provider rejected the gateway's credentials for this deployment"
        else:
            self.status, self.type = upstream_status, "invalid_request_error"
            self.retryable = code == "context_length_exceeded"

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


def retry_after_headers(seconds: float) -> dict[str, str]:
    """``Retry-After`` in whole seconds (rounded up, as HTTP requires) and ``retry-after-ms``."""
    whole = max(1, int(-(-seconds // 1)))
    return {"retry-after": str(whole), "retry-after-ms": str(max(0, round(seconds * 1000)))}


def to_openai_error(error: GatewayError) -> bytes:
    body = {"error": {"message": error.message, "type": error.type, "param": error.param, "code": error.code}}
    return orjson.dumps(body)


_KEY_LIKE = re.compile(r"(sk|gsk|AIza|xai|key)[-_A-Za-z0-9]{12,}")


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """Remove known secrets and anything shaped like a provider key from upstream text.

    >>> redact("Incorrect API key provided: sk-proj-abcdefghijklmnop", [])
    'Incorrect API key provided: [redacted]'
    """
    for secret in secrets:
        if secret:
            text = text.replace(secret, "[redacted]")
    return _KEY_LIKE.sub("[redacted]", text)
