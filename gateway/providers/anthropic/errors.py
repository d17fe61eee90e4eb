"""Anthropic's errors and rate-limit headers, read as the gateway reads every provider's (pure).

An error body is ``{"type": "error", "error": {"type": "overloaded_error", "message": "..."}}``, at the
HTTP status Anthropic documents for its type (and as an ``error`` event mid-stream, with no status). It
becomes an ``UpstreamStatus`` of that status, so the usual mapping applies: 400/404/413 reach the client
as themselves, 401/403 are the gateway's credential (502), 429 is 429 with Retry-After, 500 and 529
(overloaded) are 5xx failures; 429 and 529 fall back under the default triggers (``429``, ``5xx``), and a
policy can name ``529`` alone. ``prompt is too long`` is a context-length failure.

The wait comes from ``retry-after``; a 429 without one waits until the soonest reset among the limits
Anthropic reports exhausted (``anthropic-ratelimit-*-remaining: 0`` and ``...-reset``, an RFC 3339 time read
against the answer's ``Date``). Remaining capacity: ``anthropic-ratelimit-requests-remaining``, and for
tokens the lowest of the tokens, input-tokens and output-tokens remaining (the gateway's token buckets
count both kinds together, so the scarcer one is what is left).
"""

from __future__ import annotations

import email.utils
import math
from collections.abc import Mapping, Sequence
from datetime import datetime

import orjson

from gateway.config.model import MAX_RETRY_AFTER_SECONDS
from gateway.errors import UpstreamStatus, bounded_seconds, redact
from gateway.providers.openai_compat import retry_after

STATUS = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}
_LIMITS = ("requests", "tokens", "input-tokens", "output-tokens")


def error(kind: str | None, message: str, status: int | None = None, retry: float | None = None) -> UpstreamStatus:
    """The failure an Anthropic error of type ``kind`` reports (``status`` when the HTTP answer had one)."""
    code = kind
    if kind == "invalid_request_error" and "prompt is too long" in message.lower():
        code = "context_length_exceeded"
    return UpstreamStatus(status or STATUS.get(kind or "", 500), message, code=code, retry_after=retry)


def from_error(
    status: int,
    body: bytes,
    headers: Mapping[str, str],
    secrets: Sequence[str] = (),
    max_retry_after: float = MAX_RETRY_AFTER_SECONDS,
) -> UpstreamStatus:
    kind, message = None, f"Anthropic answered HTTP {status}"
    try:
        parsed = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        parsed = None
    found = parsed.get("error") if isinstance(parsed, dict) else None
    if isinstance(found, dict):
        kind = str(found.get("type"))[:128] if found.get("type") else None
        message = str(found.get("message") or message)
    wait = retry_after(headers, max_retry_after)
    if wait is None and status == 429:
        wait = _reset_wait(headers, max_retry_after)
    return error(kind, redact(message, secrets), status, wait)


def _reset_wait(headers: Mapping[str, str], cap: float) -> float | None:
    """Seconds from the answer's ``Date`` to the soonest reset of an exhausted limit; None if none is known."""
    now = _moment(headers.get("date"), http=True)
    if now is None:
        return None
    waits = []
    for limit in _LIMITS:
        if headers.get(f"anthropic-ratelimit-{limit}-remaining") == "0":
            reset = _moment(headers.get(f"anthropic-ratelimit-{limit}-reset"), http=False)
            if reset is not None:
                waits.append((reset - now).total_seconds())
    return bounded_seconds(min(waits), cap) if waits else None


def _moment(raw: str | None, http: bool) -> datetime | None:
    if not raw:
        return None
    try:
        moment = email.utils.parsedate_to_datetime(raw) if http else datetime.fromisoformat(raw)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return moment if moment.tzinfo is not None else None


def rate_limits(headers: Mapping[str, str]) -> dict[str, float]:
    """The remaining capacity Anthropic reports, as the admission step reads it.

    >>> rate_limits({"anthropic-ratelimit-requests-remaining": "40",
    ...              "anthropic-ratelimit-input-tokens-remaining": "9000",
    ...              "anthropic-ratelimit-output-tokens-remaining": "700"})
    {'requests': 40.0, 'tokens': 700.0}
    """
    found: dict[str, float] = {}
    requests = _number(headers.get("anthropic-ratelimit-requests-remaining"))
    if requests is not None:
        found["requests"] = requests
    tokens = [_number(headers.get(f"anthropic-ratelimit-{kind}-remaining")) for kind in _LIMITS[1:]]
    known = [t for t in tokens if t is not None]
    if known:
        found["tokens"] = min(known)
    return found


def _number(raw: str | None) -> float | None:
    if raw is None:
        return None
    try:
        value = float(raw)
    except ValueError:
        return None
    return max(0.0, value) if math.isfinite(value) else None
