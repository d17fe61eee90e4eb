"""What a failure means for the request: fall back, retry the same deployment, count against its circuit.

One home for these rules: the policy parser checks ``retry_on`` against ``parse_trigger``, the request
path asks ``may_fall_back``, ``retry_here`` and ``counts_against_circuit``.

A failure answers to one or more trigger names: ``5xx`` and its own status for a provider's 5xx,
``408``/``409``/``429`` for those statuses, ``timeout``, ``connection`` (refused, reset, cut, a broken
answer, no free connection in the pool) and ``context_length``. Any other 4xx fails the same way on
every deployment and answers to none.
"""

from __future__ import annotations

from typing import Any

from gateway.errors import (
    GatewayError,
    UpstreamConnection,
    UpstreamError,
    UpstreamPoolExhausted,
    UpstreamStatus,
    UpstreamTimeout,
)

CLASSES = frozenset({"5xx", "timeout", "connection", "context_length"})
RETRYABLE_4XX = frozenset({408, 409, 429})
_TRANSIENT = frozenset({"5xx", "timeout", "connection"})
COOLING_STATUSES = frozenset({429, 529})


def parse_trigger(item: Any) -> str | None:
    """A ``retry_on`` entry as written in a policy -> its trigger name; None when it can never trigger.

    >>> parse_trigger(503), parse_trigger("429"), parse_trigger("timeout"), parse_trigger(404)
    ('503', '429', 'timeout', None)
    """
    if isinstance(item, str) and item.isdigit():
        item = int(item)
    if isinstance(item, int) and not isinstance(item, bool):
        return str(item) if item in RETRYABLE_4XX or 500 <= item <= 599 else None
    return item if isinstance(item, str) and item in CLASSES else None


def triggers(error: GatewayError) -> frozenset[str]:
    """The trigger names a failure answers to (pure); empty: it would fail the same way anywhere.

    >>> sorted(triggers(UpstreamStatus(503, "busy"))), sorted(triggers(UpstreamStatus(400, "bad")))
    (['503', '5xx'], [])
    """
    if isinstance(error, UpstreamStatus):
        if error.code == "context_length_exceeded":
            return frozenset({"context_length"})
        status = error.upstream_status
        if status >= 500:
            return frozenset({"5xx", str(status)})
        return frozenset({str(status)}) if status in RETRYABLE_4XX else frozenset()
    if isinstance(error, UpstreamTimeout):
        return frozenset({"timeout"})
    if isinstance(error, UpstreamConnection | UpstreamPoolExhausted):
        return frozenset({"connection"})
    return frozenset()


def may_fall_back(error: GatewayError, retry_on: frozenset[str]) -> bool:
    """The plan moves on to its next deployment: the failure is one of the rule's triggers."""
    return not triggers(error).isdisjoint(retry_on)


def counts_against_circuit(error: GatewayError) -> bool:
    """Provider trouble: not capacity (a 429 cools the deployment down instead), not the request's fault
    (4xx), not the gateway's own full connection pool."""
    return not isinstance(error, UpstreamPoolExhausted) and not triggers(error).isdisjoint(_TRANSIENT)


def cools_down(error: GatewayError) -> bool:
    """The provider says it has no room for now (a 429, or Anthropic's 529 "overloaded"): the deployment cools
    down for every replica for the provider's Retry-After, and its buckets are drained.

    >>> cools_down(UpstreamStatus(529, "overloaded")), cools_down(UpstreamStatus(503, "busy"))
    (True, False)
    """
    return isinstance(error, UpstreamStatus) and error.upstream_status in COOLING_STATUSES


def retry_here(error: BaseException) -> bool:
    """Worth another try on the same deployment: transient provider trouble. A 429, a too-long prompt or a
    full pool (another account has its own) moves on instead."""
    return isinstance(error, GatewayError) and counts_against_circuit(error)


def outcome(error: GatewayError) -> str:
    """A bounded label for metrics: the provider's status, or the failure's code."""
    if isinstance(error, UpstreamStatus):
        return str(error.upstream_status)
    return error.code or type(error).__name__


_CLASSES = ("context_length", "5xx", "429", "timeout", "connection")


def failure_class(error: BaseException) -> str:
    """A failed attempt's class for metrics and traces (pure, bounded): the trigger it answers to
    (``gateway.failures``: 5xx, 429, timeout, connection, context_length), or 4xx for any other status
    the provider answered.

    >>> failure_class(UpstreamStatus(503, "busy")), failure_class(UpstreamStatus(404, "no such model"))
    ('5xx', '4xx')
    >>> failure_class(UpstreamStatus(400, "too long", code="context_length_exceeded"))
    'context_length'
    """
    if isinstance(error, TimeoutError):  # the attempt's own time limit, before it became UpstreamTimeout
        error = UpstreamTimeout("the attempt ran past its time limit")
    if not isinstance(error, UpstreamError):
        return "connection"
    found = triggers(error)
    named = next((name for name in _CLASSES if name in found), None)
    if named is not None:
        return named
    return "4xx" if isinstance(error, UpstreamStatus) else "connection"
