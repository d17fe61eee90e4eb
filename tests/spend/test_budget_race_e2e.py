"""200 concurrent requests across 4 gateway replicas on one Redis, against a daily budget that fits 20.

Every request reserves its maximum cost (max_tokens x the output price) in the same atomic step as its rate
limits, on whichever replica it reaches, so the replicas together never admit more than the budget holds;
each settles with its actual cost when it ends. The requests are all in flight at once (the fake answers
after 300 ms), so a replica that did not count the others' reservations would admit far more than 20.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
from harness import ADMIN_KEY, UPSTREAM_KEY
from ratelimit.support import Fleet, wait_for
from redis_procs import SHARED_URL
from spend import support

from gateway.fake.testing import FakeUpstream

SECRET = "race-key-secret"
COST = 0.05  # max_tokens 50 at 0.001 USD a token, input free: each request costs exactly this
CAP = 20 * COST


async def burst(urls: list[str], total: int) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=total, max_keepalive_connections=total)
    async with httpx.AsyncClient(timeout=30, limits=limits) as client:
        body = {"model": "flat", "max_tokens": 50, "messages": [{"role": "user", "content": "Hi"}]}
        headers = {"authorization": f"Bearer {SECRET}"}
        calls = [
            client.post(f"{urls[i % len(urls)]}/v1/chat/completions", json=body, headers=headers) for i in range(total)
        ]
        return list(await asyncio.gather(*calls))


@pytest.fixture
def fleet(tmp_path: Path) -> Fleet:
    return Fleet(tmp_path)


def test_concurrent_requests_on_four_replicas_never_overspend_a_budget(fleet: Fleet, prefix: str) -> None:
    with FakeUpstream(api_key=UPSTREAM_KEY, latency_ms=300) as fake:
        try:
            keys = [support.key("race", SECRET, budget={"daily_usd": CAP})]
            gateways = fleet.start(
                lambda port: support.config(port, fake.url, keys=keys, redis_url=SHARED_URL, prefix=prefix), count=4
            )
            answers = asyncio.run(burst([g.url for g in gateways], 200))

            served = [a for a in answers if a.status_code == 200]
            refused = [a for a in answers if a.status_code == 429]
            assert len(served) + len(refused) == 200, {a.status_code for a in answers}
            costs = [float(a.headers["x-gateway-cost-usd"]) for a in served]
            spent = sum(costs)
            print(f"RACE: {len(served)} served, {len(refused)} refused, {spent:.6f} USD spent of a {CAP} cap")
            assert spent <= CAP + max(costs) + 1e-9  # never more than one request beyond the cap
            assert spent >= 0.9 * CAP  # and the budget was used, not refused early
            assert len(served) == 20  # here each reserves exactly what it costs: exactly the 20 that fit
            assert costs == pytest.approx([COST] * len(served))
            assert fake.stats()["requests_total"] == len(served)  # nothing refused reached the provider
            for answer in refused:
                error = answer.json()["error"]
                assert error["code"] == "budget_exceeded"
                assert "this key's daily budget (USD 1.00)" in error["message"] and "race" not in error["message"]
                assert 0 < int(answer.headers["retry-after"]) <= 86_400  # until the UTC day ends

            # Every replica's spend reaches the shared ledger, and it is what the answers said they cost.
            admin = {"authorization": f"Bearer {ADMIN_KEY}"}

            def ledger() -> dict[str, float]:
                answer = httpx.get(f"{gateways[0].url}/admin/spend", params={"key": "race"}, headers=admin)
                rows = answer.json()["keys"]
                return {"usd": rows[0]["usd"], "requests": rows[0]["requests"]} if rows else {}

            wait_for(lambda: ledger().get("requests") == len(served), timeout=10)
            assert ledger()["usd"] == pytest.approx(spent, abs=1e-6)
        finally:
            fleet.stop_all()
