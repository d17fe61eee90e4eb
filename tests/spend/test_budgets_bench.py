"""The README's figure for what budgets cost a request (Spend and budgets: `bench/budgets.py`), re-measured
with fewer rounds: near the published value, with room for a busier machine."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "budgets.py"
README_P50_MS = 0.024  # added at p50, budgets on six levels against limits alone
README_CPU_US = 10.2  # added gateway CPU per request
LINE = re.compile(r"budgets against limits: p50 \+(-?[\d.]+) ms, gateway CPU \+(-?[\d.]+) µs")


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_budgets_cost_a_request_what_the_readme_says() -> None:
    command = [sys.executable, str(BENCH), "--rounds", "3", "--requests", "3000", "--gateway-cpu-ms", "0.259"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=280)
    found = LINE.search(done.stdout)
    assert found is not None, done.stdout + done.stderr
    p50_ms, cpu_us = float(found.group(1)), float(found.group(2))
    print(f"BUDGETS: +{p50_ms} ms at p50, +{cpu_us} µs of gateway CPU per request")
    assert p50_ms <= 3 * README_P50_MS, done.stdout  # a test run shares the machine: the README's is quiet
    assert cpu_us <= 3 * README_CPU_US, done.stdout  # measured inside make test: 0.048 ms and 25.5 µs once
