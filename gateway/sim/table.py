"""The report as a table on stdout (pure): one run, or two policies side by side on the same traffic."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

Row = tuple[str, Callable[[dict[str, Any]], str]]


def _num(value: float | None, digits: int = 2) -> str:
    if value is None:
        return "-"
    if 0 < abs(value) < 0.1 and digits == 2:  # a rate of a few workflows an hour
        return f"{value:.3g}"
    return f"{value:,.{digits}f}"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f} %"


def _usd(value: float | None) -> str:
    if value is None:
        return "-"
    return f"${value:,.0f}" if value >= 100 else f"${value:.4f}" if value < 1 else f"${value:,.2f}"


def _ms(report: dict[str, Any], key: str, q: str) -> str:
    value = report[key][q]
    return "-" if value is None else f"{value:,.0f}"


def _seconds(value: float | None) -> str:
    if value is None:
        return "never"
    minutes, seconds = divmod(int(value), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}"


SUMMARY: list[Row] = [
    ("workflows/s sustained", lambda r: _num(r["workflows_per_second"])),
    ("workflows/s offered", lambda r: _num(r["offered_workflows_per_second"])),
    ("max workflows/s held (<1 % errors)", lambda r: _num(r["max_workflows_per_second"])),
    ("requests/s answered", lambda r: _num(r["requests_per_second"])),
    ("client errors (of requests)", lambda r: _pct(r["client_error_rate"])),
    ("workflows failed", lambda r: _pct(r["workflow_failure_rate"])),
    ("upstream 429s", lambda r: f"{r['upstream_429']:,}"),
    ("latency p50 / p99 ms", lambda r: f"{_ms(r, 'latency_ms', 'p50')} / {_ms(r, 'latency_ms', 'p99')}"),
    ("first token p50 / p99 ms (streams)", lambda r: f"{_ms(r, 'ttft_ms', 'p50')} / {_ms(r, 'ttft_ms', 'p99')}"),
    ("waiting in line p99 / max ms", lambda r: f"{_ms(r, 'wait_ms', 'p99')} / {_ms(r, 'wait_ms', 'max')}"),
    ("requests that waited", lambda r: _pct(r["wait_ms"]["share_waited"])),
    ("cost per request", lambda r: _usd(r["cost_per_request_usd"])),
    ("cost per workflow", lambda r: _usd(r["cost_per_workflow_usd"])),
    ("cost per day (at this traffic)", lambda r: _usd(r["cost_per_day_usd"])),
]


def _grid(rows: Sequence[Sequence[str]], indent: str = "  ") -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for row in rows:
        cells = [row[0].ljust(widths[0])] + [cell.rjust(w) for cell, w in zip(row[1:], widths[1:], strict=True)]
        lines.append(indent + "  ".join(cells).rstrip())
    return lines


def _deployments(report: dict[str, Any]) -> list[str]:
    rows = [["deployment", "share", "requests", "429s", "cost share", "cost/day", "first full", "full for"]]
    for name, d in report["deployments"].items():
        rows.append(
            [
                name,
                _pct(d["share"]),
                f"{d['requests']:,}",
                f"{d['upstream_429']:,}",
                _pct(d["cost_share"]),
                _usd(d["cost_per_day_usd"]),
                _seconds(d["saturated_at_s"]),
                _seconds(d["saturated_s"]) if d["saturated_s"] else "-",
            ]
        )
    return _grid(rows)


def _limits(report: dict[str, Any]) -> list[str]:
    rows = [["limit", "per minute", "mean use", "peak use"]]
    for name, limit in report["limits"].items():
        rows.append(
            [
                name,
                f"{limit['limit_per_minute']:,.0f}",
                _pct(limit["mean_utilisation"]),
                _pct(limit["peak_utilisation"]),
            ]
        )
    lines = _grid(rows) if len(rows) > 1 else ["  (no limits were charged)"]
    users = report.get("user_quotas")
    if users:
        lines.append(
            f"  end-user quotas: {users['end_users']:,} users, the busiest at {_pct(users['peak_utilisation'])}"
        )
    return lines


def _classes(report: dict[str, Any]) -> list[str]:
    rows = [["class", "requests", "errors", "per workflow", "per day", "p50 ms", "p99 ms"]]
    for name, c in report["classes"].items():
        rows.append(
            [
                name,
                f"{c['requests']:,}",
                f"{c['client_errors']:,}",
                _usd(c["cost_per_workflow_usd"]),
                _usd(c["cost_per_day_usd"]),
                _num(c["latency_ms"]["p50"], 0),
                _num(c["latency_ms"]["p99"], 0),
            ]
        )
    return _grid(rows)


def _counts(title: str, counts: dict[str, int]) -> str:
    shown = ", ".join(f"{k}: {v:,}" for k, v in counts.items())
    return f"{title}: {shown or 'none'}"


def render(report: dict[str, Any]) -> str:
    lines = [
        f"config {report['config']}, policy {report['policy']} ({report['policy_version']}), "
        f"workload {report['workload']}, seed {report['seed']}",
        f"simulated {report['simulated_seconds']:,.0f} s of arrivals in {report['wall_seconds']:,.1f} s "
        f"({report['requests_simulated']:,} requests, {report['code']})",
        "",
        *_grid([[name, show(report)] for name, show in SUMMARY]),
        "",
        *_deployments(report),
        "",
        *_limits(report),
        "",
        *_classes(report),
        "",
        _counts("client errors", report["client_errors"]),
        _counts("fallbacks", report["fallbacks"]),
    ]
    lines += _circuits(report["circuit"])
    return "\n".join(lines)


def _circuits(events: list[dict[str, Any]]) -> list[str]:
    """Per deployment: when its circuit first opened, how often, and when it last closed."""
    lines = []
    for deployment in dict.fromkeys(e["deployment"] for e in events):
        mine = [e for e in events if e["deployment"] == deployment]
        opened = [e["at_s"] for e in mine if e["state"] == "open"]
        closed = [e["at_s"] for e in mine if e["state"] == "closed"]
        text = f"circuit {deployment}: opened at {_seconds(opened[0])}" if opened else f"circuit {deployment}:"
        if len(opened) > 1:
            text += f", {len(opened)} times (probes found it still failing)"
        ended = mine[-1]["state"] == "closed"
        text += f", closed at {_seconds(closed[-1])}" if ended else f", still {mine[-1]['state']} at the end"
        lines.append(text)
    return lines


def compare(first: dict[str, Any], second: dict[str, Any]) -> str:
    """Two policies on the same traffic, side by side: the summary, then each deployment's share and cost."""
    rows = [["", first["policy"], second["policy"]]]
    rows += [[name, show(first), show(second)] for name, show in SUMMARY]
    names = list(dict.fromkeys([*first["deployments"], *second["deployments"]]))
    for name in names:
        a, b = first["deployments"].get(name), second["deployments"].get(name)
        rows.append([f"{name} share", _pct(a["share"]) if a else "-", _pct(b["share"]) if b else "-"])
        rows.append(
            [f"{name} cost/day", _usd(a["cost_per_day_usd"]) if a else "-", _usd(b["cost_per_day_usd"]) if b else "-"]
        )
    fallbacks = sorted({*first["fallbacks"], *second["fallbacks"]})
    rows += [
        [f"fallbacks {k}", f"{first['fallbacks'].get(k, 0):,}", f"{second['fallbacks'].get(k, 0):,}"] for k in fallbacks
    ]
    errors = sorted({*first["client_errors"], *second["client_errors"]})
    rows += [
        [f"errors {k}", f"{first['client_errors'].get(k, 0):,}", f"{second['client_errors'].get(k, 0):,}"]
        for k in errors
    ]
    head = f"config {first['config']}, workload {first['workload']}, seed {first['seed']}: same workflows, two policies"
    return "\n".join([head, "", *_grid(rows)])
