"""Turning the measured runs into the pass/fail table and bench/results.json."""

from __future__ import annotations

import json
import os
import platform
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.wrk import WrkResult

KINDS = {"json": "JSON", "stream": "stream"}
MIN_RPS = {"json": 1000.0, "stream": 600.0}
MAX_ADDED_P50_MS = 1.0
MAX_ADDED_P99_MS = 3.0
MAX_RSS_MB = 80.0
MAX_STARTUP_S = 1.5


def run_key(target: str, kind: str, connections: int) -> str:
    return f"{target}/{kind}/c{connections}"


@dataclass
class Measurements:
    """Everything one benchmark invocation measured; medians are taken in `rows`."""

    runs: dict[str, list[WrkResult]] = field(default_factory=dict)
    cpu_ms_per_request: dict[str, list[float]] = field(default_factory=dict)
    startups_s: list[float] = field(default_factory=list)
    rss_mb: float | None = None
    gateway_error: str | None = None
    gateway_log_tail: str | None = None  # kept when a gateway run had errors

    def add(self, target: str, kind: str, connections: int, result: WrkResult) -> None:
        self.runs.setdefault(run_key(target, kind, connections), []).append(result)

    def median(self, target: str, kind: str, connections: int, of: Callable[[WrkResult], float]) -> float | None:
        results = self.runs.get(run_key(target, kind, connections), [])
        return statistics.median(of(r) for r in results) if results else None

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
        cpu = m.cpu_ms_per_request.get(kind)
        cpu_text = f"{statistics.median(cpu):.3f}" if cpu else "n/a"
        table.append(Row(f"{KINDS[kind]} gateway CPU/request c=32 (ms)", "", cpu_text, "", ""))
        table.append(_error_row(m, kind))
    rss = m.rss_mb
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


def render(table: list[Row], info: dict[str, Any], settings: dict[str, Any]) -> str:
    header = Row("metric", "direct", "gateway", "added / target", "result")
    widths = [max(len(getattr(r, f)) for r in [header, *table]) for f in ("metric", "direct", "gateway")]
    widths.append(max(len(r.added) for r in [header, *table]))

    def line(r: Row) -> str:
        cells = [r.metric.ljust(widths[0]), r.direct.rjust(widths[1]), r.gateway.rjust(widths[2])]
        return "  ".join([*cells, r.added.ljust(widths[3]), r.verdict]).rstrip()

    out = [
        f"machine: {info['cpu']}, {info['cores']} cores, Python {info['python']}, kernel {info['kernel']}",
        f"upstream: {info['upstream']}; load: {info['load_generator']}; "
        f"{settings['rounds']} interleaved round(s) of {settings['duration_s']:g} s per run, medians shown",
        "",
        line(header),
        *(line(r) for r in table),
    ]
    failed = [r.metric for r in table if r.verdict == "FAIL"]
    flagged = any(r.direct.endswith("!") or r.gateway.endswith("!") for r in table)
    measured = any(r.verdict in ("pass", "FAIL") and r.gateway != "n/a" for r in table)
    out.append("")
    if flagged:
        out.append("! = a run behind this value had non-2xx responses or socket errors")
    if failed:
        out.append(f"FAILED: {', '.join(failed)}")
    else:
        out.append("all targets met" if measured else "no target checked: the gateway was not measured")
    return "\n".join(out)


def write_json(path: Path, m: Measurements, table: list[Row], info: dict[str, Any], settings: dict[str, Any]) -> None:
    data = {
        "machine": info,
        "settings": settings,
        "rows": [r.__dict__ for r in table],
        "runs": {key: [r.as_dict() for r in results] for key, results in m.runs.items()},
        "gateway_cpu_ms_per_request": m.cpu_ms_per_request,
        "gateway_startups_s": m.startups_s,
        "gateway_rss_mb": m.rss_mb,
        "gateway_error": m.gateway_error,
        "gateway_log_tail": m.gateway_log_tail,
    }
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
