"""The README's figure for what budgets cost a request (Spend and budgets: `bench/budgets.py`), re-measured
with fewer rounds: near the published value, with room for a busier machine, and scaled by how much slower or
faster this machine runs Python than the README's did (bench/yardstick.py)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "budgets.py"
README_P50_MS = 0.024  # added at p50, budgets on six levels against limits alone
README_CPU_US = 10.2  # added gateway CPU per request
README_YARDSTICK_S = 0.232  # the machine those were measured on (bench/sim_speed.py's run that day)
LINE = re.compile(r"budgets against limits: p50 ([+-][\d.]+) ms, gateway CPU ([+-][\d.]+) µs")  # signed: noise
YARDSTICK = re.compile(r"yardstick: ([\d.]+) s")


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_budgets_cost_a_request_what_the_readme_says() -> None:
    command = [sys.executable, str(BENCH), "--rounds", "3", "--requests", "3000", "--gateway-cpu-ms", "0.259"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=280)
    found = LINE.search(done.stdout)
    assert found is not None, done.stdout + done.stderr
    speed = YARDSTICK.search(done.stdout)
    assert speed is not None, done.stdout
    p50_ms, cpu_us, slower = float(found.group(1)), float(found.group(2)), float(speed.group(1)) / README_YARDSTICK_S
    print(f"BUDGETS: +{p50_ms} ms at p50, +{cpu_us} µs of gateway CPU per request, machine {slower:.2f}x slower")
    # A test run shares the machine, the README's was quiet: inside make test, 0.048 ms and 25.5 µs once on
    # the README's machine; 0.109 ms and 35.5 µs on one whose yardstick read 2.7 times longer.
    assert p50_ms <= 3 * README_P50_MS * slower, done.stdout
    assert cpu_us <= 3 * README_CPU_US * slower, done.stdout
