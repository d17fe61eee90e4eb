"""A brownout of every provider must not become an outage (issue 8, finding 9).

Two providers each fail half their requests (500s, at once) behind one route that falls back from one to
the other. With the breaker's old defaults (5 consecutive failures, or an error rate over 50 % of 20) both
circuits opened within a second and nothing was tried while every circuit was open: 59,318 of 60,000
requests got 503 over 5 minutes. The same load is run against three gateways in turn (the breaker off,
the old defaults, today's defaults) and the share of answered requests compared; a provider that is down
for good must still be cut off by today's defaults.

Measured lines start with ``BROWNOUT:`` (run with ``-s``). The README publishes the defaults and "~95 % of
requests answered, as with no breaker": a request tries each provider twice (one same-deployment retry),
so it fails only when all four tries fail, 0.5 ** 4 = 6.25 % of the time, and about 93.75 % are answered.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from harness import TEST_KEY, UPSTREAM_KEY, free_port, start_gateway
from policy.support import MESSAGES, NO_CIRCUIT, account, config, count, write_policy

from gateway.config.model import CircuitSettings
from gateway.fake.testing import FakeUpstream

OLD_DEFAULTS = {"failure_threshold": 5, "error_rate_threshold": 0.5, "min_requests": 20, "open_seconds": 15}
SECONDS = 10.0  # per gateway: long enough for the old defaults to open both circuits many times over
CLIENTS = 8
ANSWERED = 0.90  # the least share of requests a brownout of both providers may cost with today's defaults
# The breaker defaults the README publishes ("Routing policies": 20 consecutive failures, or more than 80 %
# errors over at least 20 attempts in 30 s, open it for 15 s, then 2 probes).
PUBLISHED = {
    "failure_threshold": 20,
    "error_rate_threshold": 0.8,
    "min_requests": 20,
    "window_seconds": 30,
    "open_seconds": 15,
    "half_open_probes": 2,
}
POLICY = """
routes:
  bo:
    - name: main
      candidates: [a/bo-x, b/bo-y]
"""


@dataclass
class Outcome:
    statuses: Counter[int]
    sent: tuple[int, int]  # requests each provider received

    @property
    def answered(self) -> float:
        return self.statuses[200] / max(1, sum(self.statuses.values()))

    def line(self, name: str) -> str:
        shown = ", ".join(f"{status}: {n}" for status, n in sorted(self.statuses.items()))
        total = sum(self.statuses.values())
        return f"BROWNOUT: {name:<14} answered {self.answered:6.1%} of {total} ({shown}); upstream {self.sent}"


def load(url: str, seconds: float, clients: int) -> Counter[int]:
    statuses: Counter[int] = Counter()
    lock = threading.Lock()
    end = time.monotonic() + seconds

    def client() -> None:
        body = {"model": "bo", "messages": MESSAGES, "max_tokens": 3}
        with httpx.Client(base_url=url, headers={"authorization": f"Bearer {TEST_KEY}"}, timeout=30) as http:
            while time.monotonic() < end:
                try:
                    status = http.post("/chat/completions", json=body).status_code
                except httpx.HTTPError:
                    status = 0
                with lock:
                    statuses[status] += 1

    threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(seconds + 60)
    return statuses


def brownout(
    directory: Path, circuit: Mapping[str, Any], failures: tuple[float, float] = (0.5, 0.5), seconds: float = SECONDS
) -> Outcome:
    """One gateway with ``circuit`` in front of two fresh fakes failing ``failures`` of their requests."""
    fakes = [
        FakeUpstream(api_key=UPSTREAM_KEY, seed=seed, failure_rate=rate, failure_kind="500")
        for seed, rate in zip((11, 12), failures, strict=True)
    ]
    with fakes[0] as x, fakes[1] as y:
        policy_dir = directory / "policies"
        write_policy(policy_dir, POLICY)
        providers = {"a": account(x.url, {"bo-x": {}}), "b": account(y.url, {"bo-y": {}})}
        port = free_port()
        gateway = start_gateway(directory, config(port, providers, policy_dir, circuit=circuit), port)
        try:
            statuses = load(gateway.base_url, seconds, CLIENTS)
        finally:
            gateway.stop()
        return Outcome(statuses, (count(x.stats(), "bo-x"), count(y.stats(), "bo-y")))


@pytest.mark.slow
def test_two_providers_failing_half_the_time_answer_as_well_as_with_no_breaker(tmp_path: Path) -> None:
    off = brownout(tmp_path / "off", NO_CIRCUIT)
    print(off.line("no breaker"))
    old = brownout(tmp_path / "old", OLD_DEFAULTS)
    print(old.line("old defaults"))
    new = brownout(tmp_path / "new", {})
    print(new.line("defaults"))
    print(f"BROWNOUT: defaults are {CircuitSettings()}")
    # The README's figure: ~95 % (93.75 % expected; a run answers a few hundred requests, so 90 % is about three
    # standard deviations below), as with no breaker.
    assert new.answered >= ANSWERED
    assert off.answered >= ANSWERED
    assert new.answered >= off.answered - 0.03  # no worse than no breaker, within noise
    # The old defaults keep both circuits open: each request then gets one last-resort try (about 50 % answered
    # since that was added; almost none before, when a plan with every circuit open refused everything).
    assert new.answered > old.answered + 0.2


@pytest.mark.slow
def test_a_provider_down_for_good_is_still_cut_off_by_the_defaults(tmp_path: Path) -> None:
    """The other side of the trade: the defaults must not make the breaker useless. Without one, every
    request pays two failed attempts (and a backoff) on the dead provider before falling back."""
    off = brownout(tmp_path / "off", NO_CIRCUIT, failures=(1.0, 0.0), seconds=4)
    print(off.line("down, off"))
    new = brownout(tmp_path / "new", {}, failures=(1.0, 0.0), seconds=4)
    print(new.line("down, default"))
    assert off.answered == new.answered == 1.0
    assert off.sent[0] >= sum(off.statuses.values())
    assert new.sent[0] < 0.05 * sum(new.statuses.values())  # a handful of tries and probes, not the traffic
    # "Cut off after about 20 tries": the threshold, plus what the clients already had in flight (a try and its
    # retry each) when the circuit opened.
    assert new.sent[0] <= CircuitSettings().failure_threshold + 2 * CLIENTS, new.sent


def test_the_defaults_are_the_published_ones() -> None:  # pure: runs with or without -m slow
    defaults = CircuitSettings()
    assert {name: getattr(defaults, name) for name in PUBLISHED} == PUBLISHED
