"""The README's figures for the plan's examples (config/plan/), from the commands the README shows.

Slow: the fleet comparison searches two policies' capacity (several minutes of one core). The simulator is
deterministic, so the tolerances only leave room for deliberate changes to the model, not for noise.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sim.support import simulate

PLAN = Path(__file__).resolve().parents[2] / "config" / "plan"
WORKLOAD = PLAN / "workload.yaml"

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]


def test_one_tier1_key(tmp_path: Path) -> None:
    _, report = simulate(PLAN / "single-key.yaml", WORKLOAD, tmp_path)
    assert report["max_workflows_per_second"] == pytest.approx(0.0075, rel=0.1)
    assert report["workflows_per_second"] == pytest.approx(0.0092, rel=0.1)
    assert report["client_error_rate"] == pytest.approx(0.984, abs=0.01)
    assert report["upstream_429"] == 0


def test_the_fleet_with_and_without_cost_routing(tmp_path: Path) -> None:
    _, report = simulate(PLAN / "fleet.yaml", WORKLOAD, tmp_path, "--compare", str(PLAN / "openai-only"))
    openai_only = report["compared"]
    assert report["max_workflows_per_second"] == pytest.approx(49.7, rel=0.05)
    assert report["workflows_per_second"] == pytest.approx(13.72, rel=0.01)  # the peak, held
    assert report["client_error_rate"] == 0.0 and report["upstream_429"] == 0
    assert report["cost_per_workflow_usd"] == pytest.approx(0.0114, rel=0.05)
    assert openai_only["max_workflows_per_second"] == pytest.approx(1.73, rel=0.05)
    assert openai_only["client_error_rate"] == pytest.approx(0.63, abs=0.02)


def test_cost_per_workflow_before_and_after_cost_routing(tmp_path: Path) -> None:
    extra = ("--compare", str(PLAN / "openai-only"), "--rate", "1.5", "--no-search")
    _, report = simulate(PLAN / "fleet.yaml", WORKLOAD, tmp_path, *extra)
    before, after = report["compared"]["cost_per_workflow_usd"], report["cost_per_workflow_usd"]
    assert before == pytest.approx(0.159, rel=0.03)
    assert after == pytest.approx(0.0118, rel=0.03)
    assert 1 - after / before == pytest.approx(0.926, abs=0.01)


def test_a_groq_outage_at_the_peak(tmp_path: Path) -> None:
    _, report = simulate(PLAN / "fleet.yaml", PLAN / "groq-outage.yaml", tmp_path, "--no-search")
    assert report["client_error_rate"] == 0.0
    groq = [e for e in report["circuit"] if e["deployment"] == "groq/llama-3.1-8b-instant"]
    assert groq[0]["state"] == "open" and 600 < groq[0]["at_s"] < 602
    assert groq[-1]["state"] == "closed" and 1200 < groq[-1]["at_s"] < 1200 + 16
    gemini = report["deployments"]["gemini/gemini-1.5-flash"]
    assert 600 < gemini["saturated_at_s"] < 660 and gemini["saturated_s"] >= 540  # full within a minute, and stays
    assert report["cost_per_workflow_usd"] == pytest.approx(0.0155, rel=0.03)
