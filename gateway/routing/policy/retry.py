"""When a request moves to the next deployment (``retry_on``) and how it retries (``retries``)."""

from __future__ import annotations

from dataclasses import fields, replace
from typing import Any

from gateway.failures import CLASSES, parse_trigger
from gateway.routing.policy.conditions import Path, Report
from gateway.routing.policy.model import Retries


def parse_retry_on(value: Any, path: Path, report: Report) -> frozenset[str]:
    """
    >>> sorted(parse_retry_on([429, "5xx", "timeout"], (), print))
    ['429', '5xx', 'timeout']
    """
    if not isinstance(value, list):
        report(path, f"expected a list of statuses and failure classes, got {value!r}")
        return frozenset()
    found: set[str] = set()
    for i, item in enumerate(value):
        trigger = parse_trigger(item)
        if trigger is None:
            never = isinstance(item, int) and 400 <= item <= 499
            why = " (this status fails the same way on every deployment)" if never else ""
            report(
                path + (i,),
                f"cannot fall back on {item!r}{why}; expected 408, 409, 429, a 5xx status, "
                f"or one of: {', '.join(sorted(CLASSES))}",
            )
        else:
            found.add(trigger)
    return frozenset(found)


_INTS = {"same_deployment", "backoff_ms", "backoff_max_ms"}


def parse_retries(value: Any, base: Retries, path: Path, report: Report) -> Retries:
    """A partial ``retries`` mapping over ``base`` (the defaults, for a rule)."""
    if value is None:
        return base
    if not isinstance(value, dict):
        report(path, f"expected a mapping, got {value!r}")
        return base
    known = [f.name for f in fields(Retries)]
    changes: dict[str, Any] = {}
    for key, v in value.items():
        number = isinstance(v, int | float) and not isinstance(v, bool)
        if key not in known:
            report(path + (key,), f"unknown key (expected one of: {', '.join(known)})")
        elif key in _INTS and not (isinstance(v, int) and not isinstance(v, bool) and v >= 0):
            report(path + (key,), f"expected an integer >= 0, got {v!r}")
        elif key not in _INTS and not (number and v > 0):
            report(path + (key,), f"expected seconds > 0, got {v!r}")
        else:
            changes[key] = v if key in _INTS else float(v)
    result = replace(base, **changes)
    if result.backoff_max_ms < result.backoff_ms:
        report(path, f"backoff_max_ms ({result.backoff_max_ms}) is below backoff_ms ({result.backoff_ms})")
    if result.deadline_s < result.attempt_timeout_s:
        report(path, f"deadline_s ({result.deadline_s:g}) is below attempt_timeout_s ({result.attempt_timeout_s:g})")
    return result
