"""One self-contained HTML page per run (inline SVG, no scripts, nothing fetched): how full each limit was
over time, where the requests went over time, and where the money went. Pure: reports in, text out."""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

PALETTE = ("#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac")
WIDTH, HEIGHT, PAD = 760, 260, 44


def _lines(title: str, series: dict[str, list[float]], bin_s: float, unit: str, ceiling: float | None) -> str:
    """A line per series over time; ``ceiling`` draws a dashed line (100 % of a limit)."""
    if not series:
        return f"<h3>{html.escape(title)}</h3><p>nothing to show</p>"
    longest = max(len(v) for v in series.values()) or 1
    top = max([max(v, default=0.0) for v in series.values()] + [ceiling or 0.0]) or 1.0
    top *= 1.1
    plot_w, plot_h = WIDTH - 2 * PAD, HEIGHT - 2 * PAD

    def x(i: int) -> float:
        return PAD + plot_w * i / max(1, longest - 1)

    def y(v: float) -> float:
        return HEIGHT - PAD - plot_h * v / top

    parts = [f'<svg width="{WIDTH}" height="{HEIGHT + 18 * len(series)}" xmlns="http://www.w3.org/2000/svg">']
    parts.append(f'<line x1="{PAD}" y1="{HEIGHT - PAD}" x2="{WIDTH - PAD}" y2="{HEIGHT - PAD}" stroke="#999"/>')
    parts.append(f'<line x1="{PAD}" y1="{PAD}" x2="{PAD}" y2="{HEIGHT - PAD}" stroke="#999"/>')
    for k in range(5):
        value = top * k / 4
        parts.append(
            f'<text x="{PAD - 4}" y="{y(value) + 4:.1f}" font-size="10" text-anchor="end">{value:.3g}{unit}</text>'
        )
    minutes = (longest - 1) * bin_s / 60
    for k in range(5):
        parts.append(
            f'<text x="{PAD + plot_w * k / 4:.1f}" y="{HEIGHT - PAD + 14}" font-size="10" text-anchor="middle">'
            f"{minutes * k / 4:.0f} min</text>"
        )
    if ceiling is not None:
        parts.append(
            f'<line x1="{PAD}" y1="{y(ceiling):.1f}" x2="{WIDTH - PAD}" y2="{y(ceiling):.1f}" '
            'stroke="#c00" stroke-dasharray="4 3"/>'
        )
    for n, (name, values) in enumerate(series.items()):
        colour = PALETTE[n % len(PALETTE)]
        points = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in enumerate(values))
        parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="1.5" points="{points}"/>')
        legend_y = HEIGHT + 4 + 18 * n
        parts.append(f'<rect x="{PAD}" y="{legend_y}" width="12" height="12" fill="{colour}"/>')
        parts.append(f'<text x="{PAD + 18}" y="{legend_y + 10}" font-size="12">{html.escape(name)}</text>')
    parts.append("</svg>")
    return f"<h3>{html.escape(title)}</h3>" + "".join(parts)


def _bars(title: str, values: dict[str, float]) -> str:
    """Horizontal bars, largest first, each with its share of the total."""
    total = sum(values.values())
    if total <= 0:
        return f"<h3>{html.escape(title)}</h3><p>nothing was spent</p>"
    ordered = sorted(values.items(), key=lambda item: -item[1])
    row, label_w, bar_w = 22, 260, WIDTH - 260 - 120
    parts = [f'<svg width="{WIDTH}" height="{row * len(ordered) + 8}" xmlns="http://www.w3.org/2000/svg">']
    for n, (name, value) in enumerate(ordered):
        top = 4 + row * n
        width = bar_w * value / ordered[0][1]
        parts.append(f'<text x="0" y="{top + 14}" font-size="12">{html.escape(name)}</text>')
        parts.append(
            f'<rect x="{label_w}" y="{top}" width="{width:.1f}" height="16" fill="{PALETTE[n % len(PALETTE)]}"/>'
        )
        parts.append(
            f'<text x="{label_w + width + 6:.1f}" y="{top + 13}" font-size="12">'
            f"${value:,.2f}/day ({100 * value / total:.1f} %)</text>"
        )
    parts.append("</svg>")
    return f"<h3>{html.escape(title)}</h3>" + "".join(parts)


def _section(report: dict[str, Any]) -> str:
    bin_s = report["bin_seconds"]
    utilisation = {name: [100 * v for v in limit["series"]] for name, limit in report["limits"].items()}
    per_second = {name: [n / bin_s for n in d["answered_per_bin"]] for name, d in report["deployments"].items()}
    head = (
        f"<h2>{html.escape(report['policy'])}</h2><p>{report['workflows_per_second']:.2f} workflows/s sustained"
        f" (max held: {report['max_workflows_per_second'] if report['max_workflows_per_second'] is not None else '-'})"
        f", {100 * report['client_error_rate']:.2f} % client errors, {report['upstream_429']} upstream 429s, "
        f"${report['cost_per_workflow_usd']:.4f} per workflow</p>"
    )
    return (
        head
        + _lines("Utilisation of each limit (% of its allowance per bin)", utilisation, bin_s, "%", 100.0)
        + _lines("Requests answered per second, by deployment", per_second, bin_s, "", None)
        + _bars("Cost by deployment", {n: d["cost_per_day_usd"] for n, d in report["deployments"].items()})
        + _bars("Cost by class", {n: c["cost_per_day_usd"] for n, c in report["classes"].items()})
    )


def page(reports: Sequence[dict[str, Any]]) -> str:
    first = reports[0]
    title = f"gateway simulate: {first['config']} with {first['workload']}"
    body = "".join(_section(r) for r in reports)
    style = (
        "body{font-family:sans-serif;max-width:820px;margin:2em auto;color:#222}"
        "h2{border-top:1px solid #ccc;padding-top:1em}"
    )
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{style}</style></head><body><h1>{html.escape(title)}</h1>{body}</body></html>\n"
    )
