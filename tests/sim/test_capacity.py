"""The simulator's capacity answers match the arithmetic where the arithmetic is exact: one key, one limit."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sim.support import openai_account, simulate, write


def _workload(prompt: int, output: int, rate: float) -> dict[str, Any]:
    """Evenly spaced workflows of three calls with fixed sizes and latency: nothing random but the clock."""
    return {
        "seed": 7,
        "duration_s": 300,
        "arrivals": {"rate": {"constant": rate}, "process": "uniform"},
        "classes": {
            "agent": {
                "share": 1.0,
                "model": "gpt-4o-mini",
                "calls": 3,
                "prompt_tokens": prompt,
                "output_tokens": output,
                "max_tokens": output,
            }
        },
        "providers": {"*": {"ttft_ms": 400, "tokens_per_second": 100}},
        "search": {"warmup_s": 60, "window_s": 120, "min_workflows": 600, "precision": 0.01},
    }


@pytest.mark.parametrize(
    ("limits", "prompt", "output", "analytical"),
    [
        # The plan's arithmetic: 500 requests a minute / 60 / 3 calls = 2.78 workflows a second.
        ({"rpm": 500}, 1000, 300, 500 / 60 / 3),
        # A tokens-per-minute limit binds first: 60,000 / 600 tokens a call / 60 / 3 = 0.556 workflows a second.
        ({"rpm": 10_000, "tpm": 60_000}, 500, 100, 60_000 / 600 / 60 / 3),
    ],
    ids=["rpm-bound", "tpm-bound"],
)
def test_single_key_capacity_matches_the_arithmetic(
    tmp_path: Path, limits: dict[str, int], prompt: int, output: int, analytical: float
) -> None:
    config = write(tmp_path / "gateway.yaml", {"providers": {"only": openai_account(limits)}, "keys": []})
    workload = write(tmp_path / "workload.yaml", _workload(prompt, output, rate=analytical * 0.9))
    _, report = simulate(config, workload, tmp_path)
    assert report["max_workflows_per_second"] == pytest.approx(analytical, rel=0.02)
    # Under capacity, everything offered is served, and never a provider's 429.
    assert report["client_error_rate"] == 0.0
    assert report["upstream_429"] == 0
    assert report["workflows_per_second"] == pytest.approx(analytical * 0.9, rel=0.02)
    probes = report["search"]["probes"]
    assert any(p["held"] for p in probes) and any(not p["held"] for p in probes)


def test_overload_serves_what_the_limit_allows_and_refuses_the_rest(tmp_path: Path) -> None:
    """Twice the capacity for ten minutes: the minute's allowance at the start, then the refill, no more."""
    config = write(tmp_path / "gateway.yaml", {"providers": {"only": openai_account({"rpm": 600})}, "keys": []})
    doc = _workload(200, 50, rate=2 * 600 / 60 / 3)
    doc["duration_s"] = 600
    workload = write(tmp_path / "workload.yaml", doc)
    _, report = simulate(config, workload, tmp_path, "--no-search")
    answered = report["requests"] - sum(report["client_errors"].values())
    allowed = 600 + 600 / 60 * 610  # a full bucket, then the refill until the last answer (10 s after arrivals end)
    assert allowed * 0.97 < answered <= allowed
    assert set(report["client_errors"]) == {"429 capacity_exhausted"}
    assert report["upstream_429"] == 0
    assert report["limits"]["acct:only:rpm"]["peak_utilisation"] >= 1.0
    assert report["deployments"]["only/gpt-4o-mini"]["saturated_at_s"] < 120
