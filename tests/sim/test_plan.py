"""The README's figures for the plan's examples (config/plan/), against the commands the README shows.

The README's numbers come from those commands, each a search for the highest rate held (a dozen probes) and
an hour at the peak. Running them all would take minutes, so each figure is checked the cheapest way that
would still catch it moving:

- a highest rate held, by one probe of the search a few per cent above it (``search.probe``, as the search
  runs it): not held there, and what it served is within a few per cent of the figure;
- the peak's figures, by the README's command without the search (``--no-search``), over the hour where the
  figure depends on the start (a full bucket carries the single key's first minute), else a shorter run;
- the cost comparison and the outage, by the README's commands themselves.

The simulator is deterministic, so the tolerances leave room for deliberate changes to the model, not for
noise.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sim.support import setup, simulate

from gateway.sim.report import Probe
from gateway.sim.search import probe

PLAN = Path(__file__).resolve().parents[2] / "config" / "plan"
WORKLOAD = PLAN / "workload.yaml"

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


def _above(config: Path, held: float, policy: Path | None = None) -> Probe:
    """The search's probe 3 % above the README's highest rate held."""
    return probe(setup(config, WORKLOAD, policy), held * 1.03)


def test_one_tier1_key(tmp_path: Path) -> None:
    _, report = simulate(PLAN / "single-key.yaml", WORKLOAD, tmp_path, "--no-search")
    assert report["workflows_per_second"] == pytest.approx(0.0092, rel=0.05)
    assert report["client_error_rate"] == pytest.approx(0.984, abs=0.01)
    assert report["upstream_429"] == 0
    over = _above(PLAN / "single-key.yaml", 0.00813)
    assert not over.held and over.capacity == pytest.approx(0.00813, rel=0.05)


def test_the_fleet_with_and_without_cost_routing(tmp_path: Path) -> None:
    extra = ("--compare", str(PLAN / "openai-only"), "--no-search", "--duration", "600")
    _, report = simulate(PLAN / "fleet.yaml", WORKLOAD, tmp_path, *extra)
    openai_only = report["compared"]
    assert report["workflows_per_second"] == pytest.approx(13.72, rel=0.03)  # the peak, held
    assert report["client_error_rate"] == 0.0 and report["upstream_429"] == 0
    assert report["cost_per_workflow_usd"] == pytest.approx(0.0114, rel=0.05)
    assert openai_only["client_error_rate"] == pytest.approx(0.63, abs=0.02)
    over = _above(PLAN / "fleet.yaml", 49.9)
    assert not over.held and over.capacity == pytest.approx(49.9, rel=0.03)
    over = _above(PLAN / "fleet.yaml", 1.68, PLAN / "openai-only")
    assert not over.held and over.capacity == pytest.approx(1.68, rel=0.05)


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
    assert groq[0]["state"] == "open" and 300 < groq[0]["at_s"] < 302
    assert groq[-1]["state"] == "closed" and 600 < groq[-1]["at_s"] < 600 + 16
    gemini = report["deployments"]["gemini/gemini-1.5-flash"]
    assert 300 < gemini["saturated_at_s"] < 360 and gemini["saturated_s"] >= 240  # full within a minute, and stays
    assert report["cost_per_workflow_usd"] == pytest.approx(0.0150, rel=0.03)
