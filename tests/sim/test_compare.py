"""``--compare``: two policies, the same workflows, side by side; and the same seed gives the same report."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from sim.support import simulate

PLAN = Path(__file__).resolve().parents[2] / "config" / "plan"


def test_compare_prints_two_policies_side_by_side(tmp_path: Path) -> None:
    stdout, report = simulate(
        PLAN / "fleet.yaml",
        PLAN / "workload.yaml",
        tmp_path,
        "--duration",
        "120",
        "--no-search",
        "--compare",
        str(PLAN / "openai-only"),
    )
    other = report["compared"]
    assert report["policy"].endswith("cost-routing") and other["policy"].endswith("openai-only")
    # The same traffic went through both: the same workflows arrived.
    assert report["offered_workflows_per_second"] == other["offered_workflows_per_second"]
    header, *rows = [line for line in stdout.splitlines() if line.strip()][1:]
    assert report["policy"] in header and other["policy"] in header
    table = {row.split("  ")[1].strip(): row for row in rows}
    assert table["workflows/s sustained"].split()[-2:] == [
        f"{report['workflows_per_second']:,.2f}",
        f"{other['workflows_per_second']:,.2f}",
    ]
    assert f"${report['cost_per_workflow_usd']:.4f}" in table["cost per workflow"]
    assert f"${other['cost_per_workflow_usd']:.4f}" in table["cost per workflow"]
    # What the comparison is for: GPT-4 for everything costs over ten times as much per workflow, and GPT-4's
    # tokens-per-minute limits cannot carry the plan's peak, where cost routing holds it.
    assert other["cost_per_workflow_usd"] > 10 * report["cost_per_workflow_usd"]
    assert report["client_error_rate"] < 0.01 < other["client_error_rate"]
    assert "openai-tier5/gpt-4 share" in stdout
    # The chart beside the JSON: both policies, each limit's utilisation over time and the cost split.
    page = (tmp_path / "report.html").read_text()
    assert page.count("<svg") == 8 and "</html>" in page and "<script" not in page
    assert all(name in page for name in report["limits"]) and "Cost by deployment" in page
    assert report["policy"] in page and other["policy"] in page


def test_the_same_seed_gives_the_same_report(tmp_path: Path) -> None:
    runs = []
    for n, hash_seed in enumerate(("1", "2")):  # and whatever order sets and dicts would hash strings in
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        out = tmp_path / str(n)
        out.mkdir()
        _, report = simulate(
            PLAN / "fleet.yaml", PLAN / "workload.yaml", out, "--duration", "30", "--no-search", env=env
        )
        report.pop("wall_seconds"), report.pop("cpu_seconds")
        runs.append(report)
    assert runs[0] == runs[1]
    out = tmp_path / "other"
    out.mkdir()
    _, other = simulate(
        PLAN / "fleet.yaml", PLAN / "workload.yaml", out, "--duration", "30", "--no-search", "--seed", "2"
    )
    assert other["requests"] != runs[0]["requests"] or other["latency_ms"] != runs[0]["latency_ms"]


@pytest.mark.parametrize("flag", ["--help"])
def test_simulate_is_a_gateway_command(flag: str, tmp_path: Path) -> None:
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "gateway", "simulate", flag], capture_output=True, text=True)
    assert done.returncode == 0 and "--workload" in done.stdout and "--compare" in done.stdout
    listed = subprocess.run([sys.executable, "-m", "gateway", "--help"], capture_output=True, text=True)
    assert "simulate" in listed.stdout
