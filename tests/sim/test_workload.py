"""The workload file: every mistake reported with its path, and the traffic it describes is the traffic drawn."""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sim.support import openai_account, write

from gateway.sim import arrivals
from gateway.sim.distributions import parse
from gateway.sim.reader import build
from gateway.sim.workload import WorkloadError

CLASS = {"share": 1.0, "model": "gpt-4o-mini"}


def _errors(doc: dict[str, Any]) -> list[str]:
    with pytest.raises(WorkloadError) as caught:
        build(doc, "w.yaml")
    return caught.value.errors


def test_mistakes_are_reported_with_their_path() -> None:
    errors = _errors(
        {
            "duration_s": 60,
            "arival": {},
            "classes": {"a": {**CLASS, "share": 0.5, "prompt_tokens": {"lognormal": {"median": 900}}}},
            "tiers": {"standard": 0.5, "premium": 0.4},
            "providers": {"*": {"error": "418", "limits": {"rpm": 10}}},
            "outages": [{"target": "x", "from_s": 50, "to_s": 10, "kind": "meltdown"}],
        }
    )
    assert "w.yaml: arival: unknown key" in errors
    assert "w.yaml: classes: shares add up to 0.5, not 1" in errors
    assert "w.yaml: tiers: shares add up to 0.9, not 1" in errors
    assert "w.yaml: classes.a.prompt_tokens: lognormal takes {median: M, p95: P}" in errors
    assert any(e.startswith("w.yaml: providers.*.error: one of 500, 502, 503, 504") for e in errors)
    assert "w.yaml: providers.*.limits: limits belong to an account or a deployment" in errors
    assert "w.yaml: outages[0].kind: one of 429, 500, 502, 503, 504, timeout, connection; got 'meltdown'" in errors
    assert "w.yaml: outages[0].to_s: must be after from_s" in errors


def test_the_command_refuses_a_workload_that_names_nothing_in_the_config(tmp_path: Path) -> None:
    config = write(tmp_path / "gateway.yaml", {"providers": {"only": openai_account()}, "keys": []})
    workload = write(
        tmp_path / "w.yaml",
        {
            "classes": {"a": {**CLASS, "model": "no-such-route"}},
            "outages": [{"target": "elsewhere", "from_s": 0, "to_s": 10}],
        },
    )
    done = subprocess.run(
        [sys.executable, "-m", "gateway", "simulate", "--config", str(config), "--workload", str(workload)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 1
    assert "classes.a.model: 'no-such-route' is no route, alias, model or deployment" in done.stderr
    assert "outages: elsewhere: no account or deployment of that name" in done.stderr


def test_poisson_arrivals_follow_the_rate_and_its_bursts() -> None:
    shape = arrivals.Arrivals(
        arrivals.constant(10.0), (arrivals.Burst(100.0, 50.0, 30.0), arrivals.Burst(500.0, count=200))
    )
    times = list(arrivals.times(shape, 1000.0, random.Random(5)))
    assert times == sorted(times)
    expected = 10 * 1000 + 30 * 50 + 200
    assert arrivals.expected(shape, 1000.0) == pytest.approx(expected)
    assert len(times) == pytest.approx(expected, rel=0.03)  # ~3 standard deviations of a Poisson count
    in_burst = sum(1 for t in times if 100 <= t < 150)
    assert in_burst == pytest.approx(40 * 50, rel=0.1)
    assert times.count(500.0) >= 200


def test_a_daily_curve_peaks_where_it_says() -> None:
    hourly = [2.0] * 24
    hourly[14] = 14.0
    shape = arrivals.daily(hourly, start_hour=8)
    assert shape.rate(6 * 3600) == pytest.approx(14.0)  # 14:00, six hours after an 08:00 start
    assert shape.rate(5.5 * 3600) == pytest.approx(8.0)  # halfway from 13:00 to 14:00
    assert shape.rate(6 * 3600 + 86_400) == pytest.approx(14.0)  # the next day too
    even = list(arrivals.times(arrivals.Arrivals(arrivals.constant(4.0), process="uniform"), 10.0, random.Random()))
    assert even == pytest.approx([0.25 * k for k in range(1, 40)])


def test_distributions_have_the_percentiles_they_are_given() -> None:
    rng = random.Random(1)
    tokens = parse({"lognormal": {"median": 800, "p95": 3000}})
    draws = sorted(tokens.sample(rng) for _ in range(20_000))
    assert draws[10_000] == pytest.approx(800, rel=0.05)
    assert draws[19_000] == pytest.approx(3000, rel=0.07)
    assert parse(5).sample(rng) == 5.0
    assert 1 <= parse({"uniform": [1, 2]}).sample(rng) <= 2


def test_lognormal_draws_are_the_random_modules_own() -> None:
    """The simulator draws lognormals itself (three a request, without two calls each): the same numbers
    ``random.lognormvariate`` gives from the same stream, so a seed's reports did not move."""
    tokens = parse({"lognormal": {"median": 800, "p95": 3000}})
    ours, theirs = random.Random(7), random.Random(7)
    expected = [theirs.lognormvariate(tokens.a, tokens.b) for _ in range(5_000)]
    assert [tokens.sample(ours) for _ in range(5_000)] == expected
    assert ours.random() == theirs.random()  # as many uniforms taken
