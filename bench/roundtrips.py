"""Redis round trips per request from the traffic counted around the limits=redis runs.

A run's Redis traffic is that of every request the gateway answered in it (its own count, which
includes the requests still in flight when wrk stopped), plus the gateway's background calls
(heartbeats, handshakes of new connections, periodic syncs). The background rate is measured in the
windows between runs, when the gateway gets no requests, and taken out before dividing.
"""

from __future__ import annotations

from dataclasses import dataclass

from bench.redis_server import RedisRun, Traffic


@dataclass(frozen=True)
class Background:
    windows: int
    seconds: float
    replies_per_s: float
    commands_per_s: dict[str, float]


def background(idle: list[Traffic]) -> Background:
    seconds = sum(t.seconds for t in idle)
    totals: dict[str, int] = {}
    for t in idle:
        for name, n in t.commands.items():
            totals[name] = totals.get(name, 0) + n
    if seconds <= 0:
        return Background(len(idle), 0.0, 0.0, {})
    rates = {name: n / seconds for name, n in sorted(totals.items())}
    return Background(len(idle), seconds, sum(t.replies for t in idle) / seconds, rates)


def answered(runs: list[RedisRun]) -> tuple[int, str]:
    """The requests behind these runs' Redis traffic: the gateway's own count, else wrk's."""
    if runs and all(r.served is not None for r in runs):
        return sum(r.served or 0 for r in runs), "answered by the gateway"
    return sum(r.requests for r in runs), "completed by wrk"


def per_request(runs: list[RedisRun], idle: list[Traffic]) -> float | None:
    """Round trips per request answered, the background taken out."""
    requests, _ = answered(runs)
    if not requests:
        return None
    replies = sum(r.traffic.replies for r in runs)
    return (replies - background(idle).replies_per_s * sum(r.traffic.seconds for r in runs)) / requests


def _wrap(cells: list[str], width: int = 100) -> list[str]:
    lines: list[str] = []
    for cell in cells:
        if lines and len(lines[-1]) + 2 + len(cell) <= width:
            lines[-1] += ", " + cell
        else:
            lines.append(cell)
    return lines


def _kind_lines(label: str, runs: list[RedisRun], idle: list[Traffic]) -> list[str]:
    completed = sum(r.requests for r in runs)
    requests, what = answered(runs)
    if not requests or not completed:
        return [f"  {label}: no runs"]
    seconds = sum(r.traffic.seconds for r in runs)
    replies = sum(r.traffic.replies for r in runs)
    background_trips = background(idle).replies_per_s * seconds
    totals: dict[str, int] = {}
    for r in runs:
        for name, n in r.traffic.commands.items():
            totals[name] = totals.get(name, 0) + n
    calls = sum(totals.values())
    opened = sum(r.traffic.connections for r in runs)
    errors, fallbacks = sum(r.traffic.errors for r in runs), sum(r.degraded for r in runs)
    cells = [f"{name} {n:,} ({n / requests:.4f})" for name, n in totals.items()]
    return [
        f"  {label}: {len(runs)} runs, {seconds:.0f} s, {completed:,} requests completed by wrk, {requests:,} {what};"
        f" new connections {opened:,}, error replies {errors:,}, fallbacks to local buckets {fallbacks}",
        f"    round trips {replies:,}: {replies / requests:.4f} per request {what.split()[0]}"
        f" ({replies / completed:.4f} per request completed by wrk); without the background"
        f" (~{background_trips:.0f}): {(replies - background_trips) / requests:.4f}",
        f"    commandstats calls {calls:,} ({calls / requests:.4f}/request {what.split()[0]}):",
        *(f"      {line}" for line in _wrap(cells)),
    ]


def breakdown(kinds: dict[str, str], runs: list[RedisRun], idle: list[Traffic]) -> list[str]:
    """The per-command breakdown printed under the Redis table."""
    bg = background(idle)
    rates = [f"{name} {rate:.2f}/s" for name, rate in bg.commands_per_s.items()]
    out = [
        "Redis traffic from the gateway (INFO stats + commandstats before and after each limits=redis run, the",
        "bench's own INFO taken out). Round trips = replies Redis wrote (total_writes_processed). commandstats",
        "also counts the commands Lua scripts run (redis.call), so of its entries only evalsha/eval and",
        "commands a client sends itself (hello, ...) are round trips. Per request in parentheses.",
        f"  background, between runs ({bg.windows} windows, {bg.seconds:.0f} s, no requests): "
        f"{bg.replies_per_s:.2f} round trips/s; commandstats:",
        *(f"      {line}" for line in _wrap(rates or ["none"])),
    ]
    for kind, label in kinds.items():
        out += _kind_lines(label, [r for r in runs if r.kind == kind], idle)
    return out
