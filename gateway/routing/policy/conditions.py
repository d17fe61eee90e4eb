"""A rule's ``match``: conditions on request features, every one of which must hold.

Each YAML form maps to one small value with a ``test(features)``; a rule's match is a tuple of
them, so two rules match identically exactly when their condition sets are equal:

    tier: premium                     -> OneOf(tier, {premium})
    task: [simple, classify]          -> OneOf(task, {simple, classify})
    stream: true                      -> OneOf(stream, {True})
    tags: {any: [a, b]} / {all: [...]} -> Contains(tags, {a, b}, every=False / True)
    tags: urgent                      -> Contains(tags, {urgent}, every=True)
    total_tokens: {gt: 120000}        -> Range(total_tokens, gt=120000)
    budget_used: {gte: 0.8}           -> Share(budget_used, gte=0.8)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gateway.config.model import CAPABILITIES
from gateway.routing.features import Features

Path = tuple[str | int, ...]
Report = Callable[[Path, str], None]

# Policy feature name -> Features attribute.
SCALARS = {"tier": "tier", "key": "key_name", "end_user": "end_user", "task": "task", "endpoint": "endpoint"}
SETS = ("tags", "capabilities")
NUMBERS = ("prompt_tokens", "max_tokens", "total_tokens")
SHARES = ("budget_used",)  # fractions: 0.8 is 80 % (of a budget's cap); above 1 when spend passed it
FEATURES = (*SCALARS, "stream", *SETS, *NUMBERS, *SHARES)
ENDPOINTS = frozenset({"chat", "embeddings"})
OPERATORS = ("gt", "gte", "lt", "lte")


@dataclass(frozen=True, slots=True)
class OneOf:
    feature: str
    values: frozenset[str | bool]

    def test(self, f: Features) -> bool:
        return getattr(f, self.feature) in self.values


@dataclass(frozen=True, slots=True)
class Contains:
    feature: str
    values: frozenset[str]
    every: bool

    def test(self, f: Features) -> bool:
        have: frozenset[str] = getattr(f, self.feature)
        return self.values <= have if self.every else not self.values.isdisjoint(have)


@dataclass(frozen=True, slots=True)
class Range:
    feature: str
    gt: int | None = None
    gte: int | None = None
    lt: int | None = None
    lte: int | None = None

    def test(self, f: Features) -> bool:
        v: int | None = getattr(f, self.feature)
        if v is None:  # max_tokens not sent: no range holds
            return False
        return (
            (self.gt is None or v > self.gt)
            and (self.gte is None or v >= self.gte)
            and (self.lt is None or v < self.lt)
            and (self.lte is None or v <= self.lte)
        )

    def bounds(self) -> tuple[int, ...]:
        return tuple(b for b in (self.gt, self.gte, self.lt, self.lte) if b is not None)


@dataclass(frozen=True, slots=True)
class Share:
    """A fraction within bounds (``budget_used``); unlike ``Range`` its bounds are not token counts, so they
    never make routing count a prompt exactly."""

    feature: str
    gt: float | None = None
    gte: float | None = None
    lt: float | None = None
    lte: float | None = None

    def test(self, f: Features) -> bool:
        v: float = getattr(f, self.feature)
        return (
            (self.gt is None or v > self.gt)
            and (self.gte is None or v >= self.gte)
            and (self.lt is None or v < self.lt)
            and (self.lte is None or v <= self.lte)
        )


Condition = OneOf | Contains | Range | Share


def _strings(value: Any) -> list[str] | None:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return value
    return None


def _one_of(name: str, value: Any, path: Path, report: Report) -> Condition | None:
    if name == "stream":
        if not isinstance(value, bool):
            report(path, f"expected true or false, got {value!r}")
            return None
        return OneOf("stream", frozenset({value}))
    values = _strings(value)
    if values is None:
        report(path, f"expected a string or a non-empty list of strings, got {value!r}")
        return None
    if name == "endpoint" and not set(values) <= ENDPOINTS:
        report(path, f"unknown endpoint {sorted(set(values) - ENDPOINTS)} (expected chat or embeddings)")
    return OneOf(SCALARS[name], frozenset(values))


def _contains(name: str, value: Any, path: Path, report: Report) -> list[Condition]:
    if isinstance(value, str):
        value = {"all": [value]}
    if not isinstance(value, dict):
        report(path, f"expected {{any: [...]}} or {{all: [...]}} (or one {name[:-1]} as a string), got {value!r}")
        return []
    found: list[Condition] = []
    for op, items in value.items():
        if op not in ("any", "all"):
            report(path + (op,), "unknown operator (expected any or all)")
            continue
        values = _strings(items)
        if values is None:
            report(path + (op,), f"expected a non-empty list of strings, got {items!r}")
            continue
        unknown = set(values) - CAPABILITIES
        if name == "capabilities" and unknown:
            report(path + (op,), f"unknown capabilities {sorted(unknown)} (known: {', '.join(sorted(CAPABILITIES))})")
        found.append(Contains(name, frozenset(values), every=op == "all"))
    if not value:
        report(path, "expected {any: [...]} or {all: [...]}, got an empty mapping")
    return found


def _range(name: str, value: Any, path: Path, report: Report) -> Condition | None:
    if not isinstance(value, dict) or not value:
        report(path, f"expected a range such as {{gt: 1000}} (operators: {', '.join(OPERATORS)}), got {value!r}")
        return None
    bounds: dict[str, int] = {}
    for op, bound in value.items():
        if op not in OPERATORS:
            report(path + (op,), f"unknown operator (expected one of: {', '.join(OPERATORS)})")
        elif not isinstance(bound, int) or isinstance(bound, bool) or bound < 0:
            report(path + (op,), f"expected a token count (an integer >= 0), got {bound!r}")
        else:
            bounds[op] = bound
    if "gt" in bounds and "gte" in bounds or "lt" in bounds and "lte" in bounds:
        report(path, "give one lower bound (gt or gte) and one upper bound (lt or lte)")
        return None
    low = bounds["gt"] + 1 if "gt" in bounds else bounds.get("gte", 0)
    high = bounds["lt"] - 1 if "lt" in bounds else bounds.get("lte")
    if high is not None and low > high:
        report(path, f"the range {value} matches no request")
        return None
    return Range(name, **bounds) if bounds else None


def _share(name: str, value: Any, path: Path, report: Report) -> Condition | None:
    if not isinstance(value, dict) or not value:
        report(path, f"expected a range such as {{gte: 0.8}} (operators: {', '.join(OPERATORS)}), got {value!r}")
        return None
    bounds: dict[str, float] = {}
    for op, bound in value.items():
        if op not in OPERATORS:
            report(path + (op,), f"unknown operator (expected one of: {', '.join(OPERATORS)})")
        elif not isinstance(bound, int | float) or isinstance(bound, bool) or not bound >= 0:
            report(path + (op,), f"expected a share of the cap (a number >= 0, 0.8 for 80 %), got {bound!r}")
        else:
            bounds[op] = float(bound)
    if "gt" in bounds and "gte" in bounds or "lt" in bounds and "lte" in bounds:
        report(path, "give one lower bound (gt or gte) and one upper bound (lt or lte)")
        return None
    low, high = bounds.get("gt", bounds.get("gte", 0.0)), bounds.get("lt", bounds.get("lte"))
    if high is not None and (low > high or low == high and ("gt" in bounds or "lt" in bounds)):
        report(path, f"the range {value} matches no request")
        return None
    return Share(name, **bounds) if bounds else None


def parse_match(value: Any, path: Path, report: Report) -> tuple[Condition, ...]:
    """A rule's ``match`` mapping -> its conditions; problems go to ``report(path, message)``."""
    if value is None:
        return ()
    if not isinstance(value, dict):
        report(path, f"expected a mapping of feature: condition, got {value!r}")
        return ()
    found: list[Condition] = []
    for name, condition in value.items():
        at = path + (name,)
        if name in SCALARS or name == "stream":
            one = _one_of(name, condition, at, report)
            found += [one] if one is not None else []
        elif name in SETS:
            found += _contains(name, condition, at, report)
        elif name in NUMBERS:
            bounded = _range(name, condition, at, report)
            found += [bounded] if bounded is not None else []
        elif name in SHARES:
            share = _share(name, condition, at, report)
            found += [share] if share is not None else []
        else:
            report(at, f"unknown feature (expected one of: {', '.join(FEATURES)})")
    return tuple(found)
