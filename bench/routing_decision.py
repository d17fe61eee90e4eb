"""How long one routing decision takes: `.venv/bin/python bench/routing_decision.py`.

Times ``select.plan()`` alone (features are computed once per request elsewhere) for a generated
policy of 50 rules over 10 deployments, where the rule that matches is the 48th, so every request
first tests 47 rules that do not match. The matching rule is run once per strategy; each has 6
candidates and a 4-deployment fallback chain, against a snapshot that knows every deployment.
Target: median under 50 µs per decision. Exit status 1 when the target is missed.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: the repo root, not bench/ (bench/gateway.py would shadow the package)
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

from gateway.config.model import Deployment, Limits, Price  # noqa: E402
from gateway.routing.features import Features  # noqa: E402
from gateway.routing.policy import Policy  # noqa: E402
from gateway.routing.policy_load import load_policies  # noqa: E402
from gateway.routing.select import plan  # noqa: E402
from gateway.routing.snapshot import DeploymentState, Snapshot  # noqa: E402

TARGET_US = 50.0
STRATEGIES = ("priority", "cheapest", "least-loaded", "lowest-latency", "weighted")


def deployments() -> dict[str, Deployment]:
    found = {}
    for n in range(10):
        d = Deployment(
            account=f"acct{n % 4}",
            model=f"model-{n}",
            upstream_model=f"model-{n}",
            mode="chat",
            limits=Limits(rpm=1000, tpm=100_000),
            price=Price((n + 1) * 1e-7, (n + 1) * 4e-7),
            context_window=128_000 if n % 3 else 32_000,
            max_output_tokens=16_384,
            capabilities=frozenset({"tools", "streaming", "json_schema"} | ({"vision"} if n % 2 else set())),
        )
        found[d.id] = d
    return found


def policy_text(ids: list[str], strategy: str) -> str:
    """50 rules on assorted features; only rule 48 matches the benchmark's request."""
    lines = ["chains:", f"  spare: [{', '.join(ids[6:])}]", "routes:", "  bench:"]
    for i in range(47):
        match = (
            f"{{tier: tier-{i}}}",
            f"{{task: [task-{i}, other-{i}]}}",
            f"{{tags: {{any: [tag-{i}]}}, stream: true}}",
            f"{{prompt_tokens: {{gt: {100_000 + i}}}, key: key-{i}}}",
            f"{{capabilities: {{all: [vision]}}, end_user: user-{i}}}",
        )[i % 5]
        lines += [f"    - name: r{i}", f"      match: {match}", f"      candidates: [{ids[i % 10]}]"]
    weights = f"\n      weights: {{{ids[0]}: 5, {ids[1]}: 3}}" if strategy == "weighted" else ""
    tie = "\n      tie_breaker: cheapest" if strategy in ("least-loaded", "lowest-latency") else ""
    lines += [
        "    - name: match-me",
        "      match: {tier: gold, task: [summarise, classify], total_tokens: {lt: 100000}, tags: {all: [eu]}}",
        f"      strategy: {strategy}{tie}{weights}",
        f"      candidates: [{', '.join(ids[:6])}]",
        "      fallback: [chain:spare]",
        "      max_cost_usd: 1.0",
        "    - name: gold",
        "      match: {tier: gold}",
        f"      candidates: [{ids[0]}]",
        "    - name: rest",
        f"      candidates: [{ids[1]}]",
    ]
    return "\n".join(lines) + "\n"


def load(ids: list[str], strategy: str, found: dict[str, Deployment]) -> Policy:
    with tempfile.TemporaryDirectory() as directory:
        Path(directory, "bench.yaml").write_text(policy_text(ids, strategy))
        return load_policies(directory, found)


def measure(policy: Policy, found: dict[str, Deployment], iterations: int) -> tuple[float, float]:
    features = Features(
        model="bench",
        endpoint="chat",
        key_name="agents",
        tier="gold",
        end_user="someone",
        task="summarise",
        tags=frozenset({"eu", "batch"}),
        prompt_tokens=2_000,
        prompt_exact=False,
        max_tokens=512,
        output_tokens=512,
        capabilities=frozenset({"tools", "streaming"}),
        stream=True,
        allowed=frozenset({"*"}),
    )
    rng = random.Random(7)
    snapshot = Snapshot(
        {
            d: DeploymentState(
                circuit="half_open" if n == 3 else "closed",
                inflight=n % 4,
                ttft_ms=100.0 + 10 * (n % 5),
                latency_ms=800.0 + 25 * n,
                headroom=(n % 3) / 3,
            )
            for n, d in enumerate(found)
        }
    )
    result = plan(policy, features, snapshot, rng, found)
    assert result is not None and result.rule == "match-me" and len(result.entries) == 10, result
    samples = []
    clock = time.perf_counter_ns
    for _ in range(iterations // 10):  # warm up
        plan(policy, features, snapshot, rng, found)
    for _ in range(iterations):
        start = clock()
        plan(policy, features, snapshot, rng, found)
        samples.append(clock() - start)
    samples.sort()
    return statistics.median(samples) / 1000, samples[int(len(samples) * 0.99)] / 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=20_000)
    args = parser.parse_args()
    found = deployments()
    ids = list(found)
    print(f"plan(): 50 rules (the 48th matches), 10 deployments, {args.iterations} decisions per strategy")
    print(f"{'strategy':<16}{'median µs':>10}{'p99 µs':>10}")
    medians = []
    for strategy in STRATEGIES:
        median, p99 = measure(load(ids, strategy, found), found, args.iterations)
        medians.append(median)
        print(f"{strategy:<16}{median:>10.1f}{p99:>10.1f}")
    worst = max(medians)
    verdict = "met" if worst < TARGET_US else "MISSED"
    print(f"worst median {worst:.1f} µs per decision: target < {TARGET_US:.0f} µs {verdict}")
    return 0 if worst < TARGET_US else 1


if __name__ == "__main__":
    sys.exit(main())
