"""The README's Benchmark figures against the floor, re-measured with a short run of `bench/run.py`: the share of
a bare Starlette + aiohttp pass-through's JSON throughput the gateway keeps, and its CPU per JSON request over the
pass-through's. The two run side by side on one core in the same rounds (bench/passthrough.py), so these ratios
hold across machines and days far better than either process's own figures, which moved by half between runs
on the README's machine."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench" / "run.py"
README_JSON_SHARE = 0.493  # the gateway's JSON throughput at 32 connections over the pass-through's
README_CPU_RATIO = 2.03  # the gateway's CPU per JSON request over the pass-through's
ROUNDS = "3"


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_the_gateway_keeps_the_share_of_the_floors_speed_the_readme_says(tmp_path: Path) -> None:
    results = tmp_path / "results.json"
    # --floor: only the JSON runs at 32 connections of the gateway and the pass-through, which is all this reads
    # (17 s where every setting took 87: 70.0 % / 1.42x against 71.7 % / 1.38x for the same rounds with all of them).
    command = [
        *(sys.executable, str(BENCH), "--limits", "off", "--floor"),
        *("--duration", "2", "--rounds", ROUNDS, "--starts", "1"),
    ]
    done = subprocess.run([*command, "--output", str(results)], capture_output=True, text=True, timeout=380)
    assert done.returncode in (0, 1), done.stdout + done.stderr  # 1: a latency target missed on a busy machine
    data = json.loads(results.read_text())
    runs = data["runs"]
    assert all(r["ok"] for key in ("gateway/json/c32", "passthrough/json/c32") for r in runs[key]), done.stdout
    # Each round runs the two side by side, so each round gives a pair of ratios. A slower gateway makes every
    # round worse; a busy moment on a shared machine, one round: the best round is what the code can do.
    shares = [g["rps"] / p["rps"] for g, p in zip(runs["gateway/json/c32"], runs["passthrough/json/c32"], strict=True)]
    cpus = [
        g / p
        for g, p in zip(
            data["gateway_cpu_ms_per_request"]["json"], data["passthrough_cpu_ms_per_request"]["json"], strict=True
        )
    ]
    print(f"FLOOR: the gateway keeps {max(shares):.1%} of the pass-through's JSON throughput, CPU {min(cpus):.2f}x its")
    # Short rounds share nothing but are short: on the README's machine, rounds like these read within a
    # fifth of the full run's ratios (bench/run.py, 3 rounds of 10 s).
    assert max(shares) >= 0.7 * README_JSON_SHARE, done.stdout
    assert min(cpus) <= 1.4 * README_CPU_RATIO, done.stdout
