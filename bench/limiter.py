"""The Redis limiter's section of the report: its cost against limits off, and its Redis round trips."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from bench import roundtrips
from bench.redis_server import RedisRun
from bench.report import KINDS, Measurements, Row, Section
from bench.wrk import WrkResult

MAX_ADDED_P50_MS = 0.3  # p50 at one connection, limits=redis minus limits=off
MIN_JSON_RPS_RATIO = 0.85  # JSON req/s at 32 connections, limits=redis over limits=off
MAX_ROUND_TRIPS = 2.0  # admission, and the reconcile after the response is sent
HEADER = Row("metric", "limits off", "limits redis", "difference / target", "result")


def names(m: Measurements) -> tuple[str | None, str | None]:
    """The targets measured with limits off and with the Redis limiter (None: not in this run)."""
    return {"both": ("gateway", "gateway+redis"), "redis": (None, "gateway")}.get(m.limits, ("gateway", None))


def _num(value: float | None, fmt: str) -> str:
    if value is None:
        return "n/a"
    return format(value, fmt) if fmt else (f"{value:.3f}" if value < 1 else f"{value:.2f}")


def _row(m: Measurements, kind: str, conns: int | None, metric: str, cells: tuple[str, str], diff: str, ok: Any) -> Row:
    """A row; a value whose runs had errors gets "!" and the row cannot pass. `ok`: bool, None or "n/a"."""
    off, redis = names(m)
    verdict = ok if isinstance(ok, str) else ("" if ok is None else ("pass" if ok else "FAIL"))
    texts = list(cells)
    if conns is not None:
        for i, name in enumerate((off, redis)):
            if name is not None and not m.clean(name, kind, conns):
                texts[i] += " !"
                verdict = "FAIL" if verdict else ""
    return Row(metric, texts[0], texts[1], diff, verdict)


def _pair(m: Measurements, kind: str, conns: int, of: Any) -> tuple[float | None, float | None]:
    off, redis = names(m)
    return (
        None if off is None else m.median(off, kind, conns, of),
        None if redis is None else m.median(redis, kind, conns, of),
    )


def _latency(m: Measurements, kind: str, pct: str, limit: float | None) -> Row:
    def of(r: WrkResult) -> float:
        return (r.p50_us if pct == "p50" else r.p99_us) / 1000

    off, redis = _pair(m, kind, 1, of)
    added = redis - off if off is not None and redis is not None else None
    target = f" (≤ {limit:g} ms)" if limit is not None else ""
    diff = (f"{added:+.3f}" if added is not None else "n/a") + target
    ok: Any = None if limit is None else ("n/a" if added is None else added <= limit)
    metric = f"{KINDS[kind]} {pct} latency c=1 (ms)"
    return _row(m, kind, 1, metric, (_num(off, ""), _num(redis, "")), diff, ok)


def _throughput(m: Measurements, kind: str) -> Row:
    off, redis = _pair(m, kind, 32, lambda r: r.rps)
    ratio = redis / off if off and redis is not None else None
    floor = MIN_JSON_RPS_RATIO if kind == "json" else None
    target = f" (≥ {floor:.0%})" if floor is not None else ""
    diff = (f"{ratio:.1%} of off" if ratio is not None else "n/a") + target
    ok: Any = None if floor is None else ("n/a" if ratio is None else ratio >= floor)
    cells = (_num(off, ",.0f"), _num(redis, ",.0f"))
    return _row(m, kind, 32, f"{KINDS[kind]} throughput c=32 (req/s)", cells, diff, ok)


def _cpu(m: Measurements, kind: str) -> Row:
    off, redis = (None if n is None else m.cpu_ms(n, kind) for n in names(m))
    diff = f"{redis - off:+.3f}" if off is not None and redis is not None else ""
    cells = (_num(off, ".3f"), _num(redis, ".3f"))
    return _row(m, kind, None, f"{KINDS[kind]} gateway CPU/request c=32 (ms)", cells, diff, None)


def _runs(m: Measurements, kind: str) -> list[RedisRun]:
    return [r for r in m.redis_runs if r.kind == kind]


def _redis_cpu(m: Measurements, kind: str) -> Row:
    runs = [r for r in _runs(m, kind) if r.connections == 32 and r.requests]
    cpu = sum(r.redis_cpu_ms for r in runs) / sum(r.requests for r in runs) if runs else None
    return _row(m, kind, None, f"{KINDS[kind]} redis-server CPU/request c=32 (ms)", ("", _num(cpu, ".4f")), "", None)


def _on_redis(run: RedisRun) -> bool:
    """Whether the limiter was on Redis all through the run: before, during (the log) and after."""
    return run.mode_before == run.mode == "redis" and not run.degraded


def _round_trips(m: Measurements, kind: str) -> Row:
    runs = _runs(m, kind)
    trips = roundtrips.per_request(runs, m.redis_idle)
    # Compared as shown (2 decimals): what is left of the background after taking out its average
    # rate is noise far below 0.01 per request, while one call more per request adds 1.
    ok: Any = "n/a" if trips is None else round(trips, 2) <= MAX_ROUND_TRIPS
    metric = f"{KINDS[kind]} Redis round trips/request"
    row = _row(m, kind, None, metric, ("", _num(trips, ".2f")), f"(≤ {MAX_ROUND_TRIPS:g})", ok)
    _, name = names(m)
    errors = name is not None and not all(m.clean(name, kind, c) for c in (1, 32))
    if errors or any(not _on_redis(r) for r in runs):
        # Not the limiter's normal path: requests refused, or some served on local buckets.
        return Row(row.metric, row.direct, row.gateway + " !", row.added, "FAIL")
    return row


def _errors(m: Measurements, kind: str) -> Row:
    found = [None if n is None else m.errors(n, kind) for n in names(m)]
    cells = [f"{e[0]}/{e[1]}" if e is not None else "n/a" for e in found]
    clean = all(e is None or e == (0, 0) for e in found)
    return _row(m, kind, None, f"{KINDS[kind]} errors non-2xx/socket", (cells[0], cells[1]), "(0/0)", clean)


def rows(m: Measurements) -> list[Row]:
    table: list[Row] = []
    for kind in KINDS:
        table += [_latency(m, kind, "p50", MAX_ADDED_P50_MS), _latency(m, kind, "p99", None), _throughput(m, kind)]
        table += [_cpu(m, kind), _redis_cpu(m, kind), _round_trips(m, kind), _errors(m, kind)]
    runs = m.redis_runs
    on_redis = sum(_on_redis(r) for r in runs)
    metric = "runs entirely on Redis (log, /readyz)"
    ok: Any = "n/a" if not runs else on_redis == len(runs)
    table.append(_row(m, "json", None, metric, ("", f"{on_redis}/{len(runs)}"), "(all)", ok))
    off, redis = (None if n is None else m.rss_mb.get(n) for n in names(m))
    diff = f"{redis - off:+.1f}" if off is not None and redis is not None else ""
    table.append(
        _row(m, "json", None, "gateway RSS after load (MB)", (_num(off, ".1f"), _num(redis, ".1f")), diff, None)
    )
    return table


def section(m: Measurements, redis_version: str, cpu: int) -> Section:
    off, _ = names(m)
    compared = "interleaved with limits off in the same rounds" if off else "limits off not measured (--limits redis)"
    title = f"Redis rate limiter: redis-server {redis_version} on core {cpu}; {compared}"
    return Section(
        title, "Redis limiter", HEADER, rows(m), ["", *roundtrips.breakdown(KINDS, m.redis_runs, m.redis_idle)]
    )


def as_json(m: Measurements, sec: Section, redis_version: str) -> dict[str, Any]:
    fields = ("metric", "off", "redis", "difference", "verdict")
    return {
        "limits": m.limits,
        "redis_version": redis_version,
        "rows": [dict(zip(fields, (r.metric, r.direct, r.gateway, r.added, r.verdict), strict=True)) for r in sec.rows],
        "redis_runs": [asdict(r) for r in m.redis_runs],
        "redis_idle": [asdict(t) for t in m.redis_idle],
        "cpu_ms_per_request": {n: m.cpu_ms_per_request.get(n, {}) for n in names(m) if n},
        "rss_mb": {n: m.rss_mb.get(n) for n in names(m) if n},
    }
