"""The README's count of the gateway's own work per served request (Benchmark: `bench/live_bytecodes.py`),
counted again: bytecodes, not time, so it holds to within a few per cent on any machine, loaded or not (the
stream's count moves a little with how the upstream's bytes happen to arrive)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "live_bytecodes.py"
README = {"json": 9_673, "stream": 11_603}  # bytecodes per request
LINE = re.compile(r"^(json|stream): \d+ requests, ([\d,]+) bytecodes per request", re.MULTILINE)


@pytest.mark.timeout(180)
def test_a_served_request_takes_the_work_the_readme_says() -> None:
    command = [sys.executable, str(BENCH), "--requests", "200"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=170)
    assert done.returncode == 0, done.stdout + done.stderr
    found = {kind: int(count.replace(",", "")) for kind, count in LINE.findall(done.stdout)}
    assert found.keys() == README.keys(), done.stdout
    for kind, count in found.items():
        assert count == pytest.approx(README[kind], rel=0.03), done.stdout
