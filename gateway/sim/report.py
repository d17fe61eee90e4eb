"""A run's figures as JSON-ready data (pure): capacity, errors, latency, deployments and limits, fallbacks, cost.

The top level carries the figures an admin compares first: ``workflows_per_second`` (completed over the
simulated window), ``max_workflows_per_second`` (the capacity search's answer, when it ran),
``client_error_rate``, ``upstream_429`` and ``cost_per_workflow_usd`` (the mean cost of a completed workflow).
A limit's utilisation is what admissions charged against it per time bin (tokens corrected to actual usage
when requests settle) over what the limit allows in that bin.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from gateway import compiled
from gateway.sim.run import Result, Setup
from gateway.sim.tally import Tally

DAY = 86_400.0


@dataclass(frozen=True)
class Probe:
    """One run of the capacity search: a constant arrival rate and what clients saw."""

    rate: float
    requests: int
    client_error_rate: float  # per request
    workflow_failure_rate: float  # what decides ``held``
    held: bool
    capacity: float  # workflows a second the answered requests would make (an estimate when overloaded)


def percentiles(values: Iterable[array[float]], scale: float = 1000.0) -> dict[str, float | None]:
    """p50, p90, p99 and max of every value (seconds), in ``scale`` units (ms).

    >>> percentiles([array("d", [0.001 * i for i in range(1, 101)])])
    {'p50': 50.0, 'p90': 90.0, 'p99': 99.0, 'max': 100.0}
    """
    merged = sorted(v for part in values for v in part)
    if not merged:
        return {"p50": None, "p90": None, "p99": None, "max": None}
    n = len(merged)

    def at(q: float) -> float:
        return round(merged[min(n - 1, max(0, math.ceil(q * n) - 1))] * scale, 1)

    return {"p50": at(0.5), "p90": at(0.9), "p99": at(0.99), "max": round(merged[-1] * scale, 1)}


def _ratio(a: float, b: float) -> float:
    return a / b if b else 0.0


def _usd(value: float) -> float:
    return float(f"{value:.6g}")


def _rate(value: float) -> float:
    """Four significant digits: 49.69, 0.007625."""
    return float(f"{value:.4g}")


def _limits(tally: Tally, counted: tuple[int, int]) -> dict[str, Any]:
    first, last = counted
    out: dict[str, Any] = {}
    for name, bucket in sorted(tally.buckets.items()):
        if name.startswith("user:"):  # one per end user: summed up in ``user_quotas``
            continue
        allowance = bucket.capacity * tally.bin / 60.0
        series = [round(max(0.0, c) / allowance, 4) for c in bucket.per_bin(last)]
        window = series[first:last] or [0.0]
        out[name] = {
            # A whole number as one (JSON's 500, not 500.0), however the tally holds it.
            "limit_per_minute": int(bucket.capacity) if float(bucket.capacity).is_integer() else bucket.capacity,
            "kind": bucket.kind,
            "mean_utilisation": round(sum(window) / len(window), 4),
            "peak_utilisation": max(window),
            "series": series,
        }
    return out


def _user_quotas(tally: Tally, counted: tuple[int, int]) -> dict[str, Any] | None:
    """End users' quotas, together: how many were charged, and the busiest one's use."""
    first, last = counted
    peaks = []
    for name, bucket in tally.buckets.items():
        if name.startswith("user:"):
            allowance = bucket.capacity * tally.bin / 60.0
            charged = bucket.charged
            top = max(charged, default=-1) + 1  # up to the last bin charged
            peaks.append(max((charged.get(i, 0.0) / allowance for i in range(first, min(last, top))), default=0.0))
    if not peaks:
        return None
    return {"end_users": len(peaks), "peak_utilisation": round(max(peaks), 4)}


def build(
    setup: Setup,
    result: Result,
    *,
    policy_label: str,
    search: tuple[float, Sequence[Probe]] | None = None,
) -> dict[str, Any]:
    tally, counted = result.tally, result.counted
    classes = tally.classes
    requests = sum(c.requests for c in classes.values())
    answered = sum(c.ok for c in classes.values())
    errors = requests - answered
    arrived = sum(c.workflows for c in classes.values())
    completed = sum(c.completed for c in classes.values())
    cost = sum(c.cost for c in classes.values())
    workflow_cost = sum(c.workflow_cost for c in classes.values())
    per_day = DAY / counted if counted else 0.0
    first_bin = int(result.tally.counted_from / tally.bin)
    last_bin = max(first_bin + 1, math.ceil((result.duration) / tally.bin))
    deployments = {}
    for name, d in sorted(tally.deployments.items(), key=lambda item: -item[1].served):
        full_bins = [b for b in d.full_bins if first_bin <= b < last_bin]
        deployments[name] = {
            "share": round(_ratio(d.served, answered), 4),
            "requests": d.served,
            "attempts": dict(sorted(d.attempts.items())),
            "upstream_429": d.attempts.get("429", 0),
            "prompt_tokens": d.prompt,
            "completion_tokens": d.completion,
            "cost_usd": _usd(d.cost),
            "cost_per_day_usd": _usd(d.cost * per_day),
            "cost_share": round(_ratio(d.cost, cost), 4),
            "saturated_at_s": None if d.first_full is None else round(d.first_full, 1),
            "saturated_s": round(len(full_bins) * tally.bin, 1),
            "cooldowns": d.cooldowns,
            "answered_per_bin": d.per_bin(last_bin),
        }
    by_class = {}
    for name, c in classes.items():
        by_class[name] = {
            "requests": c.requests,
            "share_of_requests": round(_ratio(c.requests, requests), 4),
            "client_errors": c.requests - c.ok,
            "workflows": c.workflows,
            "workflows_completed": c.completed,
            "cost_per_request_usd": _usd(_ratio(c.cost, c.ok)),
            "cost_per_workflow_usd": _usd(_ratio(c.workflow_cost, c.completed)),
            "cost_per_day_usd": _usd(c.cost * per_day),
            "latency_ms": percentiles([c.latency]),
        }
    waits = [c.wait for c in classes.values()]
    waited = sum(1 for part in waits for w in part if w > 0)
    report: dict[str, Any] = {
        "config": setup.settings.source,
        "policy": policy_label,
        "policy_version": setup.policy.version,
        "workload": setup.workload.source,
        "seed": setup.workload.seed,
        "simulated_seconds": round(counted, 1),
        "wall_seconds": round(result.wall, 2),
        "cpu_seconds": round(result.cpu, 2),
        "code": compiled.status,
        "requests_simulated": result.requests,
        "workflows_per_second": _rate(completed / counted) if counted else 0.0,
        "max_workflows_per_second": None if search is None else _rate(search[0]),
        "offered_workflows_per_second": _rate(arrived / counted) if counted else 0.0,
        "requests_per_second": _rate(answered / counted) if counted else 0.0,
        "client_error_rate": round(_ratio(errors, requests), 5),
        "workflow_failure_rate": round(_ratio(arrived - completed, arrived), 5),
        "upstream_429": tally.upstream_429,
        "cost_per_request_usd": _usd(_ratio(cost, answered)),
        "cost_per_workflow_usd": _usd(_ratio(workflow_cost, completed)),
        "cost_per_day_usd": _usd(cost * per_day),
        "requests": requests,
        "client_errors": dict(tally.errors.most_common()),
        "latency_ms": percentiles(c.latency for c in classes.values()),
        "ttft_ms": percentiles(c.ttft for c in classes.values()),
        "wait_ms": {**percentiles(waits), "share_waited": round(_ratio(waited, sum(len(w) for w in waits)), 4)},
        "fallbacks": dict(tally.fallbacks.most_common()),
        "circuit": [{"at_s": round(t, 1), "deployment": d, "state": s} for t, d, s in tally.circuits],
        "deployments": deployments,
        "limits": _limits(tally, (first_bin, last_bin)),
        "user_quotas": _user_quotas(tally, (first_bin, last_bin)),
        "classes": by_class,
        "bin_seconds": tally.bin,
    }
    if search is not None:
        report["search"] = {
            "warmup_s": setup.workload.search.warmup,
            "window_s": setup.workload.search.window,
            "probes": [
                {
                    "rate": _rate(p.rate),
                    "requests": p.requests,
                    "client_error_rate": round(p.client_error_rate, 5),
                    "held": p.held,
                }
                for p in search[1]
            ],
        }
    return report


def client_error_rate(tally: Tally) -> tuple[int, float]:
    """(requests, share that failed) over the counted window."""
    requests = sum(c.requests for c in tally.classes.values())
    failed = requests - sum(c.ok for c in tally.classes.values())
    return requests, _ratio(failed, requests)
