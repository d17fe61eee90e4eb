"""The circuit breaker seen from clients and from the fake providers, across two replicas sharing Redis.

The circuit state is read through ``POST /admin/explain`` (which sends nothing upstream): an open circuit
shows as an exclusion of kind ``circuit_open``, a half-open one as a plan entry marked ``probe``.
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx
from harness import GatewayProcess
from policy.support import REDIS_URL, Launch, account, chat, config, count, explain, wait_for, write_policy

from gateway.fake.testing import FakeUpstream

CIRCUIT = {"failure_threshold": 3, "open_seconds": 2, "half_open_probes": 1}
PRIMARY, SECONDARY = "cb-primary", "cb-secondary"

POLICY = f"""
routes:
  cb:
    - name: main
      candidates: [a/{PRIMARY}, b/{SECONDARY}]
      retries: {{same_deployment: 1, backoff_ms: 50}}
"""


def circuit(gateway: GatewayProcess, deployment: str, model: str = "cb") -> str:
    """The deployment's circuit as this replica's next plan sees it: open, half_open or closed."""
    plan = explain(gateway, model)["plan"]
    if any(x["deployment"] == deployment and x["kind"] == "circuit_open" for x in plan["excluded"]):
        return "open"
    entry = next(e for e in plan["entries"] if e["deployment"] == deployment)
    return "half_open" if entry["probe"] else "closed"


def primary_count(fake: FakeUpstream) -> int:
    return count(fake.stats(), PRIMARY)


def served(response: httpx.Response) -> tuple[int, str, str]:
    return (
        response.status_code,
        response.headers.get("x-gateway-deployment", ""),
        response.headers["x-gateway-attempts"],
    )


def test_circuit_opens_probes_and_closes_across_two_replicas(
    launch: Launch, policy_dir: Path, redis_prefix: str, fake: FakeUpstream, fake2: FakeUpstream
) -> None:
    providers = {"a": account(fake.url, {PRIMARY: {}}), "b": account(fake2.url, {SECONDARY: {}})}
    write_policy(policy_dir, POLICY)

    def make(port: int) -> str:
        return config(port, providers, policy_dir, circuit=CIRCUIT, redis_url=REDIS_URL, prefix=redis_prefix)

    a, b = launch(make, name="replica-a"), launch(make, name="replica-b")
    primary, secondary = f"a/{PRIMARY}", f"b/{SECONDARY}"
    assert served(chat(b, "cb", max_tokens=3)) == (200, primary, "1")

    # Three failures through replica A open the circuit; the clients never notice. The first request fails
    # twice on the primary (one same-deployment retry); the second's failure opens the circuit, so it is not
    # retried there but goes to the secondary at once.
    fake.configure(PRIMARY, failure_kind="500", failure_rate=1.0)
    assert served(chat(a, "cb", max_tokens=3)) == (200, secondary, "3")
    assert served(chat(a, "cb", max_tokens=3)) == (200, secondary, "2")
    assert circuit(a, primary) == "open"
    assert primary_count(fake) == 4

    # Replica B learns it through Redis and stops sending to the primary.
    wait_for("replica B to see the circuit open", lambda: circuit(b, primary) == "open", timeout=1.5, interval=0.05)
    for _ in range(4):
        assert served(chat(b, "cb", max_tokens=3)) == (200, secondary, "1")
    assert served(chat(a, "cb", max_tokens=3)) == (200, secondary, "1")
    assert circuit(b, primary) == "open", "the requests above must have run while the circuit was open"
    assert primary_count(fake) == 4

    # After open_seconds one probe goes to the primary; it fails (and is not retried there: its failure has
    # re-opened the circuit), the client is served by the secondary, and the next requests skip the primary.
    wait_for("the circuit to half-open", lambda: circuit(a, primary) == "half_open", timeout=3, interval=0.05)
    assert served(chat(a, "cb", max_tokens=3)) == (200, secondary, "2")
    for _ in range(3):
        assert served(chat(a, "cb", max_tokens=3)) == (200, secondary, "1")
    assert primary_count(fake) == 5  # exactly one probe
    assert circuit(a, primary) == "open"
    wait_for("replica B to see the failed probe", lambda: circuit(b, primary) == "open", timeout=1.5)

    # The primary recovers: the next probe succeeds and both replicas go back to it.
    fake.configure(PRIMARY, failure_rate=0.0)
    wait_for("the circuit to half-open again", lambda: circuit(a, primary) == "half_open", timeout=3, interval=0.05)
    assert served(chat(a, "cb", max_tokens=3)) == (200, primary, "1")  # the probe
    assert circuit(a, primary) == "closed"
    wait_for("replica B to route to the primary again", lambda: circuit(b, primary) == "closed", timeout=1.5)
    for gateway in (a, b, a, b):
        assert served(chat(gateway, "cb", max_tokens=3)) == (200, primary, "1")


def test_every_candidate_open_still_tries_the_least_bad_once(
    launch: Launch, policy_dir: Path, fake: FakeUpstream, fake2: FakeUpstream
) -> None:
    """It used to be a quick 503 for everyone until a circuit half-opened: in a brownout of every provider
    the gateway refused all traffic. Now the deployment that half-opens soonest gets one attempt."""
    x, y = "cb-all-x", "cb-all-y"
    providers = {"a": account(fake.url, {x: {}}), "b": account(fake2.url, {y: {}})}
    write_policy(
        policy_dir,
        f"routes:\n  both:\n    - {{name: main, candidates: [a/{x}, b/{y}], retries: {{same_deployment: 0}}}}\n",
    )
    circuit_ = {"failure_threshold": 3, "open_seconds": 6, "half_open_probes": 1}
    gateway = launch(lambda port: config(port, providers, policy_dir, circuit=circuit_))

    fake.configure(x, failure_kind="500", failure_rate=1.0)
    for _ in range(3):
        assert chat(gateway, "both", max_tokens=3).headers["x-gateway-deployment"] == f"b/{y}"
    time.sleep(0.5)  # a gap between the two openings, so the earlier one is the least bad
    fake2.configure(y, failure_kind="500", failure_rate=1.0)
    for _ in range(3):
        assert chat(gateway, "both", max_tokens=3).status_code == 502  # x is skipped, y fails
    plan = explain(gateway, "both")["plan"]
    assert [(e["deployment"], e["last_resort"]) for e in plan["entries"]] == [(f"a/{x}", True)]
    assert "last resort: every circuit is open" in plan["entries"][0]["why"]
    assert {e["deployment"]: e["kind"] for e in plan["excluded"]} == {
        f"a/{x}": "circuit_open",
        f"b/{y}": "circuit_open",
    }

    before = (count(fake.stats(), x), count(fake2.stats(), y))
    for _ in range(2):
        failed = chat(gateway, "both", max_tokens=3)
        assert (failed.status_code, failed.headers["x-gateway-attempts"]) == (502, "1")
    assert (count(fake.stats(), x), count(fake2.stats(), y)) == (before[0] + 2, before[1])
    # x recovers: the last resort answers, while its circuit waits for its probes as before.
    fake.configure(x, failure_rate=0.0)
    assert served(chat(gateway, "both", max_tokens=3)) == (200, f"a/{x}", "1")
    assert circuit(gateway, f"a/{x}", "both") == circuit(gateway, f"b/{y}", "both") == "open"
