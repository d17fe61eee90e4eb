"""The README's count of the gateway's own work per served request (Benchmark: `bench/live_bytecodes.py`),
counted again: bytecodes, not time, so it holds to within a few per cent on any machine, loaded or not (the
stream's count moves a little with how the upstream's bytes happen to arrive)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from redis_procs import SHARED_URL

BENCH = Path(__file__).resolve().parents[2] / "bench" / "live_bytecodes.py"
README = {"json": 9_355, "stream": 11_276}  # bytecodes per request
# with the Redis limiter (bench/gateway.py's config: account, model and key limits)
README_REDIS = {"json": 11_208, "stream": 13_171}
LINE = re.compile(r"^(json|stream): \d+ requests, ([\d,]+) bytecodes per request", re.MULTILINE)


def counted(*options: str) -> dict[str, int]:
    """Bytecodes per request by kind, as bench/live_bytecodes.py counts them with ``options``."""
    command = [sys.executable, str(BENCH), "--requests", "200", *options]
    done = subprocess.run(command, capture_output=True, text=True, timeout=170)
    assert done.returncode == 0, done.stdout + done.stderr
    return {kind: int(count.replace(",", "")) for kind, count in LINE.findall(done.stdout)}


@pytest.mark.timeout(180)
def test_a_served_request_takes_the_work_the_readme_says() -> None:
    found = counted()
    assert found.keys() == README.keys(), found
    for kind, count in found.items():
        assert count == pytest.approx(README[kind], rel=0.03), found


@pytest.mark.timeout(180)
def test_the_redis_limiters_path_takes_the_work_the_readme_says() -> None:
    """The admission, the x-ratelimit-* headers and the settling the Redis limiter adds, counted the same way
    (its batched settling is counted too: how many requests share a batch moves the count a little more)."""
    found = counted("--redis", SHARED_URL)
    assert found.keys() == README_REDIS.keys(), found
    for kind, count in found.items():
        assert count == pytest.approx(README_REDIS[kind], rel=0.04), found
