"""What budgets add to a request's limiter work: `.venv/bin/python bench/budgets.py`.

The gateway's own limiter (``ResilientLimiter``: the admission script on the pipelined connection,
settlements batched every 20 ms) against a redis-server this script starts, with what a request does
there, in two modes:

- ``limits``: the account's rpm and tpm buckets, the key's and its end user's rpm and tpm quotas, two
  candidates; admit, then settle with the actual tokens;
- ``budgets``: the same, plus budgets on every level (the key's, its end user's and its tier's, daily and
  monthly: six), and everything the gateway does for them per request: which budgets the request touches
  (``Books.touched``, twice: routing's ``budget_used`` feature from ``Books.used``, and admission), each
  candidate's maximum cost (``pricing.max_cost``), the budget view, gauge and
  alerts after admission (``Books.observe``), the cost counter and the ledger row at the end
  (``Books.charge``), and settling the budgets with the actual cost.

Per mode, with redis-server pinned to one core and this process to the other (as the gateway and Redis
run in bench/run.py): the p50 of one request's limiter work, one at a time (what budgets add to a
request's latency, Redis's work included); this process's CPU per request with 32 in flight (what they
add to the gateway's own CPU, which is what bounds its throughput: Redis has a core of its own); Redis's
CPU per request (INFO commandstats); and requests per second. Rounds alternate the modes; medians.

Targets (issue 11): at most 0.05 ms more at p50, and at most 5 % less throughput: the added CPU per
request against the gateway's whole CPU per JSON request with the Redis limiter (``--gateway-cpu-ms``,
0.259 ms in README's benchmark table), throughput being inversely proportional to it. Exit status 1 when
a target is missed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: the repo root, not bench/ (bench/gateway.py would shadow the package)
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

from bench import redis_server  # noqa: E402
from bench.processes import free_port  # noqa: E402
from bench.yardstick import yardstick  # noqa: E402
from gateway.config.model import (  # noqa: E402
    BudgetCaps,
    BudgetSettings,
    Deployment,
    Limits,
    Price,
    ServerSettings,
    Settings,
    VirtualKey,
)
from gateway.limits.model import BucketSpec, Candidate  # noqa: E402
from gateway.limits.resilient import ResilientLimiter  # noqa: E402
from gateway.metrics import Metrics  # noqa: E402
from gateway.spend.books import Books  # noqa: E402
from gateway.spend.ledger import Ledger, MemoryTables  # noqa: E402
from gateway.spend.pricing import max_cost  # noqa: E402

MAX_ADDED_P50_MS = 0.05
MIN_RPS_RATIO = 0.95
CAPS = BudgetCaps(daily_usd=1e9, monthly_usd=1e10)  # never reached: every request is admitted
KEY = VirtualKey("team-a", "0" * 64, "premium", frozenset({"*"}), budget=CAPS, user_budget=CAPS)
PRICE = Price(input=2.5e-6, output=10e-6)
DEPLOYMENTS = [
    Deployment("acct-a", "m", "m", "chat", Limits(), PRICE, 128_000, 16_384, frozenset()),
    Deployment("acct-b", "m", "m", "chat", Limits(), PRICE, 128_000, 16_384, frozenset()),
]
PROMPT, OUTPUT = 300, 500
MODES = ("limits", "ledger", "budgets")


def buckets(account: str) -> tuple[BucketSpec, ...]:
    return (
        BucketSpec(f"acct:{account}:rpm", 1e9, 1e7, 1, "requests"),
        BucketSpec(f"acct:{account}:tpm", 1e12, 1e10, PROMPT + OUTPUT, "tokens"),
    )


QUOTAS = (
    BucketSpec("key:team-a:rpm", 1e9, 1e7, 1, "requests"),
    BucketSpec("key:team-a:tpm", 1e12, 1e10, PROMPT + OUTPUT, "tokens"),
    BucketSpec("user:team-a:2bd806c97f0e00af:rpm", 1e9, 1e7, 1, "requests"),
    BucketSpec("user:team-a:2bd806c97f0e00af:tpm", 1e12, 1e10, PROMPT + OUTPUT, "tokens"),
)


def books() -> Books:
    settings = Settings(
        source="bench",
        server=ServerSettings(),
        redis_url="",
        accounts=(),
        keys=(KEY,),
        admin_key_sha256=None,
        policy_dir="",
        budgets=BudgetSettings(tiers={"premium": CAPS}),
    )
    return Books(settings, Metrics(), Ledger(MemoryTables(), interval=0.02))


async def request(limiter: ResilientLimiter, book: Books, mode: str) -> None:
    """One request's limiter work in ``mode``: "limits", "ledger" (and its pricing and spend counted, as
    every request's is) or "budgets" (and budgets on every level)."""
    cost = PROMPT * PRICE.input + 120 * PRICE.output
    if mode != "budgets":
        candidates = [Candidate(d.id, d.account, buckets(d.account)) for d in DEPLOYMENTS]
        admission = await limiter.admit(candidates, QUOTAS, "first")
        assert admission.reservation is not None
        if mode == "ledger":
            book.charge("team-a", "premium", "alice", DEPLOYMENTS[0].id, "agent", cost)
        await limiter.settle(admission.reservation, PROMPT + 120)
        return
    budgets = book.touched(KEY, "premium", "alice")  # routing: the budget_used feature (api.proxy.route)
    book.used(budgets)
    budgets = book.touched(KEY, "premium", "alice")  # admission finds them again (a cached tuple)
    candidates = [
        Candidate(d.id, d.account, buckets(d.account), max_cost(d.price, PROMPT, OUTPUT)) for d in DEPLOYMENTS
    ]
    admission = await limiter.admit(candidates, QUOTAS, "first", budgets)
    book.observe(budgets, admission)
    assert admission.reservation is not None
    book.charge("team-a", "premium", "alice", DEPLOYMENTS[0].id, "agent", cost)
    await limiter.settle(admission.reservation, PROMPT + 120, cost)


async def latency(limiter: ResilientLimiter, book: Books, mode: str, n: int) -> float:
    """Median seconds of one request's limiter work, one at a time."""
    times = []
    for _ in range(n):
        start = time.perf_counter()
        await request(limiter, book, mode)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


async def loaded(
    limiter: ResilientLimiter, book: Books, mode: str, n: int, concurrency: int = 32
) -> tuple[float, float]:
    """(requests per second, this process's CPU seconds per request) with ``concurrency`` in flight."""
    left = n

    async def worker() -> None:
        nonlocal left
        while left > 0:
            left -= 1
            await request(limiter, book, mode)

    start, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    await limiter.flush()  # the settlements and spend this load queued are part of its cost
    await book.ledger.flush()
    return n / (time.perf_counter() - start), (time.process_time() - cpu) / n


async def measure(url: str, port: int, rounds: int, n: int) -> dict[str, list[float]]:
    limiter = ResilientLimiter(url, "bench", deadline=0.5, prefix="bench-budgets")
    await limiter.start()
    book = books()
    results: dict[str, list[float]] = {}
    try:
        for mode in MODES:  # warm up: scripts, connections, code paths
            await loaded(limiter, book, mode, 2000)
        for r in range(rounds):
            for mode in MODES if r % 2 == 0 else MODES[::-1]:
                results.setdefault(f"{mode} p50", []).append(await latency(limiter, book, mode, n))
                before = redis_server.call(port, "INFO", "commandstats")
                rps, cpu = await loaded(limiter, book, mode, n)
                after = redis_server.call(port, "INFO", "commandstats")
                results.setdefault(f"{mode} rps", []).append(rps)
                results.setdefault(f"{mode} cpu", []).append(cpu)
                results.setdefault(f"{mode} redis", []).append((redis_usec(after) - redis_usec(before)) / 1e6 / n)
    finally:
        await book.close()
        await limiter.close()
    return results


def redis_usec(stats: str) -> int:
    """Microseconds Redis spent on every command so far (INFO commandstats)."""
    return sum(int(m) for m in re.findall(r"usec=(\d+)", stats))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=5000, help="requests per mode and round")
    parser.add_argument("--gateway-cpu-ms", type=float, default=0.259, help="the gateway's CPU per JSON request")
    args = parser.parse_args()
    binary = redis_server.available()
    if binary is None:
        raise SystemExit("redis-server is not installed (apt-get install -y redis-server)")
    cores = sorted(os.sched_getaffinity(0))
    before = yardstick()
    with tempfile.TemporaryDirectory() as tmp:
        server = redis_server.start(binary, cores[-1], free_port(), Path(tmp))
        try:
            os.sched_setaffinity(0, {cores[0]})
            results = asyncio.run(measure(server.url, server.port, args.rounds, args.requests))
        finally:
            server.stop()
    speed = (before + yardstick()) / 2
    med = {name: statistics.median(values) for name, values in results.items()}
    print(f"limiter work per request, medians of {args.rounds} rounds of {args.requests} requests per mode:")
    for what, unit, scale in (("p50", "ms", 1000), ("cpu", "ms", 1000), ("redis", "ms", 1000), ("rps", "req/s", 1)):
        cells = ", ".join(f"{mode} {med[f'{mode} {what}'] * scale:,.3f}" for mode in MODES)
        print(f"  {what:>5} ({unit}): {cells}")
    verdict = 0
    for base, mode in (("limits", "ledger"), ("ledger", "budgets"), ("limits", "budgets")):
        added_ms = (med[f"{mode} p50"] - med[f"{base} p50"]) * 1000
        added_cpu_ms = (med[f"{mode} cpu"] - med[f"{base} cpu"]) * 1000
        throughput = args.gateway_cpu_ms / (args.gateway_cpu_ms + added_cpu_ms)
        print(
            f"  {mode} against {base}: p50 {added_ms:+.3f} ms, gateway CPU {added_cpu_ms * 1000:+.1f} µs per request "
            f"(throughput {throughput:.1%} at {args.gateway_cpu_ms} ms per request)"
        )
        if base == "limits" and mode == "budgets":
            verdict = int(added_ms > MAX_ADDED_P50_MS or throughput < MIN_RPS_RATIO)
    print(f"  targets, budgets against limits: p50 <= +{MAX_ADDED_P50_MS} ms, throughput >= {MIN_RPS_RATIO:.0%}")
    print(f"  yardstick: {speed:.3f} s (bench/yardstick.py; the mean of one before and one after)")
    for name, values in results.items():
        print(f"  {name} per round: {', '.join(f'{v:.6f}' for v in values)}")
    return verdict


if __name__ == "__main__":
    sys.exit(main())
