"""The failover figure: a primary that fails every request, steady load over two replicas, zero client errors.

20 requests a second for 10 s, alternating between two replicas that share the circuit breaker through
Redis. The primary answers normally for the first 2 s and then fails every request (HTTP 500). Clients
must see no error at all (the secondary is healthy), and once the primary's circuit opens only the
half-open probes reach it: about one per replica per ``open_seconds``, at most 1/s here plus the edges of
the window (the README publishes 0.78/s; the test allows 1.2/s).

Prints ``FAILOVER:`` lines for the README.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
from harness import TEST_KEY
from policy.support import MESSAGES, REDIS_URL, Launch, account, config, count, write_policy

from gateway.fake.testing import FakeUpstream

RATE = 20.0  # requests per second, both replicas together
DURATION = 10.0
FAIL_AT = 2.0  # the primary starts failing this long into the run
CIRCUIT = {"failure_threshold": 3, "open_seconds": 2, "half_open_probes": 1}
PRIMARY, SECONDARY = "fo-primary", "fo-secondary"
# Two replicas, one probe each per open_seconds: 1/s at most once the circuit is open everywhere; 1.2 allows
# for the window's edges (a probe just before the window starts counting, a short last period).
PROBES_PER_SECOND = 1.2
POLICY = f"""
routes:
  fo:
    - name: main
      candidates: [a/{PRIMARY}]
      fallback: [b/{SECONDARY}]
"""  # the shipped defaults: retry_on 429/5xx/timeout/connection/context_length, one same-deployment retry


def at(samples: list[tuple[float, int]], t: float) -> int:
    """The counter's last sampled value at time ``t``."""
    return max((n for when, n in samples if when <= t), default=0)


@dataclass
class Outcome:
    sent: float  # seconds into the run
    status: int
    deployment: str
    attempts: int


def test_failing_primary_under_load_costs_clients_nothing_and_gets_only_probes(
    launch: Launch, policy_dir: Path, redis_prefix: str, fake: FakeUpstream, fake2: FakeUpstream
) -> None:
    providers = {"a": account(fake.url, {PRIMARY: {}}), "b": account(fake2.url, {SECONDARY: {}})}
    write_policy(policy_dir, POLICY)

    def make(port: int) -> str:
        return config(port, providers, policy_dir, circuit=CIRCUIT, redis_url=REDIS_URL, prefix=redis_prefix)

    replicas = [launch(make, name="replica-a"), launch(make, name="replica-b")]
    clients = [
        httpx.Client(base_url=g.base_url, headers={"authorization": f"Bearer {TEST_KEY}"}, timeout=15) for g in replicas
    ]
    body = {"model": "fo", "messages": MESSAGES, "max_tokens": 5}
    start = time.monotonic()

    def send(i: int) -> Outcome:
        sent = time.monotonic() - start
        try:
            r = clients[i % 2].post("/chat/completions", json=body)
        except httpx.HTTPError:
            return Outcome(sent, 0, "", 0)
        return Outcome(
            sent, r.status_code, r.headers.get("x-gateway-deployment", ""), int(r.headers.get("x-gateway-attempts", 0))
        )

    # The fake's counter of primary requests, sampled over time (the fake keeps totals, not times).
    samples: list[tuple[float, int]] = []
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            samples.append((time.monotonic() - start, count(fake.stats(), PRIMARY)))
            done.wait(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    futures: list[Future[Outcome]] = []
    failed_at = None
    sampler.start()
    try:
        with ThreadPoolExecutor(max_workers=8) as pool:
            for i in range(int(RATE * DURATION)):
                due = start + i / RATE
                if failed_at is None and due - start >= FAIL_AT:
                    fake.configure(PRIMARY, failure_kind="500", failure_rate=1.0)
                    failed_at = time.monotonic() - start
                time.sleep(max(0.0, due - time.monotonic()))
                futures.append(pool.submit(send, i))
            outcomes = [f.result() for f in futures]
    finally:
        done.set()
        sampler.join()
        for c in clients:
            c.close()
    ended = time.monotonic() - start
    samples.append((ended, count(fake.stats(), PRIMARY)))
    assert failed_at is not None

    errors = [o for o in outcomes if o.status != 200]
    # On each replica, the first request that did not even try the primary: its circuit was open there.
    skips = [
        [o.sent for o in outcomes[r::2] if o.sent >= failed_at and o.deployment == f"b/{SECONDARY}" and o.attempts == 1]
        for r in (0, 1)
    ]
    assert all(skips), "the primary's circuit never opened on both replicas"
    first_open, opened = min(s[0] for s in skips), max(s[0] for s in skips)
    total = samples[-1][1]
    # Each response says how many attempts it took; all but the secondary's last one were on the primary.
    tries = [o.attempts - (o.deployment == f"b/{SECONDARY}") for o in outcomes]
    assert sum(tries) == total, "the fake's count and the responses' attempt counts disagree"
    healthy = sum(n for o, n in zip(outcomes, tries, strict=True) if o.sent < failed_at)
    failing = sum(n for o, n in zip(outcomes, tries, strict=True) if failed_at <= o.sent < opened)
    after = sum(n for o, n in zip(outcomes, tries, strict=True) if o.sent >= opened)
    after_rate = after / (ended - opened)
    periods = int((ended - opened) // CIRCUIT["open_seconds"]) + 1  # half-open periods after the opening, at most
    per_second = [at(samples, k + 1) - at(samples, k) for k in range(int(ended))]  # from the fake's counter
    by_replica = [sum(1 for i, o in enumerate(outcomes) if i % 2 == r and o.status == 200) for r in (0, 1)]
    secondary = sum(o.deployment == f"b/{SECONDARY}" for o in outcomes)

    print(
        f"\nFAILOVER: offered {len(outcomes)} requests at {RATE:.0f} req/s over 2 replicas for {DURATION:.0f} s "
        f"(answered {by_replica[0]} + {by_replica[1]}); primary failing 100% (HTTP 500) from t={failed_at:.1f}s"
    )
    print(f"FAILOVER: client errors {len(errors)}; served by the secondary {secondary}")
    print(
        f"FAILOVER: primary attempts {total} in total: {healthy} by requests sent while it was healthy "
        f"({healthy / failed_at:.1f}/s), {failing} while failing before its circuit was open on both replicas "
        f"(t={failed_at:.1f}s..{opened:.1f}s; open on the first at {first_open:.1f}s), "
        f"{after} after that ({after_rate:.2f}/s over {ended - opened:.1f} s; open_seconds "
        f"{CIRCUIT['open_seconds']}, half_open_probes {CIRCUIT['half_open_probes']})"
    )
    print(f"FAILOVER: primary attempts per second (fake's counter): {per_second}")

    assert len(outcomes) == RATE * DURATION and not errors, errors[:5]
    assert opened - failed_at < 1.5  # a few failures open it, and Redis tells the other replica within a sync
    assert healthy > 0.8 * RATE * FAIL_AT
    # Only probes: one per replica per half-open period (each replica may probe once; a failed probe is
    # not retried on the same deployment, since it has just re-opened the circuit).
    assert after <= 2 * periods, (after, periods)
    assert after_rate <= PROBES_PER_SECOND
