"""Budgets add no round trip: one admission reads and charges buckets, quotas and every budget in one
script call, as Redis itself counts it (INFO commandstats)."""

from __future__ import annotations

import redis.asyncio as aioredis
from redis_procs import RedisServer

from gateway.limits.decide import ALERTS
from gateway.limits.model import BucketSpec, Budget, Candidate
from gateway.limits.redis_limiter import RedisLimiter
from gateway.state.pipe import Pipe

END = 4_102_444_800.0
BUDGETS = [
    Budget("key:k:day", "2026-12-01", 50.0, END),
    Budget("key:k:month", "2026-12", 900.0, END),
    Budget("user:k:2bd806c97f0e00af:day", "2026-12-01", 2.0, END),
    Budget("user:k:2bd806c97f0e00af:month", "2026-12", 20.0, END),
    Budget("tier:premium:day", "2026-12-01", 500.0, END),
    Budget("tier:premium:month", "2026-12", 9000.0, END),
]


async def commands(client: aioredis.Redis) -> dict[str, int]:
    stats = await client.info("commandstats")
    return {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in stats.items() if "info" not in name}


async def test_admitting_with_budgets_on_every_level_is_one_script_call(redis_server: RedisServer) -> None:
    client = aioredis.Redis.from_url(redis_server.url)
    limiter = RedisLimiter(client, "rt", pipe=Pipe(redis_server.url))
    await limiter.start()
    rpm = BucketSpec("acct:a:rpm", 100, 1, 1, "requests")
    tpm = BucketSpec("acct:a:tpm", 10_000, 100, 500, "tokens")
    quotas = [BucketSpec("key:k:rpm", 60, 1, 1, "requests"), BucketSpec("user:k:2bd8:tpm", 5000, 80, 500, "tokens")]
    candidates = [Candidate("a/m", "a", (rpm, tpm), 0.01), Candidate("b/m", "b", (), 0.002)]
    await client.config_resetstat()

    admission = await limiter.admit(candidates, quotas, "first", BUDGETS)

    assert admission.chosen == 0 and admission.spent == tuple([0.01] * 6)
    assert limiter.round_trips == 1
    # One call from the gateway; inside it (Redis counts a script's commands too) one clock read, one MGET of
    # every bucket, cooldown and budget, and one SET per charged key: 4 buckets and 6 budgets.
    assert await commands(client) == {"config|resetstat": 1, "evalsha": 1, "time": 1, "mget": 1, "set": 10}
    assert await limiter.budget_spend(BUDGETS) == [0.01] * 6  # every budget charged by that one call
    await limiter.close()


async def test_budgets_passed_again_are_charged_again(redis_server: RedisServer) -> None:
    """The encoded budgets of a tuple are kept for the next call with the same tuple; a list, which may change
    between calls, is encoded afresh."""
    limiter = RedisLimiter(aioredis.Redis.from_url(redis_server.url), "again", pipe=Pipe(redis_server.url))
    await limiter.start()
    touched = tuple(BUDGETS[:2])
    candidates = [Candidate("a/m", "a", (), 0.5)]
    assert (await limiter.admit(candidates, [], "first", touched)).spent == (0.5, 0.5)
    assert (await limiter.admit(candidates, [], "first", touched)).spent == (1.0, 1.0)
    changing = [BUDGETS[0]]
    await limiter.admit(candidates, [], "first", changing)
    changing[0] = BUDGETS[2]
    admission = await limiter.admit(candidates, [], "first", changing)
    assert admission.reservation is not None and admission.reservation.budgets == ((BUDGETS[2], 0.5),)
    assert await limiter.budget_spend(BUDGETS[:3]) == [1.5, 1.0, 0.5]
    await limiter.close()


def test_alert_shares_ascend() -> None:
    """admit_v7 looks only at the next share above the level a budget reached, which needs them in order."""
    assert list(ALERTS) == sorted(ALERTS)
