"""How fast the simulator runs: an hour at 100 workflows a second (bench/sim_speed.py), against the README.

The bound is on the CPU time the run used, which a shared machine's load does not inflate as it does the
wall time.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "sim_speed.py"
README_CPU_S = 194.0  # the README's figure for one simulated hour (CPU seconds)


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_an_hour_at_100_workflows_a_second() -> None:
    done = subprocess.run([sys.executable, str(BENCH), "--json"], capture_output=True, text=True, timeout=1700)
    assert done.returncode == 0, done.stderr
    figures = json.loads(done.stdout)
    assert figures["answered"] == figures["requests"] > 1_000_000  # the hour's traffic, all of it served
    assert figures["cpu_s"] < 1.25 * README_CPU_S, figures
