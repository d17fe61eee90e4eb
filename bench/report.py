"""Turning the measured runs into the pass/fail table and bench/results.json."""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.redis_server import RedisRun, Traffic
from bench.wrk import WrkResult

KINDS = {"json": "JSON", "stream": "stream"}
MIN_RPS = {"json": 1000.0, "stream": 600.0}
MAX_ADDED_P50_MS = 1.0
MAX_ADDED_P99_MS = 3.0
MAX_RSS_MB = 80.0
MAX_STARTUP_S = 1.5
PASSTHROUGH = "passthrough"  # the bare Starlette + aiohttp pass-through's target name (bench/passthrough.py)


def run_key(target: str, kind: str, connections: int) -> str:
    return f"{target}/{kind}/c{connections}"


def say(text: str) -> None:
    """Progress on stderr (the table goes to stdout)."""
    print(text, file=sys.stderr, flush=True)


@dataclass
class Measurements:
    """Everything one benchmark invocation measured; medians are taken in `rows`."""

    limits: str = "off"  # --limits: "off", "redis" or "both"
    runs: dict[str, list[WrkResult]] = field(default_factory=dict)
    cpu_ms_per_request: dict[str, dict[str, list[float]]] = field(default_factory=dict)  # target, kind
    startups_s: list[float] = field(default_factory=list)
    rss_mb: dict[str, float] = field(default_factory=dict)  # per gateway target
    redis_runs: list[RedisRun] = field(default_factory=list)
    redis_idle: list[Traffic] = field(default_factory=list)  # between the redis runs: background
    logs: dict[str, Path] = field(default_factory=dict)  # each gateway target's log file
    gateway_error: str | None = None
    gateway_log_tail: str | None = None  # kept when a gateway run had errors

    def add(self, target: str, kind: str, connections: int, result: WrkResult) -> None:
        self.runs.setdefault(run_key(target, kind, connections), []).append(result)

    def median(self, target: str, kind: str, connections: int, of: Callable[[WrkResult], float]) -> float | None:
        results = self.runs.get(run_key(target, kind, connections), [])
        return statistics.median(of(r) for r in results) if results else None

    def cpu_ms(self, target: str, kind: str) -> float | None:
        values = self.cpu_ms_per_request.get(target, {}).get(kind)
        return statistics.median(values) if values else None

    def clean(self, target: str, kind: str, connections: int) -> bool:
        """Whether every run behind a median had no non-2xx responses and no socket errors."""
        return all(r.ok for r in self.runs.get(run_key(target, kind, connections), []))

    def errors(self, target: str, kind: str) -> tuple[int, int] | None:
        results = [r for c in (1, 32) for r in self.runs.get(run_key(target, kind, c), [])]
        if not results:
            return None
        return sum(r.non_2xx for r in results), sum(r.socket_errors for r in results)


@dataclass(frozen=True)
class Row:
    metric: str
    direct: str
    gateway: str
    added: str
    verdict: str  # "pass", "FAIL", "n/a" or "" (informational)


def _ms(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{value:.3f}" if value < 1 else f"{value:.2f}"


def _verdict(ok: bool | None) -> str:
    return "" if ok is None else ("pass" if ok else "FAIL")


def _flag(m: Measurements, kind: str, conns: int, row: Row) -> Row:
    """Mark the values of a row whose runs had errors with "!"; such a row cannot pass."""
    direct_ok, gateway_ok = m.clean("direct", kind, conns), m.clean("gateway", kind, conns)
    if direct_ok and gateway_ok:
        return row
    return Row(
        row.metric,
        row.direct + ("" if direct_ok else " !"),
        row.gateway + ("" if gateway_ok else " !"),
        row.added,
        "FAIL" if row.verdict else "",
    )


def _latency_row(m: Measurements, kind: str, conns: int, pct: str, limit: float | None) -> Row:
    def of(r: WrkResult) -> float:
        return (r.p50_us if pct == "p50" else r.p99_us) / 1000

    direct, gateway = m.median("direct", kind, conns, of), m.median("gateway", kind, conns, of)
    added = gateway - direct if gateway is not None and direct is not None else None
    target = f" (≤ {limit:g} ms)" if limit is not None else ""
    added_text = f"{added:+.3f}{target}" if added is not None else f"n/a{target}"
    ok = None if limit is None else (added <= limit if added is not None else None)
    verdict = "n/a" if limit is not None and added is None else _verdict(ok)
    metric = f"{KINDS[kind]} {pct} latency c={conns} (ms)"
    return _flag(m, kind, conns, Row(metric, _ms(direct), _ms(gateway), added_text, verdict))


def _rps_row(m: Measurements, kind: str) -> Row:
    def rps(r: WrkResult) -> float:
        return r.rps

    direct, gateway = m.median("direct", kind, 32, rps), m.median("gateway", kind, 32, rps)
    floor = MIN_RPS[kind]
    row = Row(
        f"{KINDS[kind]} throughput c=32 (req/s)",
        f"{direct:,.0f}" if direct is not None else "n/a",
        f"{gateway:,.0f}" if gateway is not None else "n/a",
        f"(≥ {floor:,.0f})",
        "n/a" if gateway is None else _verdict(gateway >= floor),
    )
    return _flag(m, kind, 32, row)


def _error_row(m: Measurements, kind: str) -> Row:
    direct, gateway = m.errors("direct", kind), m.errors("gateway", kind)
    cells = [f"{e[0]}/{e[1]}" if e is not None else "n/a" for e in (direct, gateway)]
    clean = all(e is None or e == (0, 0) for e in (direct, gateway))
    return Row(f"{KINDS[kind]} errors non-2xx/socket", cells[0], cells[1], "(0/0)", _verdict(clean))


def rows(m: Measurements) -> list[Row]:
    table: list[Row] = []
    for kind in KINDS:
        table.append(_latency_row(m, kind, 1, "p50", MAX_ADDED_P50_MS))
        table.append(_latency_row(m, kind, 1, "p99", MAX_ADDED_P99_MS))
        table.append(_rps_row(m, kind))
        table.append(_latency_row(m, kind, 32, "p50", None))
        table.append(_latency_row(m, kind, 32, "p99", None))
        cpu = m.cpu_ms("gateway", kind)
        cpu_text = f"{cpu:.3f}" if cpu is not None else "n/a"
        table.append(Row(f"{KINDS[kind]} gateway CPU/request c=32 (ms)", "", cpu_text, "", ""))
        table.append(_error_row(m, kind))
    rss = m.rss_mb.get("gateway")
    table.append(
        Row(
            "gateway RSS after load (MB)",
            "",
            f"{rss:.1f}" if rss is not None else "n/a",
            f"(≤ {MAX_RSS_MB:g} MB)",
            "n/a" if rss is None else _verdict(rss <= MAX_RSS_MB),
        )
    )
    start = statistics.median(m.startups_s) if m.startups_s else None
    table.append(
        Row(
            f"gateway start-up, median of {len(m.startups_s)} (s)",
            "",
            f"{start:.2f}" if start is not None else "n/a",
            f"(≤ {MAX_STARTUP_S:g} s)",
            "n/a" if start is None else _verdict(start <= MAX_STARTUP_S),
        )
    )
    return table


def machine(upstream: str, wrk: str) -> dict[str, Any]:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "upstream": upstream,
        "load_generator": wrk,
    }


@dataclass(frozen=True)
class Section:
    """A further table under the main one (the Redis limiter's), with its own header and notes."""

    title: str
    tag: str  # added to a failed row's name in the FAILED line
    header: Row
    rows: list[Row]
    notes: list[str] = field(default_factory=list)


def table_lines(header: Row, table: list[Row]) -> list[str]:
    widths = [max(len(getattr(r, f)) for r in [header, *table]) for f in ("metric", "direct", "gateway")]
    widths.append(max(len(r.added) for r in [header, *table]))

    def line(r: Row) -> str:
        cells = [r.metric.ljust(widths[0]), r.direct.rjust(widths[1]), r.gateway.rjust(widths[2])]
        return "  ".join([*cells, r.added.ljust(widths[3]), r.verdict]).rstrip()

    return [line(header), *(line(r) for r in table)]


def render(table: list[Row], info: dict[str, Any], settings: dict[str, Any], sections: list[Section]) -> str:
    header = Row("metric", "direct", "gateway", "added / target", "result")
    out = [
        f"machine: {info['cpu']}, {info['cores']} cores, Python {info['python']}, kernel {info['kernel']}",
        f"upstream: {info['upstream']}; load: {info['load_generator']}; "
        f"{settings['rounds']} interleaved round(s) of {settings['duration_s']:g} s per run, medians shown",
        f"gateway column: {GATEWAY_COLUMN[settings['limits']]}",
        "",
        *table_lines(header, table),
    ]
    for section in sections:
        out += ["", section.title, *table_lines(section.header, section.rows), *section.notes]
    every = [*table, *(r for section in sections for r in section.rows)]
    failed = [r.metric for r in table if r.verdict == "FAIL"]
    failed += [f"{r.metric} ({s.tag})" for s in sections for r in s.rows if r.verdict == "FAIL"]
    flagged = any(r.direct.endswith("!") or r.gateway.endswith("!") for r in every)
    measured = any(r.verdict in ("pass", "FAIL") and r.gateway != "n/a" for r in every)
    out.append("")
    if flagged:
        out.append("! = a run behind this value had non-2xx responses or socket errors")
    if failed:
        out.append(f"FAILED: {', '.join(failed)}")
    else:
        out.append("all targets met" if measured else "no target checked: the gateway was not measured")
    return "\n".join(out)


def _cell(value: float | None, form: str) -> str:
    return "n/a" if value is None else format(value, form)


def passthrough_section(m: Measurements) -> Section:
    """The gateway (limits off) against the bare pass-through, measured in the same rounds: how much of the
    floor's speed the gateway keeps, and what its own work adds to a request."""

    def p50(r: WrkResult) -> float:
        return r.p50_us / 1000

    def rps(r: WrkResult) -> float:
        return r.rps

    table: list[Row] = []
    for kind, name in KINDS.items():
        floor, gateway = m.median(PASSTHROUGH, kind, 1, p50), m.median("gateway", kind, 1, p50)
        added = None if floor is None or gateway is None else gateway - floor
        table.append(Row(f"{name} p50 latency c=1 (ms)", _ms(floor), _ms(gateway), _cell(added, "+.3f"), ""))
        floor, gateway = m.median(PASSTHROUGH, kind, 32, rps), m.median("gateway", kind, 32, rps)
        share = None if floor is None or gateway is None else f"{gateway / floor:.1%} of it"
        table.append(
            Row(f"{name} throughput c=32 (req/s)", _cell(floor, ",.0f"), _cell(gateway, ",.0f"), share or "n/a", "")
        )
        floor, gateway = m.cpu_ms(PASSTHROUGH, kind), m.cpu_ms("gateway", kind)
        times = "n/a" if floor is None or gateway is None else f"{gateway / floor:.2f}x (+{gateway - floor:.3f})"
        table.append(Row(f"{name} CPU/request c=32 (ms)", _cell(floor, ".3f"), _cell(gateway, ".3f"), times, ""))
    return Section(
        "Against the floor: a bare Starlette + aiohttp pass-through (bench/passthrough.py), same core, same rounds",
        "pass-through",
        Row("metric", "pass-through", "gateway", "gateway over it", ""),
        table,
        [
            "pass-through: uvicorn (uvloop, httptools), one Starlette route per path, the body POSTed on with aiohttp; "
            "no key, parsing, routing, limits, metrics or access log"
        ],
    )


GATEWAY_COLUMN = {
    "off": "limits off (no Redis, no limits: the in-process limiter holds no buckets)",
    "both": "limits off (no Redis, no limits); the Redis limiter is compared with it below",
    "redis": "the Redis limiter (state.redis_url and never-binding limits on account, model and key)",
}


def write_json(
    path: Path,
    m: Measurements,
    table: list[Row],
    info: dict[str, Any],
    settings: dict[str, Any],
    limiter: dict[str, Any] | None,
) -> None:
    data = {
        "machine": info,
        "settings": settings,
        "rows": [r.__dict__ for r in table],
        "runs": {key: [r.as_dict() for r in results] for key, results in m.runs.items()},
        "gateway_cpu_ms_per_request": m.cpu_ms_per_request.get("gateway", {}),
        "passthrough_cpu_ms_per_request": m.cpu_ms_per_request.get(PASSTHROUGH, {}),
        "gateway_startups_s": m.startups_s,
        "gateway_rss_mb": m.rss_mb.get("gateway"),
        "gateway_error": m.gateway_error,
        "gateway_log_tail": m.gateway_log_tail,
        "limiter": limiter,
    }
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
