"""Reading a workload file (YAML) into a ``workload.Workload``, every problem reported with its path.

The format is described in ``workload``; ``extends: other.yaml`` makes a variant of another file.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from typing import Any

import yaml

from gateway.config.model import Limits
from gateway.sim import arrivals as arrival
from gateway.sim.distributions import Dist, DistributionError, constant, parse
from gateway.sim.workload import (
    OUTAGE_KINDS,
    Behaviour,
    Outage,
    RequestClass,
    Search,
    Workload,
    WorkloadError,
)

# Each class's defaults, read off an instance: in the compiled build (gateway/compiled.py) these are native
# classes, whose class attributes are their fields' descriptors, not the defaults.
_CLASS = RequestClass("", 0.0, "")
_BEHAVIOUR = Behaviour()
_OUTAGE = Outage("", 0.0, 0.0, "")
_SEARCH = Search()


class _Reader:
    """Reads one mapping, remembering its path for errors and refusing keys it was not asked about."""

    def __init__(self, value: Any, path: str, errors: list[str]) -> None:
        self.path, self.errors = path, errors
        self.value: dict[str, Any] = value if isinstance(value, dict) else {}
        if not isinstance(value, dict):
            self.fail("", "must be a mapping")
        self.read: set[str] = set()

    def fail(self, key: str, problem: str) -> None:
        where = f"{self.path}.{key}" if self.path and key else (self.path or key)
        self.errors.append(f"{where}: {problem}")

    def get(self, key: str, default: Any = None) -> Any:
        self.read.add(key)
        return self.value.get(key, default)

    def number(self, key: str, default: float, low: float = 0.0, high: float = math.inf) -> float:
        value = self.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
            self.fail(key, f"must be a number from {low:g} to {high:g}, got {value!r}")
            return default
        return float(value)

    def whole(self, key: str, default: int, low: int = 0) -> int:
        value = self.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            self.fail(key, f"must be an integer >= {low}, got {value!r}")
            return default
        return value

    def dist(self, key: str, default: Dist, scale: float = 1.0) -> Dist:
        if key not in self.value:
            self.read.add(key)
            return default
        try:
            return parse(self.get(key)).scaled(scale)
        except DistributionError as e:
            self.fail(key, str(e))
            return default

    def done(self) -> None:
        for key in sorted(set(self.value) - self.read, key=str):
            self.fail(str(key), "unknown key")


def _shares(value: Any, path: str, errors: list[str]) -> tuple[tuple[str, float], ...]:
    reader = _Reader(value, path, errors)
    shares = tuple((str(k), reader.number(str(k), 0.0, 0.0, 1.0)) for k in reader.value)
    if shares and abs(sum(s for _, s in shares) - 1.0) > 1e-6:
        errors.append(f"{path}: shares add up to {sum(s for _, s in shares):g}, not 1")
    return shares


def _rate(value: Any, duration: float, path: str, errors: list[str]) -> arrival.Shape:
    reader = _Reader(value, path, errors)
    if len(reader.value) != 1 and not (len(reader.value) == 2 and "daily" in reader.value):
        reader.fail("", "one of constant, ramp, points, daily")
        return arrival.constant(0.0)
    if "constant" in reader.value:
        return arrival.constant(reader.number("constant", 0.0))
    if "ramp" in reader.value:
        ramp = _Reader(reader.get("ramp"), f"{path}.ramp", errors)
        shape = arrival.ramp(ramp.number("from", 0.0), ramp.number("to", 0.0), duration)
        ramp.done()
        return shape
    if "points" in reader.value:
        points = reader.get("points")
        pairs = [p for p in points if _pair(p)] if isinstance(points, list) else []
        if not pairs or len(pairs) != len(points):
            reader.fail("points", "must be a list of [seconds, rate] pairs, rates >= 0")
            return arrival.constant(0.0)
        return arrival.through([(float(t), float(r)) for t, r in pairs])
    if "daily" in reader.value:
        hourly = reader.get("daily")
        start = reader.number("start_hour", 0.0, 0.0, 24.0)
        if not isinstance(hourly, list) or len(hourly) != 24 or not all(_rate_value(r) for r in hourly):
            reader.fail("daily", "must be 24 hourly rates >= 0 (00:00 to 23:00)")
            return arrival.constant(0.0)
        reader.done()
        return arrival.daily([float(r) for r in hourly], start)
    reader.done()
    return arrival.constant(0.0)


def _rate_value(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value < math.inf


def _pair(value: Any) -> bool:
    return isinstance(value, list) and len(value) == 2 and all(_rate_value(v) for v in value)


def _arrivals(value: Any, duration: float, errors: list[str]) -> arrival.Arrivals:
    reader = _Reader(value, "arrivals", errors)
    shape = _rate(reader.get("rate", {"constant": 1.0}), duration, "arrivals.rate", errors)
    process = reader.get("process", "poisson")
    if process not in ("poisson", "uniform"):
        reader.fail("process", f"poisson or uniform, got {process!r}")
    bursts = []
    for i, item in enumerate(reader.get("bursts") or []):
        burst = _Reader(item, f"arrivals.bursts[{i}]", errors)
        at = burst.number("at_s", 0.0)
        if "count" in burst.value:
            bursts.append(arrival.Burst(at, count=burst.whole("count", 0, 1)))
        else:
            bursts.append(arrival.Burst(at, burst.number("duration_s", 60.0, 1e-3), burst.number("rate", 0.0)))
        burst.done()
    reader.done()
    return arrival.Arrivals(shape, tuple(bursts), str(process))


def _class(name: str, value: Any, defaults: Mapping[str, Any], errors: list[str]) -> RequestClass:
    reader = _Reader({**defaults, **(value if isinstance(value, dict) else {})}, f"classes.{name}", errors)
    if not isinstance(value, dict):
        reader.fail("", "must be a mapping")
    model = reader.get("model")
    if not isinstance(model, str) or not model:
        reader.fail("model", "the route or model the class's requests ask for is required")
        model = ""
    task, tags, max_tokens = reader.get("task"), reader.get("tags") or [], reader.get("max_tokens")
    if task is not None and not isinstance(task, str):
        reader.fail("task", "must be a string")
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        reader.fail("tags", "must be a list of strings")
        tags = []
    if max_tokens is not None and (isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1):
        reader.fail("max_tokens", f"must be a positive integer, got {max_tokens!r}")
        max_tokens = None
    cls = RequestClass(
        name=name,
        share=reader.number("share", 0.0, 0.0, 1.0),
        model=model,
        task=task if isinstance(task, str) else None,
        tags=tuple(tags),
        calls=reader.whole("calls", 3, 1),
        prompt_tokens=reader.dist("prompt_tokens", _CLASS.prompt_tokens),
        output_tokens=reader.dist("output_tokens", _CLASS.output_tokens),
        max_tokens=max_tokens,
        stream=reader.number("stream", 0.0, 0.0, 1.0),
        think=reader.dist("think_ms", constant(0.0), 0.001),
    )
    reader.done()
    return cls


def _behaviour(target: str, value: Any, errors: list[str]) -> dict[str, Any]:
    """The fields a ``providers`` entry sets (merged later, most specific last)."""
    reader = _Reader(value, f"providers.{target}", errors)
    fields: dict[str, Any] = {}
    if "ttft_ms" in reader.value:
        fields["ttft"] = reader.dist("ttft_ms", _BEHAVIOUR.ttft, 0.001)
    if "tokens_per_second" in reader.value:
        fields["tokens_per_second"] = reader.dist("tokens_per_second", _BEHAVIOUR.tokens_per_second)
    if "error_rate" in reader.value:
        fields["error_rate"] = reader.number("error_rate", 0.0, 0.0, 1.0)
    if "error" in reader.value:
        error = str(reader.get("error"))
        if error not in OUTAGE_KINDS or error == "429":
            reader.fail("error", f"one of 500, 502, 503, 504, timeout, connection; got {error!r}")
        fields["error"] = error
    reader.get("limits")  # read by _limits
    reader.done()
    return fields


def _limits(target: str, value: Any, errors: list[str]) -> Limits | None:
    """A provider's own limits, when the workload says they differ from what the config declares."""
    if not isinstance(value, dict) or "limits" not in value:
        return None
    if target == "*":
        errors.append("providers.*.limits: limits belong to an account or a deployment")
        return None
    limits = _Reader(value["limits"], f"providers.{target}.limits", errors)
    rpm, tpm = limits.get("rpm"), limits.get("tpm")
    for name, given in (("rpm", rpm), ("tpm", tpm)):
        if given is not None and (isinstance(given, bool) or not isinstance(given, int) or given < 1):
            limits.fail(name, f"must be a positive integer, got {given!r}")
    limits.done()
    return Limits(rpm if isinstance(rpm, int) else None, tpm if isinstance(tpm, int) else None)


def _outage(i: int, value: Any, errors: list[str]) -> Outage:
    reader = _Reader(value, f"outages[{i}]", errors)
    target, kind = reader.get("target"), str(reader.get("kind", "503"))
    if not isinstance(target, str):
        reader.fail("target", "an account or deployment id is required")
    if kind not in OUTAGE_KINDS:
        reader.fail("kind", f"one of {', '.join(OUTAGE_KINDS)}; got {kind!r}")
    start, end = reader.number("from_s", 0.0), reader.number("to_s", math.inf)
    if end <= start:
        reader.fail("to_s", "must be after from_s")
    retry_after = reader.number("retry_after_s", _OUTAGE.retry_after)
    reader.done()
    return Outage(str(target), start, end, kind, retry_after)


def _search(value: Any, errors: list[str]) -> Search:
    reader = _Reader(value, "search", errors)
    search = Search(
        warmup=reader.number("warmup_s", _SEARCH.warmup),
        window=reader.number("window_s", _SEARCH.window, 1.0),
        min_workflows=reader.whole("min_workflows", _SEARCH.min_workflows, 1),
        precision=reader.number("precision", _SEARCH.precision, 0.001, 0.5),
        max_probes=reader.whole("max_probes", _SEARCH.max_probes, 2),
    )
    reader.done()
    return search


def build(doc: Any, source: str = "<workload>") -> Workload:
    """A workload from its parsed YAML; raises WorkloadError listing every problem."""
    errors: list[str] = []
    top = _Reader(doc, "", errors)
    duration = top.number("duration_s", 3600.0, 1.0)
    defaults = top.get("workflow") or {}
    if not isinstance(defaults, dict):
        top.fail("workflow", "must be a mapping of class defaults")
        defaults = {}
    classes_doc = top.get("classes")
    if not isinstance(classes_doc, dict) or not classes_doc:
        top.fail("classes", "at least one request class is required")
        classes_doc = {}
    classes = tuple(_class(str(n), v, defaults, errors) for n, v in classes_doc.items())
    if classes and abs(sum(c.share for c in classes) - 1.0) > 1e-6:
        errors.append(f"classes: shares add up to {sum(c.share for c in classes):g}, not 1")
    providers = top.get("providers") or {}
    if not isinstance(providers, dict):
        top.fail("providers", "must be a mapping of targets to behaviour")
        providers = {}
    key = top.get("key")
    if key is not None and not isinstance(key, str):
        top.fail("key", "must be a key name")
    workload = Workload(
        seed=top.whole("seed", 1),
        duration=duration,
        arrivals=_arrivals(top.get("arrivals") or {}, duration, errors),
        classes=classes,
        tiers=_shares(top.get("tiers") or {"standard": 1.0}, "tiers", errors),
        key=key if isinstance(key, str) else None,
        end_users=top.whole("end_users", 0),
        behaviours={str(t): _behaviour(str(t), v, errors) for t, v in providers.items()},
        limits={str(t): found for t, v in providers.items() if (found := _limits(str(t), v, errors)) is not None},
        outages=tuple(_outage(i, o, errors) for i, o in enumerate(top.get("outages") or [])),
        search=_search(top.get("search") or {}, errors),
        source=source,
    )
    top.done()
    if errors:
        raise WorkloadError([f"{source}: {e}" for e in errors])
    return workload


def _read(path: str, seen: tuple[str, ...] = ()) -> Any:
    """The file's mapping; with ``extends: other.yaml`` (relative to it), the other's with this one's top-level
    keys over it, so a variant (an outage, another rate) names only what it changes."""
    if path in seen or len(seen) > 8:
        raise WorkloadError([f"{path}: extends itself ({' -> '.join((*seen, path))})"])
    try:
        with open(path, encoding="utf-8") as f:
            doc = yaml.safe_load(f)
    except (OSError, yaml.YAMLError) as e:
        raise WorkloadError([f"{path}: {e}"]) from None
    if not isinstance(doc, dict) or "extends" not in doc:
        return doc
    base = doc.pop("extends")
    if not isinstance(base, str):
        raise WorkloadError([f"{path}: extends: a workload file name"])
    parent = _read(os.path.join(os.path.dirname(path), base), (*seen, path))
    return {**parent, **doc} if isinstance(parent, dict) else doc


def load(path: str) -> Workload:
    return build(_read(path), path)
